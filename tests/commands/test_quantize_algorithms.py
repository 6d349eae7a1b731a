"""quantize --algorithm/--precision/--implementation: Olive 0.13's (algorithm, precision, implementation) → pass
mapping (olive/cli/quantize.py); the combinations whose pass ModelMill runs build it, the rest are refused naming
Olive's pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelmill.cli import main


def _dry(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*argv, "--dry_run"]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{"):])


def _by_type(config: dict) -> dict[str, dict]:
    return {entry["type"]: entry for entry in config["passes"].values()}


@pytest.mark.parametrize("algorithm, precision, bits, sym", [
    ("gptq", "int4", 4, True), ("gptq", "uint8", 8, False), ("quarot", "int4", 4, True),
    ("spinquant", "uint4", 4, False),
])
def test_gptq_family_on_a_hugging_face_model_runs_gptq_then_the_builder(
        tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], algorithm: str, precision: str,
        bits: int, sym: bool) -> None:
    config = _dry(["quantize", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--algorithm", algorithm,
                   "--precision", precision, "--block_size", "32"], capsys)
    assert list(_by_type(config)) == ["Gptq", "ModelBuilder"]
    gptq = _by_type(config)["Gptq"]
    assert (gptq["bits"], gptq["sym"], gptq["group_size"]) == (bits, sym, 32)
    assert "int4_algo_config" not in _by_type(config)["ModelBuilder"]


def test_quarot_says_it_runs_gptq_without_the_rotation(tiny_llama_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quantize", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--algorithm", "quarot",
                 "--implementation", "olive", "--dry_run"]) == 0
    assert "without a rotation" in capsys.readouterr().err


def test_quarot_implementation_rotates_then_runs_gptq_and_the_builder(
        tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _dry(["quantize", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--algorithm", "quarot",
                   "--implementation", "quarot", "--block_size", "32"], capsys)
    assert list(_by_type(config)) == ["QuaRot", "Gptq", "ModelBuilder"]
    assert _by_type(config)["Gptq"]["group_size"] == 32


@pytest.mark.slow
def test_quarot_implementation_writes_a_model_that_generates(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from modelmill.testing.genai_generate import greedy_tokens

    out = tmp_path / "rotated-int4"
    assert main(["quantize", "-m", str(tiny_llama_dir), "-o", str(out), "--algorithm", "quarot",
                 "--implementation", "quarot", "--block_size", "32"]) == 0
    manifest = json.loads((out / "modelmill_run.json").read_text())
    assert [step["type"] for step in manifest["passes"]][:3] == ["QuaRot", "Gptq", "ModelBuilder"]
    assert len(greedy_tokens(out, [1, 2, 3], max_length=12)) == 9


def test_gptq_calibrates_on_the_data_flags(tiny_llama_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "calib.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"sample {i} " * 20}) for i in range(4)))
    config = _dry(["quantize", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--algorithm", "gptq",
                   "-d", str(data), "--text_field", "text", "--max_samples", "2", "--max_seq_len", "16"], capsys)
    assert _by_type(config)["Gptq"]["data_config"] == config["data_configs"][0]["name"]
    assert config["data_configs"][0]["pre_process_data_config"]["max_samples"] == 2


def test_uint4_rtn_is_asymmetric(tiny_llama_dir: Path, tiny_llama_onnx, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    hf = _dry(["quantize", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "a"), "--precision", "uint4"], capsys)
    assert _by_type(hf)["ModelBuilder"]["int4_is_symmetric"] is False
    onnx = _dry(["quantize", "-m", str(tiny_llama_onnx.path), "-o", str(tmp_path / "b"), "--precision", "uint4"],
                capsys)
    assert _by_type(onnx)["OnnxBlockWiseRtnQuantization"]["is_symmetric"] is False


@pytest.mark.parametrize("model, flags, expected", [
    ("hf", ["--algorithm", "awq"], "AutoAWQQuantizer"),
    ("hf", ["--implementation", "awq", "--algorithm", "awq"], "AutoAWQQuantizer"),
    ("hf", ["--implementation", "quarot"], "add --algorithm quarot"),
    ("hf", ["--algorithm", "spinquant", "--implementation", "spinquant"], "SpinQuant"),
    ("hf", ["--algorithm", "gptq", "--implementation", "autogptq"], "GptqQuantizer"),
    ("hf", ["--algorithm", "seqmse"], "AimetQuantization"),
    ("hf", ["--algorithm", "gptq", "--precision", "int16"], "Gptq"),
    ("hf", ["--implementation", "bnb"], "OnnxBnb4Quantization"),
    ("hf", ["--implementation", "nope"], "unknown implementation"),
    ("onnx", ["--algorithm", "gptq"], "IncDynamicQuantization"),
    ("onnx", ["--algorithm", "awq"], "NVModelOptQuantization"),
    ("onnx", ["--algorithm", "adaround"], "AimetQuantization"),
    ("onnx", ["--algorithm", "quarot"], "QuaRot"),
    ("onnx", ["--implementation", "inc"], "IncDynamicQuantization"),
    ("onnx", ["--precision", "nf4"], "OnnxBnb4Quantization"),
    ("onnx", ["--precision", "fp8"], "NVModelOptQuantization"),
    ("onnx", ["--precision", "fp16"], "--precision"),
])
def test_olive_only_combinations_are_refused_naming_the_pass(
        tiny_llama_dir: Path, tiny_llama_onnx, tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str,
        flags: list[str], expected: str) -> None:
    path = str(tiny_llama_dir if model == "hf" else tiny_llama_onnx.path)
    assert main(["quantize", "-m", path, "-o", str(tmp_path / "o"), *flags]) != 0
    err = capsys.readouterr().err
    assert expected in err and "fix:" in err and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_gptq_runs_and_the_builder_keeps_its_weights(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import onnx

    data = tmp_path / "calib.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"the quick brown fox {i} jumps " * 12}) for i in range(4)))
    out = tmp_path / "q"
    assert main(["quantize", "-m", str(tiny_llama_dir), "-o", str(out), "--algorithm", "gptq", "-d", str(data),
                 "--text_field", "text", "--max_samples", "4", "--max_seq_len", "32"]) == 0
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx"), load_external_data=False).graph.node}
    assert "MatMulNBits" in ops and (out / "genai_config.json").exists()
    manifest = json.loads((out / "modelmill_run.json").read_text())
    assert [p["type"] for p in manifest["passes"]][:1] == ["Gptq"]
