"""OrtSessionParamsTuning: trials timed, best settings written, model files unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import events, run_pass
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.registry import find_pass
from modelmill.passes.session_params_tuning import OrtSessionParamsTuning


def test_bert_trials(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    result, ctx = run_pass(OrtSessionParamsTuning, tiny_bert_onnx, tmp_path, intra_thread_num_list=[1, 2],
                           execution_mode_list=["ORT_SEQUENTIAL", "ORT_PARALLEL"], inter_thread_num_list=[1],
                           opt_level_list=[1, 99], warmup_runs=1, test_runs=3, sequence_length=16)
    settings = json.loads((result.path / "inference_settings.json").read_text())
    assert len(settings["latency_ms"]) == 8
    assert settings["execution_provider"] == ["CPUExecutionProvider"]
    options = settings["session_options"]
    assert options["intra_op_num_threads"] in (1, 2) and options["graph_optimization_level"] in (1, 99)
    assert settings["best_latency_ms"] == min(settings["latency_ms"].values())
    assert result.attributes["inference_settings"]["session_options"] == options
    assert (result.path / "model.onnx").read_bytes() == tiny_bert_onnx.model_file.read_bytes()
    assert (result.path / "tokenizer.json").exists()
    assert len([e for e in events(ctx, "log") if " ms" in e["message"]]) >= 8
    assert events(ctx, "pass.progress")[-1]["fraction"] == 1.0


def test_genai_model_with_past_kv(tiny_llama_genai: ModelRef, tmp_path: Path) -> None:
    result, _ = run_pass(OrtSessionParamsTuning, tiny_llama_genai, tmp_path, test_runs=2, warmup_runs=1,
                         io_bind=True)
    settings = json.loads((result.path / "inference_settings.json").read_text())
    best = settings["session_options"]["intra_op_num_threads"]
    assert len(settings["latency_ms"]) == len({1, 2, os.cpu_count()})
    decoder = json.loads((result.path / "genai_config.json").read_text())["model"]["decoder"]
    assert decoder["session_options"]["intra_op_num_threads"] == best
    assert decoder["session_options"]["graph_optimization_level"] == "ORT_ENABLE_ALL"
    source = json.loads((tiny_llama_genai.path / "genai_config.json").read_text())["model"]["decoder"]
    assert "intra_op_num_threads" not in source["session_options"]  # the input folder is untouched
    import onnxruntime_genai as og

    og.Model(str(result.path))  # genai accepts the edited config


def test_unavailable_provider(tiny_bert_onnx: ModelRef, tmp_path: Path) -> None:
    with pytest.raises(PassError, match="not available|none of the execution providers"):
        run_pass(OrtSessionParamsTuning, tiny_bert_onnx, tmp_path, providers_list=["NoSuchExecutionProvider"])


def test_alias() -> None:
    assert find_pass("OrtPerfTuning") is OrtSessionParamsTuning
