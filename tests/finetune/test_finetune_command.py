"""`modelmill finetune`: Olive's tutorial flags, the generated config, errors, and the result into auto-opt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.cli import build_parser, main
from modelmill.finetune.command import build_config

TUTORIAL_TEMPLATE = "### Question: {instruction}\\n### Answer: {response}"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def test_tutorial_flags_become_an_olive_lora_config() -> None:
    args = build_parser().parse_args([
        "finetune", "--model_name_or_path", "base", "--data_name", "sample:instructions", "--text_template",
        TUTORIAL_TEMPLATE, "--max_steps", "100", "--output_path", "models/llama-finetuned", "--eval_split", "test",
        "--lora_r", "16", "--target_modules", "q_proj, v_proj", "--batch_size", "2", "--merge_adapter"])
    config = build_config(args)
    lora = config["passes"]["lora"]
    assert lora["type"] == "LoRA" and lora["r"] == 16 and lora["target_modules"] == ["q_proj", "v_proj"]
    assert lora["training_args"]["max_steps"] == 100 and lora["training_args"]["per_device_train_batch_size"] == 2
    assert lora["merge_adapter"] and lora["eval_data_config"] == "eval_data"
    train = config["data_configs"][0]
    assert train["load_dataset_config"] == {"data_name": "sample:instructions", "split": "train"}
    assert train["pre_process_data_config"]["text_template"] == TUTORIAL_TEMPLATE
    assert config["output_dir"] == "models/llama-finetuned"


def test_generated_config_validates_with_the_config_models() -> None:
    from modelmill.config import load_workflow, parse_document

    args = build_parser().parse_args(["finetune", "-m", "base", "-d", "data.jsonl", "--text_field", "text"])
    document = parse_document(json.dumps(build_config(args)), "<finetune>.json")
    config = load_workflow(document)
    assert [name for name, _, _ in config.pass_chain()] == ["lora"]


def test_qlora_is_a_clear_error(capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path) -> None:
    code = main(["finetune", "-m", str(tiny_llama_dir), "-d", "sample:instructions", "--method", "qlora"])
    err = capsys.readouterr().err
    assert code != 0 and "qlora needs" in err and "--method lora" in err


def test_two_text_sources_are_refused(capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path) -> None:
    code = main(["finetune", "-m", str(tiny_llama_dir), "-d", "x.jsonl", "--text_field", "a", "--text_template", "{b}"])
    assert code != 0 and "give only one" in capsys.readouterr().err


def test_hub_dataset_fails_with_an_offline_error(capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path) -> None:
    code = main(["finetune", "-m", str(tiny_llama_dir), "-d", "microsoft/dolly-15k", "--text_template",
                 TUTORIAL_TEMPLATE, "--max_steps", "2", "-o", "out"])
    err = capsys.readouterr().err
    assert code != 0 and "not found locally" in err and "sample:instructions" in err
    assert not Path("out").exists()


def test_template_typo_fails_before_training(capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path) -> None:
    code = main(["finetune", "-m", str(tiny_llama_dir), "-d", "sample:instructions", "--text_template",
                 "### Question: {instrution}\\n### Answer: {response}", "--max_steps", "2", "-o", "out"])
    err = capsys.readouterr().err
    assert code != 0 and "'instrution'" in err and "instruction, context, response, category" in err


def test_finetune_then_auto_opt_base_plus_adapter_then_generate(tiny_llama_dir: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import onnx

    events_file = tmp_path / "events.jsonl"
    assert main(["finetune", "-m", str(tiny_llama_dir), "-d", "sample:instructions", "--text_template",
                 TUTORIAL_TEMPLATE, "--max_steps", "3", "--lora_r", "4", "--max_seq_len", "64", "-o", "ft",
                 "--events", str(events_file)]) == 0
    types = [json.loads(line)["type"] for line in events_file.read_text().splitlines()]
    assert types.count("train.step") == 3 and types[-1] == "run.finished"
    manifest = json.loads(Path("ft/modelmill_run.json").read_text())
    assert manifest["passes"][0]["type"] == "LoRA" and Path("ft/adapter/adapter_model.safetensors").exists()
    assert json.loads(Path("ft/training_log.json").read_text())["steps"] == 3

    # The finetune output (no merged model) goes straight into auto-opt: base + adapter via the builder.
    assert main(["auto-opt", "-m", "ft", "--precision", "int4", "-o", "ft-int4"]) == 0
    graph = onnx.load("ft-int4/model.onnx", load_external_data=False).graph
    assert any("lora_A" in node.name for node in graph.node)
    assert main(["generate", "ft-int4", "### Question: What does len do?", "--max_new_tokens", "4"]) == 0
    embedded = capsys.readouterr().out

    # Or the base model plus a separate adapter file, which chat activates (and --no_adapter leaves out).
    assert main(["auto-opt", "-m", "ft", "--precision", "int4", "--adapter_format", "onnx_adapter", "-o", "ft-split"]) == 0
    assert Path("ft-split/adapter_weights.onnx_adapter").exists()
    capsys.readouterr()
    assert main(["generate", "ft-split", "### Question: What does len do?", "--max_new_tokens", "4"]) == 0
    captured = capsys.readouterr()
    assert captured.out == embedded and "adapter_weights.onnx_adapter active" in captured.err
    assert main(["generate", "ft-split", "### Question: What does len do?", "--max_new_tokens", "4",
                 "--no_adapter"]) == 0
    assert "active" not in capsys.readouterr().err


def test_adapter_format_needs_an_adapter(capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path) -> None:
    code = main(["auto-opt", "-m", str(tiny_llama_dir), "--adapter_format", "onnx_adapter", "-o", "x"])
    assert code != 0 and "needs a LoRA adapter" in capsys.readouterr().err


def test_adapter_path_flag_and_changed_adapter_changes_the_cache_key(tiny_llama_dir: Path) -> None:
    from modelmill.config import load_workflow, parse_document
    from modelmill.engine.cache import Cache
    from modelmill.engine.plan import plan_from_config
    from modelmill.engine.chain import step_keys

    assert main(["finetune", "-m", str(tiny_llama_dir), "-d", "sample:instructions", "--text_template",
                 TUTORIAL_TEMPLATE, "--max_steps", "1", "--lora_r", "2", "-o", "ft"]) == 0
    config = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama_dir), "adapter_path": "ft/adapter"},
              "passes": {"b": {"type": "ModelBuilder", "precision": "fp32"}}, "output_dir": "o"}
    plan = plan_from_config(load_workflow(parse_document(json.dumps(config), "<t>.json")))
    assert plan.input_model.base_model_path == tiny_llama_dir
    assert plan.input_model.adapter_dir == Path("ft/adapter").resolve()
    # The adapter's bytes are part of the input's content hash: a retrained adapter is never served stale.
    key = step_keys(plan, Cache(Path("cache")))
    weights = Path("ft/adapter/adapter_model.safetensors")
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\1")
    assert step_keys(plan, Cache(Path("cache"))) != key
    config["input_model"]["adapter_path"] = str(tiny_llama_dir)
    with pytest.raises(Exception, match="holds no LoRA adapter"):
        plan_from_config(load_workflow(parse_document(json.dumps(config), "<t>.json")))


def test_lora_pass_keys_are_validated_like_every_other_pass(tiny_llama_dir: Path) -> None:
    from modelmill.config import parse_document, validate_document

    config = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama_dir)},
              "data_configs": [{"name": "train_data", "load_dataset_config": {"data_name": "sample:instructions"}}],
              "passes": {"lora": {"type": "LoRA", "train_data_config": "trian_data", "training_args": {"max_step": 3},
                                  "r": 0}}}
    found = {(d.code, d.hint) for d in validate_document(parse_document(json.dumps(config, indent=1), "c.json"))}
    assert ("undefined-reference", "did you mean 'train_data'?") in found
    assert ("unknown-key", "did you mean 'max_steps'?") in found
    assert any(code == "invalid-value" for code, _ in found)


def test_gpu_training_does_not_need_onnxruntime_gpu(capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path) -> None:
    # --dry_run stops after planning: the provider check (which refuses CUDA on this CPU onnxruntime) is skipped
    # for a plan that only trains, while auto-opt for the GPU is still refused.
    assert main(["finetune", "-m", str(tiny_llama_dir), "-d", "sample:instructions", "--text_field", "response",
                 "--device", "gpu", "--dry_run"]) == 0
    code = main(["auto-opt", "-m", str(tiny_llama_dir), "--device", "gpu", "--precision", "int4", "--dry_run"])
    assert code != 0 and "CUDAExecutionProvider" in capsys.readouterr().err
