"""Content-addressed cache of pass outputs, shared across runs.

An entry's key hashes the input model's fingerprint (every file of the model), the pass type,
a digest of the pass's code, its parameters, the accelerator and the library versions (ModelMill's
own included), so the same step never runs twice and a changed pass never serves an old output. An
entry is a folder ``entries/<key>/`` written under a temporary name and renamed into place only when
complete; its ``entry.json`` lists every file with size and sha256. A look-up checks sizes and
modification times; an entry whose bytes are read (the input of the next pass, or copied into an
output) is checked against its sha256 digests too, and a damaged one is dropped and rebuilt.

The cache folder carries a marker file (``modelmill-cache.json``): ``cache clean`` works only on a
marked folder, and even there removes only what ModelMill names (entries, run folders and logs by
their generated names), never anything else that lies in it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from modelmill.engine.model import ModelRef
from modelmill.engine.output import file_digest, owner_tag
from modelmill.errors import ModelMillError

ENTRY_FILE = "entry.json"
FINGERPRINTS = "fingerprints.json"
MARKER = "modelmill-cache.json"
CACHE_FORMAT = 2
# What ModelMill itself puts in a cache folder; a folder holding only these names is a ModelMill cache.
OWN_NAMES = frozenset({"entries", "evaluations", "logs", "runs", FINGERPRINTS, MARKER})
_KEY = re.compile(r"[0-9a-f]{32}")
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
RACY_NS = 2_000_000_000
"""A file modified less than this long ago is hashed on every look-up (mtimes tick coarsely, FAT's by 2 s)."""


def step_key(input_key: str, pass_type: str, params: dict[str, Any], accelerator: dict[str, str],
             versions: dict[str, str | None], code: str = "", context: dict[str, Any] | None = None) -> str:
    """``context``: what else the pass's output depends on (``Pass.cache_context``, e.g. the machine a
    measured setting was tuned on); None leaves the key as it was without it."""
    fields: dict[str, Any] = {"format": CACHE_FORMAT, "input": input_key, "pass": pass_type, "code": code,
                              "params": params, "accelerator": accelerator, "versions": versions}
    if context is not None:
        fields["context"] = context
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@lru_cache(maxsize=None)
def pass_code_digest(pass_cls: type) -> str:
    """sha256 of the source file that defines a pass: an edited pass gets new cache keys, even before a
    version bump (development installs, patched releases)."""
    try:
        source = inspect.getsourcefile(pass_cls)
        return file_digest(Path(source)) if source else ""
    except (OSError, TypeError):
        return ""


@dataclass
class CacheEntry:
    key: str
    folder: Path
    model: ModelRef
    meta: dict[str, Any]


class Cache:
    """A cache folder. ``create=False`` opens it for reading only: nothing is created or written."""

    def __init__(self, root: Path, create: bool = True) -> None:
        self.root = root
        self.entries = root / "entries"
        self.dropped: list[tuple[str, str]] = []
        """(key, reason) of every damaged entry this object removed; the engine reports them."""
        if create:
            _mark(root)
            self.entries.mkdir(parents=True, exist_ok=True)

    @property
    def marked(self) -> bool:
        """True when the folder carries ModelMill's cache marker (or holds nothing but what a cache holds)."""
        return (self.root / MARKER).is_file() or _looks_like_cache(self.root)

    # --- lookups ------------------------------------------------------------------------------

    def get(self, key: str, verify: bool = True, full: bool = False) -> CacheEntry | None:
        """The complete, intact entry for ``key``; a damaged one is removed and None returned.

        ``verify`` checks that every file is there with its size and, where its mtime moved, its digest;
        ``full`` re-hashes every file (for an entry whose bytes are about to be read anyway).
        """
        folder = self.entries / key
        meta_file = folder / ENTRY_FILE
        if not meta_file.exists():
            return None
        try:
            meta = json.loads(meta_file.read_text())
            damaged = _damaged_file(folder, meta["files"], full) if verify or full else None
            if damaged is not None:
                raise ValueError(f"{damaged}: missing, resized or not matching its sha256")
        except (ValueError, KeyError, OSError, TypeError) as exc:
            self.drop(key, str(exc))
            return None
        model = meta["model"]
        return CacheEntry(key, folder, ModelRef(kind=model["kind"], path=folder / model["relative_path"],
                                                onnx_file=model["onnx_file"], attributes=model["attributes"]), meta)

    def drop(self, key: str, reason: str) -> None:
        """Remove a damaged entry (the next run rebuilds it) and remember why."""
        shutil.rmtree(self.entries / key, ignore_errors=True)
        self.dropped.append((key, reason))

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
        for name, stamp in files.items():  # the stamp the files will have in place (a rename keeps mtimes)
            stamp["mtime_ns"] = (staging / name).stat().st_mtime_ns
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
        if not self.entries.is_dir():
            return rows
        for meta_file in sorted(self.entries.glob(f"*/{ENTRY_FILE}")):
            try:
                meta = json.loads(meta_file.read_text())
            except (ValueError, OSError):
                continue
            rows.append({"key": meta["key"], "pass": meta.get("pass_type"), "created": meta.get("created"),
                         "bytes": sum(f["bytes"] for f in meta["files"].values()), "folder": str(meta_file.parent)})
        return rows

    def clean(self) -> int:
        """Remove every entry, cached evaluation, worker log and leftover; returns the entries removed.

        Only in a marked cache folder, and only items with the names ModelMill gives them: a user's
        ``runs/exp1`` lying in the same folder stays.
        """
        if not self.root.is_dir():
            return 0
        if not self.marked:
            raise ModelMillError(f"{self.root} is not a ModelMill cache (it has no {MARKER}); nothing was removed",
                                 fix="pass the cache folder a run used (--cache_dir), or remove files yourself",
                                 where=str(self.root))
        count = 0
        for item in _children(self.entries):
            if _KEY.fullmatch(item.name) or item.name.startswith(".tmp-"):
                count += not item.name.startswith(".")
                _remove(item)
        for item in _children(self.root / "evaluations"):
            if item.suffix == ".json" and _KEY.fullmatch(item.stem) or item.name.startswith(".tmp-"):
                _remove(item)
        for item in _children(self.root / "logs"):
            if item.suffix == ".log" and _RUN_ID.fullmatch(item.stem):
                _remove(item)
        for item in _children(self.root / "runs"):
            if _RUN_ID.fullmatch(item.name):
                _remove(item)
        (self.root / FINGERPRINTS).unlink(missing_ok=True)
        for name in ("entries", "evaluations", "logs", "runs"):
            folder = self.root / name
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
        return count


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else []


def _remove(item: Path) -> None:
    if item.is_dir() and not item.is_symlink():
        shutil.rmtree(item, ignore_errors=True)
    else:
        item.unlink(missing_ok=True)


def _looks_like_cache(root: Path) -> bool:
    """A folder an older ModelMill made: nothing in it but a cache's own names, and an entries/ folder."""
    try:
        names = {item.name for item in root.iterdir()}
    except OSError:
        return False
    own = {name for name in names if name in OWN_NAMES or name.startswith(f".{FINGERPRINTS}.")}
    return "entries" in names and own == names


def _mark(root: Path) -> None:
    """Mark a folder ModelMill creates (or finds empty, or made before markers existed) as its cache.

    A folder that already holds other things (say an Olive cache) is used but not marked, so that
    ``cache clean`` never touches it.
    """
    marker = root / MARKER
    if marker.is_file():
        return
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()) and not _looks_like_cache(root):
        return
    tmp = root / f".{MARKER}.{owner_tag()}"
    tmp.write_text(json.dumps({"modelmill_cache": True, "format": CACHE_FORMAT}) + "\n")
    tmp.replace(marker)


