"""lm-eval tasks as metrics (evaluate/lm_eval_bridge.py, evaluate/lm_eval_models.py): the backends score the same
requests alike on one tiny model (Hugging Face, its fp32 ORT GenAI build, that build's graph and the OnnxConversion
export through plain onnxruntime), local tasks of every request kind run offline through evaluate_model, Olive's
LMEvaluator becomes a plan without passes, and a task whose data is only on the Hub stops with the offline error.
The slow test scores the SmolLM2 sample's int4 output on the shipped example task."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lm_eval_tasks import QA, write_tasks
from modelmill.engine.model import ModelRef
from modelmill.errors import ConfigError
from modelmill.evaluate import lm_eval_bridge as bridge
from modelmill.evaluate.runtime import EvaluationError


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tasks(tmp_path_factory.mktemp("lm_eval_tasks"))


@pytest.fixture(scope="module")
def genai_fp32(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    """tiny_llama_dir built by the ORT GenAI model builder in fp32: the same numbers as the HF model."""
    from modelmill.testing.tiny_models import build_genai

    out = build_genai(tiny_llama_dir, tmp_path_factory.mktemp("tiny_llama_genai_fp32"),
                      tmp_path_factory.mktemp("builder_cache_fp32"), precision="fp32")
    return ModelRef(kind="onnx", path=out)


@pytest.fixture()
def no_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty Hugging Face cache: whatever this machine has cached, a Hub dataset is not there."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-home" / "datasets"))
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", Path(tmp_path / "hf-home" / "datasets"))


def _instances(kind: str, arguments: list[tuple]) -> list:
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=args, idx=index) for index, args in enumerate(arguments)]


def test_backends_score_the_same_requests_alike(tiny_llama_dir: Path, genai_fp32: ModelRef,
                                                tiny_llama_onnx: ModelRef) -> None:
    from modelmill.evaluate.lm_eval_models import make_lm
    from pydoc_data.topics import topics

    hf_model = ModelRef("hf", tiny_llama_dir)
    lms = {"hf": make_lm(hf_model, "hf"), "hf batch 4": make_lm(hf_model, "hf", batch_size=4),
           "ortgenai": make_lm(genai_fp32, "ortgenai"), "ort (ModelBuilder graph)": make_lm(genai_fp32, "ort"),
           "ort (OnnxConversion)": make_lm(tiny_llama_onnx, "ort")}
    pairs = [(f"Question: {question}\nAnswer:", f" {choice}") for question, choices, _ in QA[:4] for choice in choices]
    pairs.append(("", "An empty context is scored after the prefix token."))
    scores = {name: lm.loglikelihood(_instances("loglikelihood", pairs)) for name, lm in lms.items()}
    reference = scores["hf"]
    assert all(math.isfinite(score) and score < 0 for score, _ in reference)
    assert len({round(score, 2) for score, _ in reference}) > 3  # the model tells the continuations apart
    for name, other in scores.items():
        assert [greedy for _, greedy in other] == [greedy for _, greedy in reference], name
        assert max(abs(a - b) for (a, _), (b, _) in zip(other, reference)) < 2e-3, name

    text = " ".join(topics[sorted(topics)[0]].split())[:1200]  # longer than max_length 64: several windows
    rolling = {name: make_lm(model, cls, max_length=64).loglikelihood_rolling(_instances("loglikelihood_rolling",
                                                                                          [(text,)]))[0]
               for name, model, cls in (("hf", hf_model, "hf"), ("ortgenai", genai_fp32, "ortgenai"))}
    assert rolling["hf"] < 0 and abs(rolling["hf"] - rolling["ortgenai"]) < 1e-3 * abs(rolling["hf"])

    prompts = [("The statement", {"until": ["\n\n"], "max_gen_toks": 6}), ("A function", {"max_gen_toks": 6})]
    generated = {name: lms[name].generate_until(_instances("generate_until", prompts)) for name in ("hf", "ortgenai")}
    assert generated["hf"] == generated["ortgenai"] and all(isinstance(text, str) for text in generated["hf"])


def test_the_hf_backend_applies_a_lora_adapter(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """A base + adapter input (benchmark -a, HfModel adapter_path) is scored with the adapter active."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from modelmill.evaluate.lm_eval_models import make_lm

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), config).save_pretrained(
        str(tmp_path / "adapter"))
    adapted = ModelRef("hf", tmp_path / "adapter", attributes={"base_model_path": str(tiny_llama_dir),
                                                               "adapter_path": "."})
    pairs = [(f"Question: {question}\nAnswer:", f" {choices[0]}") for question, choices, _ in QA[:3]]
    base = make_lm(ModelRef("hf", tiny_llama_dir), "hf").loglikelihood(_instances("loglikelihood", pairs))
    with_adapter = make_lm(adapted, "hf").loglikelihood(_instances("loglikelihood", pairs))
    assert max(abs(a - b) for (a, _), (b, _) in zip(base, with_adapter)) > 1e-3


