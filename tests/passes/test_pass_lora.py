"""The LoRA pass: real peft training on a tiny model; events, adapter files, merge, template errors, cancel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import events, make_context, run_pass
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.runner import start_run
from modelmill.errors import RunCancelled
from modelmill.errors import PassError
from modelmill.passes.lora import LoRA, LoRAParams

TEMPLATE = "### Question: {instruction}\\n### Answer: {response}"  # as the shell passes the tutorial's flag
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(autouse=True)
def _home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path_factory.getbasetemp() / "mmhome"))


def data_configs(template: str = TEMPLATE) -> dict[str, Any]:
    def entry(name: str, split: str) -> dict[str, Any]:
        return {"name": name, "type": "HuggingfaceContainer",
                "load_dataset_config": {"data_name": "sample:instructions", "split": split},
                "pre_process_data_config": {"text_template": template, "max_seq_len": 64}}

    return {"train": entry("train", "train"), "eval": entry("eval", "test[:8]")}


def params(max_steps: int = 10, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"r": 8, "alpha": 16, "lora_dropout": 0.0, "target_modules": ALL_LINEAR,
                              "train_data_config": "train",
                              "training_args": {"max_steps": max_steps, "learning_rate": 1e-2,
                                                "per_device_train_batch_size": 4, "seed": 0, "save_steps": 2}}
    values.update(extra)
    return values


def test_ten_steps_lower_the_loss_and_write_a_loadable_adapter(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ctx = make_context(tmp_path, "lora", data_configs=data_configs())
    out, ctx = run_pass(LoRA, ModelRef("hf", tiny_llama_dir), tmp_path, ctx=ctx,
                        **params(eval_data_config="eval", merge_adapter=True))
    steps = events(ctx, "train.step")
    assert [e["step"] for e in steps] == list(range(1, 11))
    assert all(e["max_steps"] == 10 and e["learning_rate"] > 0 and e["eta_s"] is not None for e in steps)
    losses = [e["loss"] for e in steps]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1, losses
    assert events(ctx, "train.eval") and all(e["eval_loss"] > 0 for e in events(ctx, "train.eval"))
    fractions = [e["fraction"] for e in events(ctx, "pass.progress")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0

    adapter = out.path / "adapter"
    assert (adapter / "adapter_model.safetensors").exists()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["base_model_name_or_path"] == str(tiny_llama_dir)
    log = json.loads((out.path / "training_log.json").read_text())
    assert log["steps"] == 10 and [h["loss"] for h in log["log_history"] if "loss" in h] == losses

    # base + adapter (loaded back with peft) and the merged model give the same logits, unlike the base.
    ids = torch.tensor([[1, 40, 41, 42, 43, 44, 45]])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, str(adapter)).eval()(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(str(out.path)).eval()(ids).logits
    assert torch.allclose(adapted, merged, atol=1e-4)
    assert not torch.allclose(base_logits, merged, atol=1e-3)
    assert out.kind == "hf" and out.adapter_dir is None


def test_without_merge_the_output_is_base_plus_adapter(tiny_llama_dir: Path, tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "lora", data_configs=data_configs())
    out, _ = run_pass(LoRA, ModelRef("hf", tiny_llama_dir), tmp_path, ctx=ctx, **params(max_steps=2))
    assert not (out.path / "config.json").exists()
    assert out.base_model_path == tiny_llama_dir and out.adapter_dir == (out.path / "adapter").resolve()
    assert out.hf_config()["model_type"] == "llama"


def test_missing_template_field_fails_before_the_model_loads(tiny_llama_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from modelmill.finetune import training

    def tripwire(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded before the template was checked")

    monkeypatch.setattr(training, "load_peft_model", tripwire)
    ctx = make_context(tmp_path, "lora", data_configs=data_configs("Q: {question}\\nA: {response}"))
    with pytest.raises(PassError) as err:
        run_pass(LoRA, ModelRef("hf", tiny_llama_dir), tmp_path, ctx=ctx, **params())
    assert "'question'" in str(err.value) and "instruction, context, response, category" in str(err.value)
    assert not events(ctx, "train.step")


def test_olive_param_names_and_unknown_data_config() -> None:
    assert LoRAParams(lora_r=4, lora_alpha=8, train_data_config="x").r == 4
    with pytest.raises(Exception, match="train_data_config"):
        LoRAParams()


def test_cancel_stops_at_the_next_step_and_the_rerun_resumes(tiny_llama_dir: Path, tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "lora", data_configs=data_configs())
    ctx.bus.listeners.append(lambda e: ctx.cancel.set() if e["type"] == "train.step" and e["step"] == 3 else None)
    with pytest.raises(RunCancelled):
        run_pass(LoRA, ModelRef("hf", tiny_llama_dir), tmp_path, ctx=ctx, **params(max_steps=8))
    # Cancel came while step 3 was being reported: the step under way (4) finishes and is saved.
    assert [e["step"] for e in events(ctx, "train.step")] == [1, 2, 3, 4]
    [warning] = events(ctx, "warning")
    assert "stopped at step 4 of 8" in warning["message"] and "checkpoint-4" in warning["message"]
    assert not any(ctx.output_dir.iterdir())

    again = make_context(tmp_path, "again", data_configs=data_configs())
    again.cache_dir = ctx.cache_dir  # same cache: the checkpoint is found
    out, again = run_pass(LoRA, ModelRef("hf", tiny_llama_dir), tmp_path, ctx=again, **params(max_steps=8))
    assert any("resuming from checkpoint-4" in e["message"] for e in events(again, "log"))
    assert [e["step"] for e in events(again, "train.step")] == [5, 6, 7, 8]
    assert json.loads((out.path / "training_log.json").read_text())["resumed_from"] == "checkpoint-4"
    assert not (ctx.cache_dir / "lora-checkpoints").exists() or not any((ctx.cache_dir / "lora-checkpoints").iterdir())


def test_cancelling_a_run_lets_training_stop_cleanly(tiny_llama_dir: Path, tmp_path: Path) -> None:
    step = PlanStep("lora", LoRA, LoRAParams(**params(max_steps=500)))
    plan = Plan(ModelRef("hf", tiny_llama_dir), [step], tmp_path / "out", tmp_path / "cache",
                data_configs=data_configs())
    handle = start_run(plan, "run-lora-cancel", in_process=False)
    for event in handle.events(timeout=120):
        if event["type"] == "train.step" and event["step"] >= 2:
            break
    handle.cancel()
    outcome = handle.result(60)
    assert outcome.status == "cancelled" and not (tmp_path / "out").exists()
    kept = [e for e in handle.events() if e["type"] == "warning" and "kept in" in e["message"]]
    assert kept, "the worker was killed instead of stopping at a step"
    checkpoints = list((tmp_path / "cache" / "lora-checkpoints").glob("*/checkpoint-*"))
    assert checkpoints and (checkpoints[0] / "adapter_model.safetensors").exists()


def test_data_config_forms_olive_writes(tmp_path: Path) -> None:
    from modelmill.passes.lora import _data_spec

    ctx = make_context(tmp_path, "spec", data_configs={
        "cols": {"load_dataset_config": {"params": {"data_name": "d.jsonl", "split": "train[:10]"}},
                 "pre_process_data_config": {"params": {"text_cols": ["instruction", "response"], "max_seq_len": 32}}},
        "field": {"load_dataset_config": {"data_files": "f.csv"}, "pre_process_data_config": {"text_field": "t"}}})
    cols = _data_spec("cols", ctx, "train_data_config")
    assert cols["text"].text_template == "{instruction}\n{response}" and cols["max_seq_len"] == 32
    assert cols["split"] == "train[:10]" and cols["data_name"] == "d.jsonl"
    field = _data_spec("field", ctx, "train_data_config")
    assert field["text"].text_field == "t" and field["data_name"] == "f.csv" and field["max_seq_len"] == 1024
    olive = _data_spec({"load_dataset_config": {"data_name": "json", "data_files": ["data/train.jsonl"]}}, ctx, "k")
    assert olive["data_name"] == "data/train.jsonl"
    with pytest.raises(PassError, match="no data_name"):
        _data_spec({"load_dataset_config": {}}, ctx, "train_data_config")
