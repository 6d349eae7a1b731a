"""Versions of the libraries that shape a model, for manifests and cache keys."""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

LIBRARIES = ("modelmill", "torch", "transformers", "onnx", "onnxruntime", "onnxruntime-genai", "onnxscript")


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
