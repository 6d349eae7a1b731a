"""tune-session-params: time ONNX Runtime settings on a model and write the fastest as Olive's <device>-<ep>.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.cli import main


def test_tunes_the_listed_settings_and_writes_olives_file(tiny_bert_onnx, tmp_path: Path) -> None:
    import onnxruntime as ort

    out = tmp_path / "tuned"
    assert main(["tune-session-params", "-m", str(tiny_bert_onnx.path), "-o", str(out), "--opt_level_list", "1", "99",
                 "--intra_thread_num_list", "1", "2", "--execution_mode_list", "0",
                 "--extra_session_config", '{"session.intra_op.allow_spinning": "0"}']) == 0
    settings = json.loads((out / "cpu-cpu.json").read_text())
    assert settings == json.loads((out / "inference_settings.json").read_text())
    assert settings["execution_provider"] == ["CPUExecutionProvider"]
    assert len(settings["latency_ms"]) == 4  # 2 levels x 2 thread counts x 1 mode
    session = settings["session_options"]
    assert session["graph_optimization_level"] in (1, 99) and session["intra_op_num_threads"] in (1, 2)
    assert session["execution_mode"] == "ORT_SEQUENTIAL"
    assert settings["best_latency_ms"] == min(settings["latency_ms"].values())
    assert session["extra_session_config"] == {"session.intra_op.allow_spinning": "0"}
    # the settings open the tuned model
    options = ort.SessionOptions()
    options.intra_op_num_threads = session["intra_op_num_threads"]
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert ort.InferenceSession(str(next(out.glob("*.onnx"))), options, providers=settings["execution_provider"])


def test_every_tuning_flag_reaches_the_pass(tiny_bert_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune-session-params", "-m", str(tiny_bert_onnx.path), "-o", str(tmp_path / "o"), "--dry_run",
                 "--cpu_cores", "2", "--io_bind", "--inter_thread_num_list", "1", "--enable_profiling",
                 "--memory", "1GB"]) == 0
    out = capsys.readouterr().out
    config = json.loads(out[out.index("{"):])
    params = config["passes"]["session_params_tuning"]
    assert params["cpu_cores"] == 2 and params["io_bind"] is True and params["inter_thread_num_list"] == [1]
    assert params["enable_profiling"] is True and params["providers_list"] == ["CPUExecutionProvider"]
    assert config["systems"]["local_system"]["accelerators"][0]["memory"] == "1GB"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--account_name", "a"], "--account_name"),
])
def test_refusals(tiny_bert_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                  expected: str) -> None:
    assert main(["tune-session-params", "-m", str(tiny_bert_onnx.path), "-o", str(tmp_path / "o"), *argv]) != 0
    assert expected in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_hugging_face_model_is_refused(tiny_bert_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune-session-params", "-m", str(tiny_bert_dir), "-o", str(tmp_path / "o")]) != 0
    assert "capture-onnx-graph" in capsys.readouterr().err


def test_predict_with_kv_cache_reaches_the_pass_and_times_a_decode_step(tiny_llama_genai, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import make_context

    from modelmill.passes.session_params_tuning import OrtSessionParamsTuningParams, _inputs

    assert main(["tune-session-params", "-m", str(tiny_llama_genai.path), "-o", str(tmp_path / "o"), "--dry_run",
                 "--predict_with_kv_cache"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["passes"]["session_params_tuning"]["predict_with_kv_cache"] is True
    params = OrtSessionParamsTuningParams(predict_with_kv_cache=True, sequence_length=16)
    feeds = _inputs(tiny_llama_genai, params, make_context(tmp_path / "ctx", "tune"))
    assert feeds["input_ids"].shape == (1, 1) and feeds["attention_mask"].shape == (1, 17)
    past = [v for k, v in feeds.items() if k.startswith("past_key_values")]
    assert past and all(v.shape[2] == 16 for v in past)


@pytest.mark.slow
def test_predict_with_kv_cache_tunes_a_decoder(tiny_llama_genai, tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    assert main(["tune-session-params", "-m", str(tiny_llama_genai.path), "-o", str(out), "--predict_with_kv_cache",
                 "--intra_thread_num_list", "1"]) == 0
    settings = json.loads((out / "cpu-cpu.json").read_text())
    assert settings["session_options"]["intra_op_num_threads"] == 1 and settings["best_latency_ms"] > 0
