"""Shared constants for the config tests (a uniquely named module: other test folders have conftests)."""

from __future__ import annotations

from pathlib import Path

from modelmill.config import Environment

DATA = Path(__file__).parent / "data"
# A machine with the plain onnxruntime wheel, so results do not depend on what is installed here.
CPU_ONLY = Environment(frozenset({"CPUExecutionProvider"}))
