"""Diagnostics: one problem in a config, with where it is and how to fix it.

The same objects feed the CLI report and, unchanged, the language server (which turns
``range`` into an LSP range, ``code`` into the diagnostic code and ``data`` into quick fixes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from modelmill.config.positions import Range

Severity = Literal["error", "warning", "info", "hint"]
PathElem = str | int
KeyPath = tuple[PathElem, ...]

# Stable codes, with what each means; editors and docs key on these strings.
CODES: dict[str, str] = {
    "syntax": "the text is not valid JSON/YAML",
    "duplicate-key": "a key appears twice in one object; the later value wins",
    "unknown-key": "a key that this section (or this pass) does not have",
    "missing-required": "a required key is missing",
    "invalid-type": "a value of the wrong type",
    "invalid-value": "a value outside the allowed set or range",
    "old-schema": "an older Olive form; `modelmill migrate` rewrites it",
    "key-collision": "a key set both at the top level and under 'engine'",
    "unknown-pass-type": "a pass type that neither ModelMill nor Olive has",
    "pass-not-runnable": "an Olive pass that ModelMill cannot run here",
    "ignored-key": "a key Olive accepts and ignores (with a warning)",
    "unsupported-precision": "a precision the pass does not support",
    "unsupported-provider": "a pass that does not support the target's execution provider",
    "unsupported-model-type": "an Olive model type ModelMill does not run",
    "unsupported-system": "an AzureML system or azureml_client, which Olive 0.13 and ModelMill do not have",
    "searchable-without-search": "a search-only value used without search_strategy",
    "undefined-reference": "a name that refers to no system, evaluator or data config",
    "duplicate-name": "two data configs or metrics with the same name",
    "metric-priority": "sub-metric priorities break Olive's rules",
    "ep-device-mismatch": "an execution provider that does not run on the accelerator's device",
    "ep-not-installed": "an execution provider that the installed onnxruntime does not have",
    "model-kind-mismatch": "a pass that cannot take the model the previous step produces",
    "redundant-pass": "a pass whose work an earlier pass already did",
    "model-type-mismatch": "a model_type that does not match the model's architecture",
    "hub-id-not-local": "a Hugging Face hub id where only local folders can be read",
    "path-not-found": "a local path that does not exist",
    "unsafe-output-dir": "an output_dir a run must not replace (holds files ModelMill did not write, a link, "
                         "or a folder such as the workspace, home or the input model)",
    "olive-incompatible": "valid for ModelMill, but Olive 0.13 fails on it",
    "ray-not-installed": "the host is a Ray cluster, but the ray package is not installed",
    "unused-system": "a Ray system that neither host nor target names",
    "remote-code": "a key that lets code shipped with the model run",
}


@dataclass(frozen=True)
class Diagnostic:
    """One finding. ``path`` is the key path in the source document, ``data`` feeds quick fixes.

    ``data`` keys used so far: ``replace_with`` (what to put in place of the flagged text:
    a key name when the range is a key, else a value), ``remove`` (True: delete the flagged
    entry), ``migrate`` (True: `migrate_document` fixes it), ``install`` (a pip requirement).
    """

    range: Range
    severity: Severity
    code: str
    message: str
    hint: str | None = None
    path: KeyPath = ()
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self, file: str | None = None) -> dict[str, Any]:
        """The JSON form `modelmill validate --json` prints (docs/diagnostics.md, "JSON output").

        Lines and columns are 0-based, as in the language server's ranges (columns count code
        points; the server converts them to the client's encoding); ``offset`` is the character
        offset into the text.
        """
        result: dict[str, Any] = {
            "severity": self.severity, "code": self.code, "message": self.message, "hint": self.hint,
            "path": list(self.path), "range": {"start": _position_json(self.range.start),
                                               "end": _position_json(self.range.end)},
            "data": _json_safe(self.data)}
        if file is not None:
            result = {"file": file, **result}
        return result


def _position_json(position: Any) -> dict[str, int]:
    return {"line": position.line, "character": position.col, "offset": position.offset}


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    """Quick-fix payloads as JSON values (anything that is not plain JSON becomes its string)."""

    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {str(key): plain(item) for key, item in value.items()}
        return str(value)

    return {key: plain(value) for key, value in data.items()}


def replacing(value: Any) -> dict[str, Any]:
    """``data`` for a quick fix that puts ``value`` in place of the flagged text (none for None)."""
    return {} if value is None or value == "" else {"replace_with": value}


SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2, "hint": 3}


def sort_key(diag: Diagnostic) -> tuple[int, int, int, str]:
    return diag.range.start.line, diag.range.start.col, SEVERITY_ORDER[diag.severity], diag.code


def format_path(path: KeyPath) -> str:
    """("passes", "q", 0) → passes.q[0]"""
    text = ""
    for elem in path:
        text += f"[{elem}]" if isinstance(elem, int) else (f".{elem}" if text else str(elem))
    return text


def format_diagnostic(diag: Diagnostic, file: str) -> str:
    """``file:line:col: severity code: message`` (1-based), then an indented hint line."""
    start = diag.range.start
    text = f"{file}:{start.line + 1}:{start.col + 1}: {diag.severity} {diag.code}: {diag.message}"
    if diag.hint:
        text += f"\n    hint: {diag.hint}"
    return text
