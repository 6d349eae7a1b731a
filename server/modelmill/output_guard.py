"""Which folders a run may replace: only its own earlier output, never a user's files.

A run writes its output under a temporary name and renames it into place; when the target exists,
the old folder is removed. That is safe only for a folder ModelMill wrote itself: one holding its
manifest and nothing but the files the manifest lists. Any other non-empty target is refused before
any pass runs (``--overwrite`` allows it), and some targets are refused always: the file system
root, the home folder, the current and workspace folders, the config's folder, the input model,
the cache, and any folder that holds one of them. The same rules feed ``validate`` and the editor.

Only the standard library here: the config checks, the engine and the language server all use it.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "modelmill_run.json"
_LISTED_EXTRA = ("reports",)  # manifest keys whose values name further files ModelMill wrote
_SHOWN = 3  # unknown files named in a message
_WALK_LIMIT = 1000


@dataclass(frozen=True)
class Refusal:
    """Why a folder may not be the output, and what to do instead."""

    message: str
    fix: str
    always: bool
    """True: refused even with --overwrite (a link, a file, or a folder that holds something precious)."""


def output_refusal(target: Path, *, overwrite: bool = False,
                   protected: Iterable[tuple[Path, str]] = ()) -> Refusal | None:
    """None when ``target`` may receive a run's output; else why not.

    ``protected``: (folder, what it is) pairs that the output may neither be nor contain, on top of the
    file system root, the home folder and the current folder.
    """
    target = Path(os.path.abspath(target.expanduser()))
    if target.is_symlink():
        return Refusal(f"output_dir {target} is a symbolic link (to {os.readlink(target)}); ModelMill does not "
                       "replace links or what they point to", "choose a new output folder (a real path)", True)
    resolved = target.resolve()
    for folder, what in _protected(protected):
        if resolved == folder or _contains(resolved, folder):
            relation = "is" if resolved == folder else "contains"
            return Refusal(f"output_dir {target} {relation} {what} ({folder}); a run replaces its whole output "
                           "folder", f"choose a new folder for the output, e.g. {_suggestion(folder)}", True)
    if not resolved.exists():
        return None
    if not resolved.is_dir():
        return Refusal(f"output_dir {target} is an existing file, not a folder", "choose a new output folder", True)
    foreign = foreign_files(resolved)
    if not foreign or overwrite:
        return None
    shown = ", ".join(foreign[:_SHOWN]) + (f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else "")
    reason = "holds files ModelMill did not write" if (resolved / MANIFEST_NAME).is_file() \
        else "already exists and is not a ModelMill output"
    return Refusal(f"output_dir {target} {reason} ({shown}); a run would replace the whole folder",
                   "choose a new output folder, move those files away, or pass --overwrite to replace it", False)


def foreign_files(folder: Path) -> list[str]:
    """The entries of ``folder`` that its ModelMill manifest does not list (all of them without a manifest).

    The walk stops after ``_WALK_LIMIT`` files (the editor runs this as the user types): no ModelMill output
    holds that many, so a folder that does is foreign whatever its manifest says.
    """
    present = sorted(itertools.islice(_files(folder, folder), _WALK_LIMIT + 1))
    if not present or len(present) > _WALK_LIMIT:
        return present
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        listed = {MANIFEST_NAME, *manifest["files"]}
        for key in _LISTED_EXTRA:
            listed.update(str(v) for v in (manifest.get(key) or {}).values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return present
    return [name for name in present if name not in listed]


def _files(root: Path, folder: Path) -> Iterator[str]:
    """Relative names of the files (and links) under ``folder``, not following links."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _files(root, Path(entry.path))
        else:
            yield os.path.relpath(entry.path, root)


def _protected(extra: Iterable[tuple[Path, str]]) -> list[tuple[Path, str]]:
    folders = [(Path("/"), "the file system root"), (Path.home(), "your home folder"),
               (Path.cwd(), "the current folder"), *extra]
    return [(Path(os.path.abspath(path.expanduser())).resolve(), what) for path, what in folders]


def _contains(folder: Path, inner: Path) -> bool:
    return inner != folder and inner.is_relative_to(folder)


def _suggestion(folder: Path) -> str:
    return str(folder / "models" / "output") if folder != Path("/") else "./models/output"
