"""A cache of the methods attrs generates for lsprotocol's classes, so that loading pygls costs less.

lsprotocol defines ~570 attrs classes. For each, attrs writes the source of ``__init__``, ``__eq__``,
``__repr__``, ... and compiles it: ``compile`` is about half of the CPU time of importing lsprotocol. A code
object depends only on that source, its file name and the interpreter, so ``attrs_code_cache`` keeps the code
objects (``marshal``), keyed by (source, file name), beside this package's bytecode:
``modelmill/lsp/__pycache__/attrs-<interpreter>-<magic>-<attrs version>.marshal`` (the place and permissions of
the ``.pyc`` files; like them, not written under ``PYTHONDONTWRITEBYTECODE``), and lets attrs use them while the
server is imported. Code compiled anew is written back (the file then holds what this import used), so the cache
follows new lsprotocol or attrs releases by itself. Anything wrong with the cache only means compiling as usual.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PREFIX = f"attrs-{sys.implementation.cache_tag}-"


def _cache_path() -> Path | None:
    try:
        import importlib.util

        import attr

        magic = importlib.util.MAGIC_NUMBER.hex()
        return Path(__file__).resolve().parent / "__pycache__" / f"{PREFIX}{magic}-{attr.__version__}.marshal"
    except Exception:  # noqa: BLE001 - no cache
        return None


def _read(path: Path) -> dict[tuple[str, str], Any]:
    try:
        with path.open("rb") as stream:
            store = marshal.load(stream)
        return store if isinstance(store, dict) else {}
    except Exception:  # noqa: BLE001 - missing, unreadable or from another interpreter: compile anew
        return {}


def _write(path: Path, store: dict[tuple[str, str], Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as stream:
            marshal.dump(store, stream)
        os.replace(partial, path)
        for old in path.parent.glob(f"{PREFIX}*.marshal"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass


@contextlib.contextmanager
def attrs_code_cache() -> Iterator[None]:
    """While inside, attrs compiles the methods it generates through the disk cache (see the module)."""
    try:
        from attr import _make
    except ImportError:
        yield
        return
    path = _cache_path()
    if path is None or "compile" in vars(_make):  # no cache, or one is in use already
        yield
        return
    known = _read(path)
    used: dict[tuple[str, str], Any] = {}
    compiled = 0

    def compile_cached(source: Any, filename: Any, mode: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal compiled
        if not (isinstance(source, str) and isinstance(filename, str) and mode == "exec" and not args
                and not kwargs):
            return compile(source, filename, mode, *args, **kwargs)
        key = (source, filename)
        code = known.get(key)
        if code is None:
            code = compile(source, filename, mode)
            compiled += 1
        used[key] = code
        return code

    _make.compile = compile_cached  # type: ignore[attr-defined]  # shadows the builtin in attrs' module only
    try:
        yield
    finally:
        del _make.compile  # type: ignore[attr-defined]
        if compiled and not sys.dont_write_bytecode:
            _write(path, used)
