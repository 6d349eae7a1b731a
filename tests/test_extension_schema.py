"""The VS Code extension's checked-in JSON Schema (jsonValidation/yamlValidation) is exactly `modelmill schema`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "extension" / "schemas" / "workflow.schema.json"
REFRESH = "python -m modelmill schema > extension/schemas/workflow.schema.json"


def test_extension_schema_is_current() -> None:
    generated = subprocess.run([sys.executable, "-m", "modelmill", "schema"], check=True, capture_output=True,
                               text=True).stdout
    assert json.loads(CHECKED_IN.read_text(encoding="utf-8")) == json.loads(generated), \
        f"extension/schemas/workflow.schema.json is stale: run `{REFRESH}`"


def test_manifest_points_at_the_schema() -> None:
    manifest = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    urls = {entry["url"] for key in ("jsonValidation", "yamlValidation") for entry in manifest["contributes"][key]}
    assert urls == {"./extension/schemas/workflow.schema.json"}


def _validate(path: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "modelmill", "validate", str(path)], capture_output=True, text=True)
    return done.stdout + done.stderr


def test_new_config_templates_validate() -> None:
    """New Workflow Config's templates (LLM INT4, encoder INT8, LoRA fine-tuning) validate without a problem."""
    templates = ROOT / "extension" / "templates"
    index = json.loads((templates / "index.json").read_text(encoding="utf-8"))
    assert {entry["file"] for entry in index} == {p.name for p in templates.glob("*.json")} - {"index.json"}
    for name in ("llm_int4_cpu.json", "encoder_int8.json", "finetune_lora.json"):
        out = _validate(templates / name)
        assert "error" not in out and "warning" not in out, out