def test_local_tasks_run_offline_and_backends_agree(tiny_llama_dir: Path, genai_fp32: ModelRef, tasks: Path) -> None:
    from modelmill.evaluate import evaluate_model

    metrics = [{"name": "tiny_qa", "type": "lm_eval",
                "sub_types": [{"name": "*", "metric_config": {"include_path": str(tasks), "limit": 0}}]},
               {"name": "tiny_text", "type": "lm_eval",
                "sub_types": [{"name": "word_perplexity", "metric_config": {"task": str(tasks / "tiny_text.yaml"),
                                                                             "max_length": 64}},
                              {"name": "bits_per_byte"}]},
               {"name": "tiny_gen", "type": "lm_eval",
                "sub_types": [{"name": "exact_match", "priority": 1, "metric_config": {"include_path": str(tasks)}}]}]
    results = {name: evaluate_model(model, metrics) for name, model in
               (("hf", ModelRef("hf", tiny_llama_dir)), ("ortgenai", genai_fp32))}
    hf, genai = (results[name].by_key() for name in ("hf", "ortgenai"))
    assert list(hf) == ["tiny_qa-acc", "tiny_qa-acc_norm", "tiny_text-word_perplexity", "tiny_text-bits_per_byte",
                        "tiny_gen-exact_match"]
    assert list(genai) == list(hf)
    for key, value in hf.items():
        assert math.isfinite(value.value) and value.metric_type == "lm_eval", key
        assert abs(value.value - genai[key].value) <= 1e-3 * max(1.0, abs(value.value)), key
    assert 0 <= hf["tiny_qa-acc"].value <= 1 and hf["tiny_text-word_perplexity"].value > 1
    assert hf["tiny_text-word_perplexity"].higher_is_better is False and hf["tiny_qa-acc"].higher_is_better
    assert hf["tiny_gen-exact_match"].priority == 1 and hf["tiny_qa-acc"].priority == -1
    details = results["hf"].details["lm_eval"]
    assert set(details["results"]) == {"tiny_qa", "tiny_text", "tiny_gen"}
    assert details["n-samples"]["tiny_qa"] == {"original": len(QA), "effective": len(QA)}  # limit 0: all
    assert details["n-samples"]["tiny_gen"]["effective"] == 4


def test_a_hub_only_task_fails_offline_with_what_to_download(tiny_llama_dir: Path, no_hub_cache: None) -> None:
    with pytest.raises(EvaluationError) as info:
        bridge.measure(ModelRef("hf", tiny_llama_dir), "arc_easy", {"limit": 2})
    message, fix = info.value.message, info.value.fix or ""
    assert "arc_easy" in message and "allenai/ai2_arc" in message and "ARC-Easy" in message
    assert "offline" in message and "--include_path" in fix and "dataset_path: json" in fix
    assert "load_dataset('allenai/ai2_arc', 'ARC-Easy')" in fix


def test_unknown_task_and_missing_data_file_say_so(tiny_llama_dir: Path, tasks: Path, tmp_path: Path) -> None:
    model = ModelRef("hf", tiny_llama_dir)
    with pytest.raises(EvaluationError, match="no task named tiny_qaa") as info:
        bridge.measure(model, "tiny_qaa", {"include_path": str(tasks)})
    assert "tiny_qa" in info.value.message  # the close match
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tiny_qa.yaml").write_text((tasks / "tiny_qa.yaml").read_text().replace("tiny_qa.jsonl", "gone.jsonl"))
    with pytest.raises(EvaluationError, match="gone.jsonl") as info:
        bridge.measure(model, "tiny_qa", {"include_path": str(broken)})
    assert "data_files" in (info.value.fix or "")


def test_offline_hub_sets_and_restores_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with bridge.offline_hub():
        import os

        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
        assert huggingface_hub.constants.HF_HUB_OFFLINE is True and datasets.config.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in __import__("os").environ and huggingface_hub.constants.HF_HUB_OFFLINE is False


RESULTS = {
    "results": {"grp": {"alias": "grp", "acc,none": 0.5, "acc_stderr,none": 0.1},
                "sub_a": {"alias": " - sub_a", "name": "sub_a", "sample_len": 4, "acc,none": 0.25,
                          "acc_stderr,none": 0.2, "exact_match,strict": 1.0, "exact_match,flexible": 0.0,
                          "word_perplexity,none": 12.5, "word_perplexity_stderr,none": "N/A"}},
    "higher_is_better": {"grp": {"acc": True}, "sub_a": {"acc": True, "exact_match": True, "word_perplexity": False}},
    "n-samples": {"sub_a": {"original": 10, "effective": 4}},
}


