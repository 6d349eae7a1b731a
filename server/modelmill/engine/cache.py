"""Content-addressed cache of pass outputs, shared across runs.

An entry's key hashes the input model's fingerprint, the pass type, its parameters, the
accelerator and the library versions, so the same step never runs twice. An entry is a
folder ``entries/<key>/`` written under a temporary name and renamed into place only when
complete; its ``entry.json`` lists every file with size and sha256, checked on every use:
a corrupt or partial entry is dropped and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmill.engine.model import ModelRef
from modelmill.engine.output import file_digest

ENTRY_FILE = "entry.json"
FINGERPRINTS = "fingerprints.json"
CACHE_FORMAT = 1


def owner_tag(pid: int | None = None) -> str:
    """``host-pid``: names a process's temporary files; on a cache shared by several machines a pid alone
    is not unique, and one machine's clean-up must never remove another's work in progress."""
    host = socket.gethostname().replace("-", "_").replace("/", "_") or "host"
    return f"{host}-{pid if pid is not None else os.getpid()}"


def step_key(input_key: str, pass_type: str, params: dict[str, Any], accelerator: dict[str, str],
             versions: dict[str, str | None]) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, "input": input_key, "pass": pass_type, "params": params,
                       "accelerator": accelerator, "versions": versions}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class CacheEntry:
    key: str
    folder: Path
    model: ModelRef
    meta: dict[str, Any]


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries = root / "entries"
        self.entries.mkdir(parents=True, exist_ok=True)

    # --- lookups ------------------------------------------------------------------------------

    def get(self, key: str, verify: bool = True) -> CacheEntry | None:
        """The complete, intact entry for ``key``; a damaged one is removed and None returned."""
        folder = self.entries / key
        meta_file = folder / ENTRY_FILE
        if not meta_file.exists():
            return None
        try:
            meta = json.loads(meta_file.read_text())
            if verify and not _files_intact(folder, meta["files"]):
                raise ValueError("file missing or hash mismatch")
        except (ValueError, KeyError, OSError):
            shutil.rmtree(folder, ignore_errors=True)
            return None
        model = meta["model"]
        return CacheEntry(key, folder, ModelRef(kind=model["kind"], path=folder / model["relative_path"],
                                                onnx_file=model["onnx_file"], attributes=model["attributes"]), meta)

    def contains(self, key: str) -> bool:
        """Cheap check (no hashing) used for plans: is a complete entry there?"""
        return (self.entries / key / ENTRY_FILE).exists()

    # --- writing ------------------------------------------------------------------------------

    def staging(self, key: str) -> Path:
        """A fresh folder to build the entry in; ``commit`` renames it into place."""
        folder = self.entries / f".tmp-{key}-{owner_tag()}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def commit(self, key: str, staging: Path, model: ModelRef, info: dict[str, Any]) -> CacheEntry:
        (staging / ENTRY_FILE).unlink(missing_ok=True)  # a pass may have copied its input's along
        files = {str(p.relative_to(staging)): {"bytes": p.stat().st_size, "sha256": file_digest(p)}
                 for p in sorted(staging.rglob("*")) if p.is_file()}
        target = self.entries / key
        for name, info in files.items():  # the stamp the files will have in place (a rename keeps mtimes)
            info["mtime_ns"] = (staging / name).stat().st_mtime_ns
        relative = model.path.relative_to(staging) if model.path.is_relative_to(staging) else Path(".")
        meta = {"format": CACHE_FORMAT, "key": key, "created": time.time(), "files": files,
                "model": {"kind": model.kind, "relative_path": str(relative), "onnx_file": model.onnx_file,
                          "attributes": model.attributes}, **info}
        (staging / ENTRY_FILE).write_text(json.dumps(meta, indent=2, default=str))
        if target.exists():  # another run finished the same step first: keep theirs
            shutil.rmtree(staging, ignore_errors=True)
        else:
            try:
                staging.rename(target)
            except OSError:  # lost a race with a concurrent writer
                shutil.rmtree(staging, ignore_errors=True)
        entry = self.get(key, verify=False)
        assert entry is not None
        return entry

    def discard_staging(self, pid: int | None = None) -> None:
        """Remove the unfinished entries of this process (or of ``pid`` on this host, e.g. a killed worker)."""
        for folder in self.entries.glob(f".tmp-*-{owner_tag(pid)}"):
            shutil.rmtree(folder, ignore_errors=True)

    # --- housekeeping -------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        rows = []
        for meta_file in sorted(self.entries.glob(f"*/{ENTRY_FILE}")):
            try:
                meta = json.loads(meta_file.read_text())
            except (ValueError, OSError):
                continue
            rows.append({"key": meta["key"], "pass": meta.get("pass_type"), "created": meta.get("created"),
                         "bytes": sum(f["bytes"] for f in meta["files"].values()), "folder": str(meta_file.parent)})
        return rows

    def clean(self) -> int:
        """Remove every entry, cached evaluation, worker log and leftover; returns the entries removed."""
        count = sum(1 for folder in self.entries.iterdir() if not folder.name.startswith("."))
        for name in ("entries", "evaluations", "logs", "runs"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        (self.root / FINGERPRINTS).unlink(missing_ok=True)
        self.entries.mkdir(parents=True, exist_ok=True)
        return count


def _files_intact(folder: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Every file present with its size; its content re-hashed whenever its mtime moved since the commit.

    Like git's index: a file rewritten in place (different mtime) is hashed and must match; an untouched one
    is trusted without reading 100s of MB on every look-up.
    """
    for name, info in files.items():
        path = folder / name
        if not path.is_file():
            return False
        stat = path.stat()
        if stat.st_size != info["bytes"]:
            return False
        if stat.st_mtime_ns != info.get("mtime_ns") and file_digest(path) != info["sha256"]:
            return False
    return True


def _model_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)


def known_fingerprint(path: Path, index_file: Path) -> str | None:
    """The fingerprint when every file is in the index with unchanged size and mtime (no hashing), else None."""
    try:
        index: dict[str, Any] = json.loads(index_file.read_text())
    except (OSError, ValueError):
        return None
    digest = hashlib.sha256()
    for file in _model_files(path):
        stat = file.stat()
        entry = index.get(str(file))
        if not entry or entry[0] != f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}":
            return None
        name = file.name if path.is_file() else str(file.relative_to(path))
        digest.update(f"{name}\0{entry[1]}\n".encode())
    return digest.hexdigest()[:32]


def fingerprint(path: Path, index_file: Path) -> str:
    """Content hash of a model file or folder, memoized by (path, size, mtime) like git's index."""
    files = _model_files(path)
    try:
        index: dict[str, Any] = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    digest = hashlib.sha256()
    changed = False
    for file in files:
        stat = file.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
        entry = index.get(str(file))
        if not entry or entry[0] != stamp:
            entry = [stamp, file_digest(file)]
            index[str(file)] = entry
            changed = True
        name = file.name if path.is_file() else str(file.relative_to(path))
        digest.update(f"{name}\0{entry[1]}\n".encode())
    if changed:
        index_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_file.with_name(f".{index_file.name}.{owner_tag()}")
        tmp.write_text(json.dumps(index))
        tmp.replace(index_file)
    return digest.hexdigest()[:32]
