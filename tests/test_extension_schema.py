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
