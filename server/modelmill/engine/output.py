"""Writing an output folder safely: build under a temporary name, rename into place when complete."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def temp_sibling(target: Path, run_id: str) -> Path:
    """A scratch folder next to ``target`` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / partial_name(target, run_id)
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def partial_name(target: Path, run_id: str) -> str:
    return f".{target.name}.partial-{run_id}"


def place(tmp: Path, target: Path) -> None:
    """Replace ``target`` with the finished ``tmp`` folder; an old output is removed only after."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def copy_contents(source: Path, dest: Path, skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Copy every file of ``source`` into ``dest`` except the names in ``skip``."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in skip:
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(folder: Path) -> dict[str, dict[str, object]]:
    """name → size and sha256, for the manifest."""
    return {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": file_digest(p)}
            for p in sorted(folder.rglob("*")) if p.is_file()}
