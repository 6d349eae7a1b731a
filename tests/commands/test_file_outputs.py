"""Commands that write one file (convert-adapters, extract-adapters, migrate -o) never replace an existing file
unless asked with --overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.cli import main


def test_convert_adapters_refuses_an_existing_file_then_overwrites_when_asked(
        lora_adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "weights.safetensors"
    target.write_text("mine")
    args = ["convert-adapters", "-a", str(lora_adapter), "--adapter_format", "safetensors", "-o", str(target)]
    assert main(args) != 0
    assert "already exists" in capsys.readouterr().err and target.read_text() == "mine"
    assert main([*args, "--overwrite"]) == 0
    assert target.stat().st_size > 100


def test_extract_adapters_checks_every_target_before_writing_any(lora_adapter: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["extract-adapters", "-m", str(lora_adapter), "-o", str(out), "-f", "numpy"]) == 0
    written = sorted(out.iterdir())
    assert written and all(p.suffix == ".npz" for p in written)
    before = {p.name: p.read_bytes() for p in written}
    assert main(["extract-adapters", "-m", str(lora_adapter), "-o", str(out), "-f", "numpy"]) != 0
    assert "already exist" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_migrate_output_never_replaces_a_file_unasked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "old.json"
    config.write_text(json.dumps({"input_model": {"type": "HfModel", "config": {"model_path": "m"}},
                                  "passes": {"q": {"type": "OnnxDynamicQuantization", "config": {}}}}))
    target = tmp_path / "new.json"
    target.write_text("mine")
    assert main(["migrate", str(config), "-o", str(target)]) != 0
    assert target.read_text() == "mine"
    assert main(["migrate", str(config), "-o", str(target), "--overwrite"]) == 0
    assert "passes" in json.loads(target.read_text())


def test_generate_cost_model_writes_the_csv_and_refuses_to_replace_it(tiny_llama_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "costs.csv"
    assert main(["generate-cost-model", "-m", str(tiny_llama_dir), "-o", str(target)]) == 0
    header, *rows = target.read_text().splitlines()
    assert header == "module,num_params,num_bytes,num_flops" and any(r.startswith("lm_head,") for r in rows)
    target.write_text("mine")
    assert main(["generate-cost-model", "-m", str(tiny_llama_dir), "-o", str(target)]) != 0
    assert target.read_text() == "mine"
