"""Where ModelMill keeps its files: `MODELMILL_HOME` or ~/.cache/modelmill."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    root = os.environ.get("MODELMILL_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "modelmill"
    path.mkdir(parents=True, exist_ok=True)
    return path


def samples_dir() -> Path:
    path = home() / "samples"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_cache_dir() -> Path:
    """The pass cache of command-line runs (auto-opt, quantize, capture-onnx-graph)."""
    return home() / "cache"
