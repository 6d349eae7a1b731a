"""modelmill.testing is for the tests and the bench scripts only: no product module imports it (deferred imports
included), and its raw JSON-RPC client uses the standard library only, none of the server's code."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "server" / "modelmill"
TESTING = PACKAGE / "testing"


def _imported(source: str) -> set[str]:
    """Every module an import statement names (``from a import b``: ``a`` and ``a.b``); relative imports are
    reported with their leading dots."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.add(module)
            found |= {f"{module.rstrip('.')}.{alias.name}" if node.module else module + alias.name
                      for alias in node.names}
    return found


def _uses_testing(source: str) -> bool:
    """Whether ``source`` (a module of server/modelmill) imports modelmill.testing, absolutely or relatively."""
    return any(name == "modelmill.testing" or name.startswith(("modelmill.testing.", ".testing", "..testing"))
               for name in _imported(source))


def test_no_product_module_imports_modelmill_testing() -> None:
    product = [path for path in PACKAGE.rglob("*.py") if TESTING not in path.parents]
    assert len(product) > 50
    assert [str(path.relative_to(PACKAGE)) for path in product if _uses_testing(path.read_text())] == []


def test_the_check_finds_an_import_of_modelmill_testing() -> None:
    assert _uses_testing("def f():\n    from modelmill.testing.jsonrpc import frame\n")
    assert _uses_testing("import modelmill.testing.tiny_models as t\n")
    assert _uses_testing("from modelmill import testing\n")
    assert _uses_testing("from .. import testing\n")
    assert not _uses_testing("from modelmill.engine import testing_helpers\nimport unittest\n")


def test_the_raw_client_uses_the_standard_library_only() -> None:
    imported = {name.split(".")[0] for name in _imported((TESTING / "jsonrpc.py").read_text())}
    assert "json" in imported and imported - {"__future__"} <= set(sys.stdlib_module_names), imported
