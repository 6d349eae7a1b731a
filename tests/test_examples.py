"""The example configs: each validates without errors, and `modelmill run --dry_run` prints its plan (no model runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelmill.config import load_document, validate_document

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.json"))


def test_there_are_example_configs() -> None:
    names = {path.name for path in CONFIGS}
    assert {"minilm_int8.json", "llm_int4_search.json"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_validates_without_errors(path: Path) -> None:
    diagnostics = validate_document(load_document(path))
    errors = [d for d in diagnostics if d.severity == "error"]
    assert not errors, "\n".join(str(d) for d in errors)


def _stand_in(path: Path, request: pytest.FixtureRequest) -> list[str]:
    """``-m TINY`` when the example's sample is not fetched here: a dry run resolves the input model, and
    fetching a sample means a download. The tiny models have the samples' architectures (BERT, Llama)."""
    from modelmill.config import load_workflow
    from modelmill.samples import get_sample

    model_path = str(load_workflow(load_document(path)).input_model.model_path)
    if not model_path.startswith("sample:") or get_sample(model_path).fetched:
        return []
    fixture = "tiny_bert_dir" if "minilm" in model_path else "tiny_llama_dir"
    return ["-m", str(request.getfixturevalue(fixture))]


def _dry_run(path: Path, tmp_path: Path, request: pytest.FixtureRequest) -> subprocess.CompletedProcess[str]:
    # Relative output/cache dirs resolve against the working folder: run in tmp_path so nothing lands in the repo.
    return subprocess.run([sys.executable, "-m", "modelmill", "run", "--config", str(path), "--dry_run",
                           *_stand_in(path, request)],
                          capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ), timeout=300)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_dry_run_prints_the_plan(path: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    proc = _dry_run(path, tmp_path, request)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "plan (" in proc.stderr
    config = json.loads(proc.stdout)
    assert set(config["passes"]) <= set(proc.stderr.split()) | {p.rstrip(":") for p in proc.stderr.split()}
    assert not list(tmp_path.iterdir()), "a dry run must not write anything"


def test_minilm_example_is_the_encoder_int8_chain() -> None:
    config = json.loads((EXAMPLES / "minilm_int8.json").read_text())
    assert config["input_model"]["model_path"] == "sample:minilm"
    assert [p["type"] for p in config["passes"].values()] == [
        "OnnxConversion", "OrtTransformersOptimization", "OnnxDynamicQuantization"]
    subs = {s["name"]: s for m in config["evaluators"][config["evaluator"]]["metrics"] for s in m["sub_types"]}
    assert subs["cosine_mean"]["priority"] == 1
    assert subs["cosine_mean"]["goal"] == {"type": "threshold", "value": 0.99}
    assert {"avg", "p90", "samples_per_s"} <= set(subs)
    assert config["output_dir"] == "models/minilm-int8"


def test_search_example_dry_run_shows_the_search_space(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    proc = _dry_run(EXAMPLES / "llm_int4_search.json", tmp_path, request)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads(proc.stdout)
    builder = config["passes"]["model_builder"]
    assert builder["precision"] == ["int4", "int8"]
    assert builder["int4_block_size"] == [32, 128]
    assert builder["int4_accuracy_level"] == [1, 4]
    assert config["search_strategy"]["sampler"] == "tpe" and config["search_strategy"]["seed"] == 42
    assert config["search_strategy"]["max_samples"] == 8 and config["evaluate_input_model"] is False


def test_search_example_plans_at_least_six_candidates(request: pytest.FixtureRequest) -> None:
    from modelmill.config import load_workflow
    from modelmill.engine.plan import plan_from_config

    path = EXAMPLES / "llm_int4_search.json"
    stand_in = _stand_in(path, request)  # planning resolves the input model: no sample download in a fast test
    overrides = {"input_model.model_path": stand_in[1]} if stand_in else None
    plan = plan_from_config(load_workflow(load_document(path), overrides))
    space = {f"{plan.steps[i].name}.{p}": v for (i, p), v in plan.search_space.dimensions.items()}
    assert space == {"model_builder.precision": ["int4", "int8"], "model_builder.int4_block_size": [32, 128],
                     "model_builder.int4_accuracy_level": [1, 4]}
    assert plan.search_space.size() >= 6
    ranked = sorted((s.priority, f"{m.name}-{s.name}") for m in plan.metrics for s in m.sub_types if s.priority >= 1)
    assert [key for _, key in ranked] == ["speed-decode_tokens_per_s", "size-bytes", "quality-perplexity"]