def test_scores_name_the_task_its_subtasks_and_filters() -> None:
    scores = bridge.scores_of("my_group", "grp", RESULTS, "hf")
    assert scores.values == {("my_group", "acc"): 0.5, ("sub_a", "acc"): 0.25, ("sub_a", "exact_match,strict"): 1.0,
                             ("sub_a", "exact_match,flexible"): 0.0, ("sub_a", "word_perplexity"): 12.5}
    assert scores.higher_is_better[("sub_a", "word_perplexity")] is False
    assert bridge.pick(scores, "my_group", "acc") == ("acc", 0.5, True)
    with pytest.raises(EvaluationError, match="reports no f1"):
        bridge.pick(scores, "my_group", "f1")
    rows = bridge.summary_rows(RESULTS)
    assert ("sub_a", "acc", 0.25, 0.2, 4) in rows and ("sub_a", "exact_match,strict", 1.0, None, 4) in rows
    assert not any(metric in ("sample_len", "name") for _, metric, *_ in rows)


def test_lm_evaluator_becomes_lm_eval_metrics(tmp_path: Path) -> None:
    task_file = tmp_path / "qa.yaml"
    task_file.write_text("# a local task\ntask: my_qa  # named here\ndataset_path: json\n")
    metrics = bridge.evaluator_metrics({"tasks": ["arc_easy", str(task_file), "size_on_disk"], "limit": 8,
                                        "batch_size": 2, "device": "cpu", "model_class": "ortgenai"})
    assert metrics == [
        {"name": "arc_easy", "type": "lm_eval", "sub_types": [{"name": "*", "metric_config": {
            "limit": 8, "batch_size": 2, "model_class": "ortgenai", "device": "cpu"}}]},
        {"name": "my_qa", "type": "lm_eval", "sub_types": [{"name": "*", "metric_config": {
            "limit": 8, "batch_size": 2, "model_class": "ortgenai", "device": "cpu", "task": str(task_file)}}]},
        {"name": "size_on_disk", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]
    with pytest.raises(ConfigError, match="needs tasks"):
        bridge.evaluator_metrics({"limit": 1})
    with pytest.raises(ConfigError, match="unknown key"):
        bridge.evaluator_metrics({"tasks": ["x"], "task": "y"})
    with pytest.raises(EvaluationError, match="model_class"):
        bridge.task_options("x", {"model_class": "vllm"})
    with pytest.raises(EvaluationError, match="unknown metric_config"):
        bridge.task_options("x", {"limt": 3})
    assert bridge.task_options("x", {"limit": 0}).limit is None and bridge.task_options("x", {"limit": 0.5}).limit == 0.5


def test_an_lm_evaluator_workflow_without_passes_plans_the_input_evaluation(tiny_llama_dir: Path,
                                                                            tmp_path: Path) -> None:
    import json

    from modelmill.config import load_workflow
    from modelmill.engine.plan import plan_from_config

    config = {"input_model": {"type": "HfModel", "model_path": str(tiny_llama_dir)},
              "evaluators": {"lm": {"type": "LMEvaluator", "tasks": ["tiny_qa"], "limit": 4}}, "evaluator": "lm",
              "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(config))
    plan = plan_from_config(load_workflow(path))
    assert plan.steps == [] and [(m.name, m.type) for m in plan.metrics] == [("tiny_qa", "lm_eval")]
    assert plan.metrics[0].sub_types[0].metric_config == {"limit": 4}
    path.write_text(json.dumps({**config, "evaluator": None, "evaluators": None}))
    with pytest.raises(ConfigError, match="no passes"):
        plan_from_config(load_workflow(path))
    path.write_text(json.dumps({**config, "evaluate_input_model": False}))
    with pytest.raises(ConfigError, match="no passes"):
        plan_from_config(load_workflow(path))


def test_a_ranked_wildcard_is_refused() -> None:
    from modelmill.evaluate.evaluator import metric_spec

    with pytest.raises(EvaluationError, match="cannot be ranked"):
        metric_spec({"name": "t", "type": "lm_eval", "sub_types": [{"name": "*", "priority": 1}]})
    assert metric_spec({"name": "t", "type": "lm_eval", "sub_types": [{"name": "acc", "priority": 1}]}).type == "lm_eval"


@pytest.mark.slow
def test_smollm2_int4_output_knows_the_example_task(tmp_path: Path) -> None:
    """A real model on the shipped example task (examples/lm_eval/general_knowledge.yaml, 20 questions, 4 choices):
    the SmolLM2 sample's int4 auto-opt output scores well above chance (0.25; it scores 0.65, its Hugging Face
    folder 0.6). Here, not in tests/commands, whose MODELMILL_HOME is per session: the sample is fetched once."""
    from modelmill.cli import main

    output = tmp_path / "smollm2-int4"
    assert main(["auto-opt", "-m", "sample:smollm2", "--precision", "int4", "-o", str(output)]) == 0
    task = Path(__file__).resolve().parents[2] / "examples" / "lm_eval" / "general_knowledge.yaml"
    out = tmp_path / "scores"
    assert main(["benchmark", "-m", str(output), "--tasks", str(task), "--limit", "0", "-o", str(out)]) == 0
    scores = json.loads((out / "metrics.json").read_text())["candidates"]["input"]["metrics"]
    assert scores["general_knowledge-acc"] >= 0.45, scores
