"""Writing an output folder safely: build under a temporary name, rename into place when complete."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from modelmill.errors import ConfigError, ModelMillError
from modelmill.output_guard import output_refusal


class CorruptFile(ModelMillError):
    """A cached file no longer matches the digest recorded when it was written."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} does not match the sha256 recorded in the cache",
                         fix="nothing to do: ModelMill drops the damaged cache entry and rebuilds it")
        self.path = path


def check_output_target(target: Path, overwrite: bool = False,
                        protected: Iterable[tuple[Path, str]] = ()) -> None:
    """Refuse (before any work) an output folder whose replacement could lose files ModelMill did not write."""
    refusal = output_refusal(target, overwrite=overwrite, protected=protected)
    if refusal is not None:
        raise ConfigError(refusal.message, fix=refusal.fix, where="output_dir")


def temp_sibling(target: Path, run_id: str) -> Path:
    """A scratch folder next to ``target`` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / partial_name(target, run_id)
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def partial_name(target: Path, run_id: str) -> str:
    return f".{target.name}.partial-{run_id}"


def place(tmp: Path, target: Path, overwrite: bool = False, protected: Iterable[tuple[Path, str]] = ()) -> None:
    """Replace ``target`` with the finished ``tmp`` folder; an old output is removed only after.

    The target is checked again here, not only when the plan was made: files may have appeared in it
    during the run.
    """
    check_output_target(target, overwrite, protected)
    old = None
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    elif target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
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


def copy_verified(source: Path, dest: Path, files: dict[str, dict[str, object]]) -> None:
    """Copy the listed files of ``source`` into ``dest``, hashing each while copying (the bytes are read once)
    and comparing with its recorded sha256; raises ``CorruptFile`` on the first mismatch."""
    for name, info in files.items():
        src, out = source / name, dest / name
        out.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with src.open("rb") as reader, out.open("wb") as writer:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
                writer.write(block)
        shutil.copystat(src, out)
        if digest.hexdigest() != info.get("sha256"):
            raise CorruptFile(src)


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


def owner_tag(pid: int | None = None) -> str:
    """``host-pid``: names a process's temporary files; on a cache shared by several machines a pid alone
    is not unique, and one machine's clean-up must never remove another's work in progress."""
    host = socket.gethostname().replace("-", "_").replace("/", "_") or "host"
    return f"{host}-{pid if pid is not None else os.getpid()}"


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` through a temporary name unique to this host and process, then rename: concurrent
    writers on a shared folder each rename a complete file, and readers never see a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{owner_tag()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_file_output(target: Path, write: Callable[[Path], None], *, overwrite: bool = False,
                      inputs: Iterable[Path] = (), flag: str = "-o") -> None:
    """Write a single-file output (a CSV, an adapter file, a config): ``write(tmp)`` fills a temporary file
    beside ``target``, which is renamed into place only when complete.

    Never replaced: a link, a folder, or one of ``inputs``; an existing file only with ``overwrite`` (one
    file carries no manifest, so ModelMill cannot tell its own earlier output from a user's file).
    """
    target = Path(os.path.abspath(target.expanduser()))
    if target.is_symlink():
        raise ConfigError(f"{flag} {target} is a symbolic link; ModelMill does not replace links or what they "
                          "point to", fix=f"choose a new file for {flag}", where=flag)
    if target.is_dir():
        raise ConfigError(f"{flag} {target} is a folder, and this command writes one file",
                          fix=f"give {flag} a file name, e.g. {target / 'output'}", where=flag)
    resolved = target.resolve()
    for source in inputs:
        if source.exists() and source.resolve() == resolved:
            raise ConfigError(f"{flag} {target} is this command's input", fix=f"choose another file for {flag}",
                              where=flag)
    if target.exists() and not overwrite:
        raise ConfigError(f"{flag} {target} already exists", where=flag,
                          fix=f"choose another {flag}, move that file away, or pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
