"""Rewrite a config in the current flat form, in its own format (JSON or YAML), keeping key order."""

from __future__ import annotations

import json

import yaml

from modelmill.config.document import Document
from modelmill.config.normalize import normalize
from modelmill.errors import ConfigError


def migrate_document(doc: Document) -> str:
    """The flat form of ``doc`` as text. Comments in YAML are not kept (PyYAML drops them)."""
    if any(d.severity == "error" for d in doc.syntax):
        raise ConfigError("cannot migrate a config with syntax errors", fix="fix the syntax first",
                          where=doc.path)
    flat = normalize(doc.data).data
    if doc.format == "yaml":
        return yaml.safe_dump(flat, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return json.dumps(flat, indent=2, ensure_ascii=False) + "\n"
