"""quantize / auto-opt -d: Olive's dataset flags → a HuggingfaceContainer data config that the calibration loader
(engine/data.py) reads from local files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelmill.cli import main
from modelmill.engine.data import calibration_feeds, onnx_input_specs

MARKER = "zebra quantum calibration"


def _data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"body": f"{MARKER} sample {i} " * 8, "other": "ignored"} for i in range(6)]
    (folder / "calib.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return folder / "calib.jsonl"


def _dry(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*argv, "--dry_run"]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def _decoded(model, config: dict, samples: int = 3) -> list[str]:
    from tokenizers import Tokenizer

    feeds = calibration_feeds(model, config, onnx_input_specs(model.model_file), samples, sequence_length=16)
    tokenizer = Tokenizer.from_file(str(model.path / "tokenizer.json"))
    return [tokenizer.decode(f["input_ids"][0].tolist()) for f in feeds]


@pytest.mark.parametrize("form", ["file", "folder+data_files", "folder"])
def test_the_data_config_reads_the_named_local_data(tiny_llama_onnx, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], form: str) -> None:
    data = _data(tmp_path / "data")
    flags = {"file": ["-d", str(data)], "folder+data_files": ["-d", str(data.parent), "--data_files", data.name],
             "folder": ["-d", str(data.parent)]}[form]
    config = _dry(["quantize", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o"), "--precision", "int8",
                   *flags, "--text_field", "body", "--max_samples", "2", "--max_seq_len", "16"], capsys)
    data_config = config["data_configs"][0]
    assert data_config["pre_process_data_config"]["text_cols"] == "body"
    static = next(p for p in config["passes"].values() if p["type"] == "OnnxStaticQuantization")
    assert static["data_config"] == data_config["name"]
    texts = _decoded(tiny_llama_onnx, data_config)
    assert len(texts) == 2 and all("zebra" in t for t in texts)  # max_samples caps; the file's text, not pydoc's


def test_input_cols_choose_the_column(tiny_llama_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data(tmp_path / "data")
    config = _dry(["auto-opt", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o"), "-d", str(data),
                   "--input_cols", "other"], capsys)
    assert config["data_configs"][0]["pre_process_data_config"]["input_cols"] == ["other"]
    assert all("ignored" in t for t in _decoded(tiny_llama_onnx, config["data_configs"][0], 1))


@pytest.mark.slow
def test_quantize_runs_static_quantization_on_the_data(tiny_llama_onnx, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    data = _data(tmp_path / "data")
    out = tmp_path / "q"
    assert main(["quantize", "-m", str(tiny_llama_onnx.path), "-o", str(out), "--precision", "int8", "-d", str(data),
                 "--text_field", "body", "--max_samples", "4", "--use_qdq_encoding"]) == 0
    model_file = next(out.glob("*.onnx"))
    ops = {n.op_type for n in onnx.load(str(model_file)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones((1, 6), dtype=np.int64) for i in session.get_inputs()}
    assert np.isfinite(session.run(None, feeds)[0]).all()


def test_a_hub_dataset_name_is_refused_with_the_fix(tiny_llama_onnx, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quantize", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "o"), "--precision", "int8",
                 "-d", "wikitext", "--subset", "wikitext-2-raw-v1"]) != 0
    err = capsys.readouterr().err
    assert "local_dataset" in err or "data_files" in err
