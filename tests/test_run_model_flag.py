"""run --config C --model PATH: a published recipe on a local model, saying what it replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelmill.cli import main


def test_olive_int4_recipe_runs_on_a_local_model(tiny_llama_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from modelmill.testing.genai_generate import greedy_tokens

    recipe = {
        "input_model": {"type": "HfModel", "model_path": "Qwen/Qwen3-0.6B", "load_kwargs": {"torch_dtype": "float16"}},
        "passes": {
            "mp": {"type": "SelectiveMixedPrecision", "algorithm": "kld_gradient", "bits": 4, "high_bits": 8,
                   "ratio": 0.65, "group_size": 32, "calibration_samples": 2, "calibration_seq_len": 32},
            "g": {"type": "gptq", "bits": 4, "sym": False, "group_size": 32, "calibration_samples": 4,
                  "calibration_seq_len": 32},
            "r": {"type": "rtn", "bits": 4, "group_size": 32, "lm_head": True, "embeds": True,
                  "overrides": {"lm_head": {"bits": 8}, "model.embed_tokens": {"bits": 8}}},
            "m": {"type": "ModelBuilder", "precision": "int4"},
            "t": {"type": "GraphSurgeries", "surgeries": [{"surgeon": "TieWordEmbeddings"}]},
        },
        "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"),
    }
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    assert main(["run", "--config", str(path), "--model", str(tiny_llama_dir)]) == 0
    err = capsys.readouterr().err
    assert f"--model: HfModel path 'Qwen/Qwen3-0.6B' (input_model.model_path) replaced by {tiny_llama_dir}" in err
    manifest = json.loads((tmp_path / "out" / "modelmill_run.json").read_text())
    assert [p["type"] for p in manifest["passes"]] == ["SelectiveMixedPrecision", "Gptq", "Rtn", "ModelBuilder",
                                                        "GraphSurgeries"]
    import onnx

    nodes = onnx.load(str(tmp_path / "out" / "model.onnx"), load_external_data=False).graph.node
    [embedding] = [n for n in nodes if n.op_type == "GatherBlockQuantized"]  # the 8-bit table, kept quantized
    assert {a.name: a.i for a in embedding.attribute}["bits"] == 8
    assert len(greedy_tokens(tmp_path / "out", [1, 40, 41], max_length=8)) == 5
