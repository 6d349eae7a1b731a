"""What the checks look at: the document, its flat form, and the machine they run on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmill.config.accelerators import installed_execution_providers
from modelmill.config.diagnostics import Diagnostic, KeyPath, Severity
from modelmill.config.document import Document
from modelmill.config.normalize import Normalized, PathMap, normalize
from modelmill.config.positions import Position, Range


@dataclass(frozen=True)
class Environment:
    """Facts about the machine that some checks need; tests and editors may pass their own."""

    installed_eps: frozenset[str] | None = None
    """EPs the installed onnxruntime provides; None = onnxruntime is not installed."""
    cwd: Path = field(default_factory=Path.cwd)
    overwrite_output: bool = False
    """The run was asked to replace an existing output folder (``--overwrite``)."""

    @classmethod
    def current(cls) -> Environment:
        return cls(installed_execution_providers(), Path(os.getcwd()))


@dataclass
class ConfigView:
    """A document with its normalized (flat) data; checks read flat paths and report source ranges."""

    doc: Document
    normalized: Normalized
    env: Environment = field(default_factory=Environment.current)

    @classmethod
    def of(cls, doc: Document, env: Environment | None = None, data: Any = None) -> ConfigView:
        """``data`` replaces the document's own data (e.g. after CLI overrides)."""
        normalized = normalize(doc.data if data is None else data)
        return cls(doc, normalized, env or Environment.current())

    @property
    def data(self) -> Any:
        return self.normalized.data

    @property
    def paths(self) -> PathMap:
        return self.normalized.path_map

    def get(self, flat: KeyPath, default: Any = None) -> Any:
        """The flat-form value at a path, or ``default``."""
        value = self.data
        for elem in flat:
            if isinstance(value, dict) and isinstance(elem, str) and elem in value:
                value = value[elem]
            elif isinstance(value, list) and isinstance(elem, int) and 0 <= elem < len(value):
                value = value[elem]
            else:
                return default
        return value

    def system(self, ref: Any) -> dict[str, Any] | None:
        """The system a host/target value names (or the inline one); None if unset or undefined."""
        if isinstance(ref, str):
            ref = self.get(("systems", ref))
        return ref if isinstance(ref, dict) else None

    def range(self, flat: KeyPath, key: bool = False) -> Range:
        return self.doc.range_of(self.paths.source(flat), key=key)

    def diag(self, flat: KeyPath, severity: Severity, code: str, message: str, hint: str | None = None, *,
             key: bool = False, parent_key: bool = False, **data: Any) -> Diagnostic:
        """A diagnostic at the value (or key) of a flat path.

        ``parent_key`` points at the key of the enclosing object instead: used for a missing
        key, which has no range of its own.
        """
        source = self.paths.source(flat)
        if parent_key:
            parent = source[:-1]
            rng = self.doc.range_of(parent, key=True) if parent else _start(self.doc)
        else:
            rng = self.doc.range_of(source, key=key)
        return Diagnostic(rng, severity, code, message, hint, source, data)

    def resolve_path(self, value: str) -> Path | None:
        """A local path as written in the config: relative to the config's folder, else to the cwd."""
        path = Path(value).expanduser()
        if path.is_absolute():
            return path if path.exists() else None
        for base in (self.doc.base_dir, self.env.cwd):
            if base is not None and (base / path).exists():
                return base / path
        return None


def _start(doc: Document) -> Range:
    start = doc.root.range.start if doc.root is not None else Position(0, 0, 0)
    return Range(start, Position(start.line, start.col + 1, start.offset + 1))
