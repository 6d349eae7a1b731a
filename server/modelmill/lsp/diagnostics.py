"""Diagnostics: the config layer's findings as LSP diagnostics, each with a stable code and a link.

``analyze(snapshot, env)`` runs ``modelmill.config.validate_document`` once per document version
(syntax errors, schema errors, old-schema notes, the semantic checks) and ``to_lsp`` converts the
result: ranges to the client's position encoding, ``code`` + ``codeDescription.href`` to
docs/diagnostics.md, the hint appended to the message, and the quick-fix payload
(``replace_with`` / ``remove`` / ``migrate`` / ``install``) with the key path in ``data`` for
code actions.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmill.config import Diagnostic, Environment, validate_document
from modelmill.lsp.documents import Snapshot
from modelmill.lsp.settings import Settings

if TYPE_CHECKING:  # lsprotocol loads after the first diagnostics are sent (early.py uses ``to_json_list``)
    from lsprotocol import types

SOURCE = "modelmill"
SEVERITY = {"error": 1, "warning": 2, "info": 3, "hint": 4}
"""LSP's DiagnosticSeverity values."""
TAGS = {"old-schema": [2], "redundant-pass": [1]}
"""LSP's DiagnosticTag values: 2 Deprecated, 1 Unnecessary."""
DOCS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "diagnostics.md"


SLOW_VALIDATION_MS = 100.0
"""A document whose validation takes longer than this is debounced while typed (by about its validation time)."""
MAX_ADAPTIVE_DELAY_MS = 400


def debounce_ms(setting_ms: int, cost_ms: float | None) -> int:
    """How long to wait after a change before validating: the ``diagnosticsDelayMs`` setting when set (> 0);
    else nothing for a document that validates fast, and about its validation time (at most 400 ms) for a slow
    one, so that typing in a huge config does not keep the server busy validating versions already replaced."""
    if setting_ms > 0:
        return setting_ms
    if cost_ms is None or cost_ms < SLOW_VALIDATION_MS:
        return 0
    return min(int(cost_ms), MAX_ADAPTIVE_DELAY_MS)


def analyze(snap: Snapshot, env: Environment) -> tuple[list[Diagnostic], float]:
    """The document's findings (cached on the snapshot) and how long validation took, in ms."""
    cached = snap.cache.get("diagnostics")
    if cached is not None:
        return cached
    started = time.perf_counter()
    found = validate_document(snap.doc, env)
    result = (found, (time.perf_counter() - started) * 1000)
    snap.cache["diagnostics"] = result
    return result


@functools.lru_cache(maxsize=1)
def _local_docs() -> str | None:
    return DOCS_PAGE.as_uri() if DOCS_PAGE.exists() else None


def docs_href(code: str, settings: Settings) -> str | None:
    """Where a code is explained: ``docsBaseUrl`` + ``#code``, else this checkout's docs/diagnostics.md."""
    if settings.docs_base_url:
        return f"{settings.docs_base_url.rstrip('#')}#{code}"
    page = _local_docs()
    return f"{page}#{code}" if page else None


def _fields(diag: Diagnostic, settings: Settings) -> dict[str, Any]:
    """Everything of one LSP diagnostic but its range, as JSON values (None where absent)."""
    href = docs_href(diag.code, settings)
    return {"message": f"{diag.message}\n{diag.hint}" if diag.hint else diag.message,
            "severity": SEVERITY.get(diag.severity), "code": diag.code, "source": SOURCE,
            "data": {"path": list(diag.path), **_plain(diag.data)}, "tags": TAGS.get(diag.code),
            "codeDescription": {"href": href} if href else None}


def to_lsp(found: list[Diagnostic], snap: Snapshot, settings: Settings) -> list[types.Diagnostic]:
    from lsprotocol import types

    codec = snap.codec
    result = []
    for diag in found:
        fields = _fields(diag, settings)
        severity, tags, description = fields["severity"], fields["tags"], fields["codeDescription"]
        result.append(types.Diagnostic(
            range=codec.range(diag.range), message=fields["message"],
            severity=types.DiagnosticSeverity(severity) if severity is not None else None,
            code=fields["code"], source=fields["source"], data=fields["data"],
            tags=[types.DiagnosticTag(tag) for tag in tags] if tags is not None else None,
            code_description=types.CodeDescription(**description) if description else None))
    return result


def to_json_list(found: list[Diagnostic], snap: Snapshot, settings: Settings) -> list[dict[str, Any]]:
    """``to_lsp`` as the JSON it is sent as (lsprotocol's converter drops absent fields), without lsprotocol."""
    codec = snap.codec
    result = []
    for diag in found:
        fields = {"range": codec.range_json(diag.range), **_fields(diag, settings)}
        result.append({key: value for key, value in fields.items() if value is not None})
    return result


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Quick-fix payloads as JSON values (a replacement may be any JSON value)."""
    import json

    try:
        json.dumps(data)
        return dict(data)
    except (TypeError, ValueError):
        return {key: value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
                for key, value in data.items()}


def to_json(diagnostic: types.Diagnostic) -> dict[str, Any]:
    """An LSP diagnostic as plain JSON (for the modelmill.validate command)."""
    from lsprotocol import converters

    return converters.get_converter().unstructure(diagnostic)
