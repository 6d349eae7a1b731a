"""Rewrite a config in the current flat form, in its own format (JSON or YAML), keeping key order."""

from __future__ import annotations

import json
from typing import Any

import yaml

from modelmill.config.document import Document
from modelmill.config.normalize import normalize
from modelmill.errors import ConfigError


def migrate_document(doc: Document) -> str:
    """The flat form of ``doc`` as text. Comments in YAML are not kept (PyYAML drops them)."""
    if any(d.severity == "error" for d in doc.syntax):
        raise ConfigError("cannot migrate a config with syntax errors", fix="fix the syntax first",
                          where=doc.path)
    normalized = normalize(doc.data)
    flat = normalized.data
    for path, value in normalized.unmigrated:  # what ModelMill reads differently stays as written
        _put(flat, path, value)
    if doc.format == "yaml":
        return yaml.safe_dump(flat, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return json.dumps(flat, indent=2, ensure_ascii=False) + "\n"


def _put(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for elem in path[:-1]:
        data = data[elem]
    data[path[-1]] = value
