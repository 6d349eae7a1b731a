"""auto-opt/optimize with Olive's split flags run CaptureSplitInfo + conversion + SplitModel end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelmill.cli import main


def _cascade(folder: Path, components: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    values = dict(feeds)
    for name in components:
        sess = ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
        values.update(zip([o.name for o in sess.get_outputs()],
                          sess.run(None, {i.name: values[i.name] for i in sess.get_inputs()})))
    return values


@pytest.mark.slow
def test_auto_opt_num_splits_writes_runnable_splits(tiny_llama_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    argv = ["auto-opt", "-m", str(tiny_llama_dir), "-o", str(out), "--num-splits", "2", "--precision", "fp32"]
    assert main(argv) == 0
    manifest = json.loads((out / "modelmill_run.json").read_text())
    assert [p["type"] for p in manifest["passes"]] == ["CaptureSplitInfo", "ModelBuilder", "SplitModel"]
    assert manifest["passes"][-1]["report"]["num_splits"] == 2
    assert {"split_0.onnx", "split_0.onnx.data", "split_1.onnx", "split_1.onnx.data"} <= set(manifest["files"])
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    head = config["hidden_size"] // config["num_attention_heads"]
    feeds = {"input_ids": np.array([[1, 5, 9, 2]], dtype=np.int64), "attention_mask": np.ones((1, 4), np.int64)}
    for layer in range(config["num_hidden_layers"]):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{layer}.{kind}"] = np.zeros((1, config["num_key_value_heads"], 0, head),
                                                                np.float32)
    logits = _cascade(out, ["split_0.onnx", "split_1.onnx"], feeds)["logits"]
    assert logits.shape[:2] == (1, 4) and np.isfinite(logits).all()


def test_optimize_memory_goes_to_the_accelerator(tiny_llama_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Olive's optimize puts --memory (bytes) on the accelerator, where CaptureSplitInfo's cost model reads it."""
    argv = ["optimize", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--num_split", "2",
            "--memory", "1000000", "--dry_run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    config = json.loads(out[out.index("{"):])
    assert config["systems"]["local_system"]["accelerators"][0]["memory"] == 1000000
    passes = [entry["type"] for entry in config["passes"].values()]
    assert passes[0] == "CaptureSplitInfo" and passes[-1] == "SplitModel"


def test_split_flags_pass_the_checks(tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The generated config no longer stops as pass-not-runnable (a dry run reports that too)."""
    argv = ["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--cost-model",
            str(tmp_path / "cost.csv"), "--memory", "2GB", "--dry_run"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "cannot run it here" not in out.out + out.err and '"type": "SplitModel"' in out.out
    assert '"memory": "2GB"' in out.out


@pytest.mark.parametrize("extra, expected", [
    (["--num-splits", "2", "--cost-model", "c.csv", "--memory", "2GB"], "mutually exclusive"),
    (["--cost-model", "c.csv"], "memory is required"),
])
def test_auto_opt_split_flag_refusals(extra: list[str], expected: str, tiny_llama_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), *extra, "--dry_run"]) != 0
    err = capsys.readouterr().err
    assert expected in err and "--cost-model" in err


def test_auto_opt_onnx_input_drops_the_split_passes(tiny_llama_onnx, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """As Olive: an ONNX input model has no module tree to split."""
    argv = ["auto-opt", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o"), "--num-splits", "2", "--dry_run"]
    assert main(argv) == 0
    assert "SplitModel" not in capsys.readouterr().out
