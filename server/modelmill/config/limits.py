"""Bounded loading: what reading and parsing one config may cost.

A workflow config is a few kilobytes. The limits below are far above that and keep a broken or
hostile file (a symlink to /dev/zero, a YAML alias bomb, 10,000 nested brackets) from exhausting
memory, the recursion limit or the language server's time. ``validate``, ``run`` and the language
server all read configs through here; each breach is one error naming the file, the problem and
the fix.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from modelmill.errors import ConfigError

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Largest config read or parsed. Real configs are under 100 KB; 4 MB still parses in about a second."""

MAX_DEPTH = 64
"""Deepest nesting of objects and arrays. Olive configs nest about 8 deep; the parsers and checks recurse
once or twice per level, and Python stops at 1,000 frames."""

MAX_YAML_ALIASES = 1_000
"""Alias uses (``*name``) in one YAML file. A config uses a handful; thousands only serve an alias bomb."""

MAX_YAML_ALIAS_VALUES = 10_000
"""Values that aliases add to a YAML file once expanded. A config repeats a list or a section a few times
(hundreds of values); a 469-byte alias bomb adds about 10^9. Converting and checking 10,000 values takes
about 0.3 s, the most one keystroke in the language server may cost."""

MAX_SYNTAX_PROBLEMS = 100
"""Syntax problems reported for one document; the rest become one summary. One missing bracket or quote can
make every later token a problem (5,000 unclosed '{' gave 10,000), and each one reported costs the editor a
squiggle, a code-action scan and its share of every publishDiagnostics message."""

_SIZE_FIX = "a workflow config is a few kilobytes: point at the .json/.yaml config itself"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MiB"


def read_config_text(path: str | Path) -> str:
    """The text of a config file: a regular file, at most MAX_CONFIG_BYTES, UTF-8 (a BOM is dropped).

    Raises ConfigError for anything else, without reading more than the limit (a device or FIFO is
    refused before any byte is read).
    """
    where = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read the config: {exc.strerror or exc}",
                          fix="check the path and its permissions", where=where) from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError("the config is a folder, not a file", fix="name the .json/.yaml file inside it",
                              where=where)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("the config is not a regular file (a device, pipe or socket, maybe behind a symlink)",
                              fix="point at a .json/.yaml file on disk", where=where)
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"the config is {info.st_size:,} bytes, more than the {_mib(MAX_CONFIG_BYTES)} limit",
                              fix=_SIZE_FIX, where=where)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)  # the file may grow while it is read
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"the config is more than the {_mib(MAX_CONFIG_BYTES)} limit", fix=_SIZE_FIX, where=where)
    return decode_config(data, where)


def decode_config(data: bytes, where: str) -> str:
    """UTF-8 text (BOM dropped); a binary file is one ConfigError, not a traceback."""
    fix = "a config is a UTF-8 .json/.yaml text file: check that this is the config and not a model or archive"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a text file: byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8",
                          fix=fix, where=where) from None
    if "\x00" in text:
        raise ConfigError(f"not a text file: a NUL byte at offset {text.index(chr(0))}", fix=fix, where=where)
    return text


def text_problem(text: str) -> str | None:
    """Why a config text is too large to parse, or None."""
    if len(text) > MAX_CONFIG_BYTES:
        return (f"the config is {len(text):,} characters, more than the {_mib(MAX_CONFIG_BYTES)} limit; "
                f"{_SIZE_FIX}")
    return None


def depth_problem() -> str:
    return (f"the config nests objects/arrays more than {MAX_DEPTH} levels deep; a workflow config nests about 8 "
            f"levels: check for runaway brackets or indentation")


# Strings (so brackets inside them do not count) or a bracket.
_JSON_NESTING = re.compile(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}]')


def json_depth_offset(text: str) -> int | None:
    """Offset of the first bracket nested deeper than MAX_DEPTH in JSON text, or None (an iterative scan)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None  # the common case: too few brackets to be that deep
    depth = 0
    for match in _JSON_NESTING.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif char in "]}":
            depth = max(depth - 1, 0)
    return None


def yaml_graph_problem(root: Any) -> str | None:
    """Why a composed YAML node graph is too big once aliases are expanded, or None.

    The composer shares one node for an anchor and all its aliases, so the graph is small even for an
    alias bomb; converting it to a tree copies every alias. This walk visits each node once (no
    recursion) and computes, per node, the size and depth of its expansion.
    """
    import yaml

    done: dict[int, tuple[int, int]] = {}  # id(node) → (expanded size, expanded depth)
    started: set[int] = set()
    aliases = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finish = stack.pop()
        key = id(node)
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if finish:
            # a child still open is an ancestor (a recursive alias, reported by the converter): count it once
            sizes = [done.get(id(child), (1, 1)) for child in children]
            size = 1 + sum(s for s, _ in sizes)
            depth = 1 + max((d for _, d in sizes), default=0)
            # the subtree has at most len(started) distinct nodes: the rest are copies made by aliases
            if size - len(started) > MAX_YAML_ALIAS_VALUES:
                return (f"YAML aliases expand this config by more than {MAX_YAML_ALIAS_VALUES:,} values (an alias "
                        f"bomb?); write the values out, or use fewer nested anchors (&name) and aliases (*name)")
            if depth > MAX_DEPTH:
                return depth_problem()
            done[key] = (size, depth)
            continue
        if key in started:
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                return (f"more than {MAX_YAML_ALIASES:,} YAML aliases (*name) in one config; "
                        f"write the values out instead")
            continue
        started.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)
    return None
