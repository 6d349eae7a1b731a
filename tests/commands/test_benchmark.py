"""`modelmill benchmark` (Olive's lm-eval command) end to end: local task data offline, the scores written into -o
by the run engine (worker, manifest, atomic output) and printed; a Hub-only task fails offline with what to download.

The slow test builds a ModelMill output with auto-opt and checks that the Hugging Face folder and that output score
the task alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_tasks import QA, write_tasks
from modelmill.cli import main
from modelmill.engine.model import ModelRef
from modelmill.output_guard import MANIFEST_NAME, foreign_files


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tasks(tmp_path_factory.mktemp("lm_eval_tasks"))


def _scores(out: Path) -> dict[str, float]:
    return json.loads((out / "metrics.json").read_text())["candidates"]["input"]["metrics"]


def test_benchmark_scores_a_genai_output_offline(tiny_llama_genai: ModelRef, tasks: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scores"
    code = main(["benchmark", "-m", str(tiny_llama_genai.path), "--tasks", str(tasks / "tiny_qa.yaml"), "tiny_gen",
                 "--include_path", str(tasks), "--limit", "0", "--batch_size", "2", "--max_length", "128",
                 "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    scores = _scores(out)
    assert set(scores) == {"tiny_qa-acc", "tiny_qa-acc_norm", "tiny_gen-exact_match"}
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    results = json.loads((out / "lm_eval" / "input.json").read_text())
    assert results["n-samples"]["tiny_qa"] == {"original": len(QA), "effective": len(QA)}
    assert results["modelmill"][0]["model_class"] == "ortgenai"
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["evaluation_only"] and manifest["passes"] == [] and manifest["files"] == {}
    assert manifest["config"]["evaluators"]["evaluator"]["type"] == "LMEvaluator"
    assert foreign_files(out) == []  # every file is listed: a later run may replace the folder
    assert "tiny_qa" in captured.out and "acc_norm" in captured.out and "± stderr" in captured.out
    assert not list(tmp_path.glob(".scores.partial-*"))


def test_benchmark_hub_only_task_fails_offline(tiny_llama_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing cached, whatever this machine holds
    out = tmp_path / "scores"
    code = main(["benchmark", "-m", str(tiny_llama_dir), "--tasks", "arc_easy", "-o", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and not out.exists()
    assert "lm-eval task arc_easy needs the Hugging Face dataset allenai/ai2_arc (config ARC-Easy)" in err
    assert "HF_DATASETS_OFFLINE=1" in err and "--include_path" in err


def test_benchmark_dry_run_shows_olive_s_config(tiny_llama_genai: ModelRef, tasks: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench" / "scores"
    code = main(["benchmark", "-m", str(tiny_llama_genai.path), "--tasks", str(tasks / "tiny_qa.yaml"),
                 "--backend", "ort", "--device", "cpu", "--limit", "0.5", "-o", str(out), "--dry_run",
                 "--save_config_file"])
    assert code == 0
    saved = json.loads((tmp_path / "bench" / "benchmark-config.json").read_text())
    assert saved["evaluators"]["evaluator"] == {"type": "LMEvaluator", "tasks": [str(tasks / "tiny_qa.yaml")],
                                                "batch_size": 1, "max_length": 1024, "device": "cpu", "limit": 0.5,
                                                "model_class": "ort"}
    assert saved["evaluator"] == "evaluator" and "passes" not in saved
    assert saved["input_model"] == {"type": "ONNXModel", "model_path": str(tiny_llama_genai.path)}
    assert json.loads(capsys.readouterr().out) == saved and not out.exists()


@pytest.mark.parametrize("extra, expected", [
    (["--backend", "ort"], "--backend is only for ONNX input models"),
    (["--tasks", "missing.yaml"], "task file missing.yaml does not exist"),
    (["--model_script", "m.py"], "model_script"),
])
def test_benchmark_refusals(tiny_llama_dir: Path, tmp_path: Path, extra: list[str], expected: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["benchmark", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), *extra]
    if "--tasks" not in extra:
        argv += ["--tasks", "tiny_qa"]
    assert main(argv) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_hf_folder_and_its_modelmill_output_score_alike(tiny_llama_dir: Path, tiny_llama_genai: ModelRef,
                                                        tasks: Path, tmp_path: Path) -> None:
    """The same model three ways: the Hugging Face folder (transformers), its fp32 auto-opt output (ORT GenAI) and
    an int4 build: the fp32 output scores as the HF folder does, the int4 one close to it."""
    output = tmp_path / "fp32"
    assert main(["auto-opt", "-m", str(tiny_llama_dir), "--precision", "fp32", "-o", str(output), "--no_tune"]) == 0
    assert (output / "genai_config.json").exists()
    scores = {}
    for name, model in (("hf", tiny_llama_dir), ("fp32", output), ("int4", tiny_llama_genai.path)):
        out = tmp_path / f"scores-{name}"
        assert main(["benchmark", "-m", str(model), "--tasks", "tiny_qa", "tiny_text", "--include_path", str(tasks),
                     "--limit", "0", "--max_length", "64", "-o", str(out)]) == 0
        scores[name] = _scores(out)
    assert set(scores["hf"]) == {"tiny_qa-acc", "tiny_qa-acc_norm", "tiny_text-word_perplexity",
                                 "tiny_text-byte_perplexity", "tiny_text-bits_per_byte"}
    for key, value in scores["hf"].items():
        assert abs(scores["fp32"][key] - value) <= 1e-3 * max(1.0, value), key
    assert abs(scores["int4"]["tiny_qa-acc"] - scores["hf"]["tiny_qa-acc"]) <= 0.35
    ratio = scores["int4"]["tiny_text-word_perplexity"] / scores["hf"]["tiny_text-word_perplexity"]
    assert 0.8 < ratio < 1.25

