"""Validate a document (every problem at once) and load it into a ``WorkflowConfig``."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

from modelmill.config.checks import run_checks
from modelmill.config.diagnostics import Diagnostic, format_diagnostic, sort_key
from modelmill.config.document import Document, load_document
from modelmill.config.models import WorkflowConfig
from modelmill.config.view import ConfigView, Environment
from modelmill.errors import ConfigError


def diagnose(view: ConfigView) -> list[Diagnostic]:
    """Syntax problems, old-form notes, schema errors and semantic findings, in document order."""
    doc = view.doc
    notes = [Diagnostic(doc.range_of(note.path, key=note.key), note.severity, note.code, note.message, note.hint,
                        note.path, note.data) for note in view.normalized.notes]
    findings = [*notes, *run_checks(view)]
    if doc.trusted_until is not None:
        # Past a syntax error the tree may not be what the author meant (a missing brace moves
        # every later key), so only findings before it are reported; "missing" keys may simply
        # be past the break.
        findings = [d for d in findings
                    if d.range.start.offset < doc.trusted_until and d.code != "missing-required"]
    return sorted([*doc.syntax, *findings], key=sort_key)


def validate_document(doc: Document, env: Environment | None = None) -> list[Diagnostic]:
    """Every problem in ``doc``; pure apart from reading the model folder and installed packages."""
    return diagnose(ConfigView.of(doc, env))


def apply_overrides(data: Any, overrides: dict[str, Any] | None) -> Any:
    """Top-level keys replace the config's value, as Olive's CLI flags do; dotted keys set one nested value."""
    if not overrides or not isinstance(data, dict):
        return data
    result = copy.deepcopy(data)
    for key, value in overrides.items():
        parts = key.split(".")
        target = result
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value
    return result


def load_workflow(source: str | Path | Document, overrides: dict[str, Any] | None = None,
                  env: Environment | None = None) -> WorkflowConfig:
    """Load, normalize and check a config; raise ``ConfigError`` listing every error.

    Warnings and hints are kept on the result (``WorkflowConfig.diagnostics``).
    """
    doc = source if isinstance(source, Document) else load_document(source)
    view = ConfigView.of(doc, env)
    view.normalized.data = apply_overrides(view.data, overrides)
    diagnostics = diagnose(view)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise ConfigError(f"the config has {_count(len(errors), 'error')}:\n{format_report(errors, doc.path)}",
                          fix="fix the errors listed (`modelmill validate` also shows warnings)")
    config = WorkflowConfig.model_validate(view.data)
    config._diagnostics = diagnostics
    config._source = doc.path
    return config


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def format_report(diagnostics: list[Diagnostic], file: str) -> str:
    """One block per diagnostic (``file:line:col: severity code: message`` + hint), then a summary line."""
    lines = [format_diagnostic(d, file) for d in sorted(diagnostics, key=sort_key)]
    counts = Counter(d.severity for d in diagnostics)
    summary = ", ".join(_count(counts[s], s) for s in ("error", "warning", "info", "hint") if counts[s])
    lines.append(summary or "no problems found")
    return "\n".join(lines)