def _damaged_file(folder: Path, files: dict[str, dict[str, Any]], full: bool) -> str | None:
    """The first file that is missing, resized, or (re-hashed) does not match; None when all are intact.

    Like git's index: without ``full``, a file whose mtime moved is hashed and must match, an untouched
    one is trusted without reading 100s of MB on every look-up. ``full`` hashes every file.
    """
    for name, info in files.items():
        path = folder / name
        if not path.is_file():
            return name
        stat = path.stat()
        if stat.st_size != info["bytes"]:
            return name
        if (full or stat.st_mtime_ns != info.get("mtime_ns")) and file_digest(path) != info["sha256"]:
            return name
    return None


def _model_files(path: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every file of a model (a file, or a folder walked through symbolic links, each real folder once),
    except those under the ``exclude`` folders (the cache's own folders, by exact path).

    Raises when there is no file at all: a fingerprint of nothing would give two different models the
    same cache key.
    """
    if path.is_file():
        return [path]
    skip = {os.path.realpath(folder) for folder in exclude}
    files: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for current, dirs, names in os.walk(path, followlinks=True):
        real = os.path.realpath(current)
        stat = os.stat(current)
        if real in skip or (stat.st_dev, stat.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs.sort()
        files.extend(Path(current) / name for name in names if os.path.isfile(os.path.join(current, name)))
    if not files:
        raise ModelMillError(f"the input model {path} holds no files", fix="point the model path at a folder "
                             "that holds the model's files (config.json and weights, or an .onnx file)",
                             where=str(path))
    return sorted(files)


def known_fingerprint(path: Path, index_file: Path) -> str | None:
    """The fingerprint when every file is in the index with unchanged size and mtime, else None. No hashing,
    except of a file recorded while its mtime was too recent to trust (see ``fingerprint``)."""
    try:
        index: dict[str, Any] = json.loads(index_file.read_text())
        files = _model_files(path, [index_file.parent])
    except (OSError, ValueError, ModelMillError):
        return None
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        entry = index.get(str(file))
        if not entry or entry[0] != f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}":
            return None
        sha = file_digest(file) if len(entry) > 2 else entry[1]  # a racy entry: seen, but hashed again
        name = file.name if path.is_file() else str(file.relative_to(path))
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()[:32]


def fingerprint(path: Path, index_file: Path | None, save: bool = True) -> str:
    """Content hash of a model (or data) file or folder, memoized by (path, size, mtime) like git's index.

    The cache folder (``index_file``'s) is left out when it lies inside the model folder. ``save`` False reads
    the index but writes nothing (a look-up in a cache folder that does not exist yet); no ``index_file``: every
    file is hashed.
    """
    files = _model_files(path, [index_file.parent] if index_file is not None else [])
    try:
        index: dict[str, Any] = json.loads(index_file.read_text()) if index_file is not None else {}
    except (OSError, ValueError):
        index = {}
    digest = hashlib.sha256()
    changed = False
    now = time.time_ns()
    for file in files:
        stat = file.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
        entry = index.get(str(file))
        if not entry or entry[0] != stamp or len(entry) > 2:
            # Git's "racily clean" rule: a file modified within the last moments may change again within the
            # same mtime tick and size, so its digest is marked racy (hashed again on every look-up) until its
            # mtime is safely in the past. It stays in the index: a file seen before is not new to the cache.
            racy = now - stat.st_mtime_ns <= RACY_NS
            entry = [stamp, file_digest(file), *(["racy"] if racy else [])]
            if index.get(str(file)) != entry:
                index[str(file)] = entry
                changed = True
        name = file.name if path.is_file() else str(file.relative_to(path))
        digest.update(f"{name}\0{entry[1]}\n".encode())
    if changed and save and index_file is not None:
        index_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_file.with_name(f".{index_file.name}.{owner_tag()}")
        tmp.write_text(json.dumps(index))
        tmp.replace(index_file)
    return digest.hexdigest()[:32]
