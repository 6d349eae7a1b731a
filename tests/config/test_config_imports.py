"""config/ must stay light: no torch, onnxruntime or transformers, even after checking a config."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from config_helpers import DATA

_SCRIPT = textwrap.dedent("""
    import importlib, sys
    import modelmill.config as config
    from modelmill.passes import registry
    try:
        registry.all_passes()
    except ImportError:  # pass modules still being written: use the ones that exist
        def importable(name):
            try:
                importlib.import_module(name)
            except ImportError:
                return False
            return True
        registry.PASS_MODULES = tuple(m for m in registry.PASS_MODULES if importable(m))
        registry.all_passes.cache_clear()
    doc = config.load_document(sys.argv[1])
    config.validate_document(doc)
    config.migrate_document(doc)
    config.workflow_json_schema()
    heavy = sorted(m for m in ("torch", "onnxruntime", "transformers") if m in sys.modules)
    print("HEAVY:" + ",".join(heavy))
""")


def test_config_does_not_import_heavy_libraries() -> None:
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(DATA / "tutorial_config.json")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY:"
