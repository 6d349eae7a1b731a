"""End to end on the real SmolLM2 sample (slow: fetch ≈ 45 s once, build ≈ 15 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelmill.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_int4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e2e") / "smollm2-int4"
    assert main(["auto-opt", "-m", "sample:smollm2", "-o", str(out), "--precision", "int4"]) == 0
    return out


def test_auto_opt_output_matches_the_tutorial_layout(smollm2_int4: Path) -> None:
    for name in ("model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json", "tokenizer_config.json",
                 "modelmill_run.json"):
        assert (smollm2_int4 / name).exists(), name
    assert (smollm2_int4 / "chat_template.jinja").exists() or "chat_template" in (
        smollm2_int4 / "tokenizer_config.json").read_text()
    size_mb = sum(p.stat().st_size for p in smollm2_int4.iterdir()) / 1e6
    assert size_mb < 120  # int4 with quantized embeddings; the fp32 source is 538 MB


def test_chat_answers_about_machine_learning(smollm2_int4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["chat", str(smollm2_int4), "What is machine learning?", "--max_new_tokens", "60"]) == 0
    answer = capsys.readouterr().out.lower()
    assert "learn" in answer and ("data" in answer or "computer" in answer or "algorithm" in answer)


def test_tutorial_script_runs_on_the_output(smollm2_int4: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "chat_with_model.py"), str(smollm2_int4),
                             "What is machine learning?"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "learn" in result.stdout.lower()


def test_tutorial_config_runs_with_run_config(tmp_path: Path) -> None:
    config = json.loads((ROOT / "examples" / "olive_tutorial_config.json").read_text())
    config["engine"]["output_dir"] = str(tmp_path / "optimized")
    config["engine"]["cache_dir"] = str(tmp_path / "cache")
    # The tutorial's latency metric with Olive's defaults (10 warm-up + 20 timed runs) is slow on 2 cores.
    config["evaluators"]["common_evaluator"]["metrics"][0]["sub_types"][0]["metric_config"] = {
        "warmup_num": 1, "repeat_test_num": 3}
    path = tmp_path / "tutorial.json"
    path.write_text(json.dumps(config))
    assert main(["validate", str(path)]) == 0
    assert main(["run", "--config", str(path)]) == 0
    output = tmp_path / "optimized"
    assert (output / "model.onnx").exists() and (output / "report.html").exists()
    manifest = json.loads((output / "modelmill_run.json").read_text())
    assert manifest["search"]["baseline"]["metrics"]["latency-avg"] > 0
    assert manifest["search"]["candidates"][0]["metrics"]["latency-avg"] > 0


def test_samples_path_prints_the_folder_last() -> None:
    result = subprocess.run([sys.executable, "-m", "modelmill", "samples", "path", "smollm2"], capture_output=True,
                            text=True, check=True)
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert (folder / "model.safetensors").exists()
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 30
