"""`validate` and the language server warn (code remote-code) about every key that lets model code run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from config_helpers import CPU_ONLY
from modelmill.config import load_document, validate_document


def _remote_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "remote_model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "marker_remote", "auto_map": {"AutoConfig": "configuration_marker.MarkerConfig",
                                                    "AutoModelForCausalLM": "modeling_marker.MarkerForCausalLM"}}))
    (folder / "configuration_marker.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    return folder


def _diagnose(tmp_path: Path, input_model: dict[str, Any], passes: dict[str, Any]) -> tuple[str, list]:
    config = {"input_model": input_model, "passes": passes, "output_dir": "out"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2))
    diagnostics = validate_document(load_document(path), CPU_ONLY)
    return path.read_text(), [d for d in diagnostics if d.code == "remote-code"]


def test_trust_keys_are_flagged_with_the_code_that_would_run(tmp_path: Path) -> None:
    folder = _remote_folder(tmp_path)
    text, found = _diagnose(
        tmp_path, {"type": "HfModel", "model_path": "remote_model", "load_kwargs": {"trust_remote_code": True}},
        {"builder": {"type": "ModelBuilder", "extra_options": {"hf_remote": "true"}},
         "lora": {"type": "LoRA", "trust_remote_code": True}})
    assert [d.path for d in found] == [("input_model", "load_kwargs", "trust_remote_code"),
                                       ("passes", "builder", "extra_options", "hf_remote"),
                                       ("passes", "lora", "trust_remote_code")]
    for diag in found:
        assert diag.severity == "warning" and diag.hint and "--trust_remote_code" in diag.hint
        assert str(folder) in diag.message and "configuration_marker.py, modeling_marker.py" in diag.message
    assert text[found[0].range.start.offset:found[0].range.end.offset] == '"trust_remote_code"'
    assert not (tmp_path / "ran").exists()  # the check reads config.json; it never imports the folder's code


def test_pickled_pytorch_model_trust_is_flagged(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"")
    _, found = _diagnose(tmp_path, {"type": "PyTorchModel", "model_path": "model.pt",
                                    "model_attributes": {"trust_remote_code": True}},
                         {"conversion": {"type": "OnnxConversion"}})
    assert len(found) == 1 and "pickled module" in found[0].message and "model.pt" in found[0].message


def test_no_warning_without_a_trust_key(tmp_path: Path) -> None:
    _remote_folder(tmp_path)
    _, found = _diagnose(tmp_path, {"type": "HfModel", "model_path": "remote_model",
                                    "load_kwargs": {"trust_remote_code": False}},
                         {"builder": {"type": "ModelBuilder", "extra_options": {"hf_remote": False}}})
    assert found == []
