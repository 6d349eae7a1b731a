"""Settings (section ``modelmill``), workspace trust, and which files are workflow configs.

Settings arrive through ``workspace/configuration`` (pulled after ``initialized`` and again on
every ``workspace/didChangeConfiguration``), or in ``initializationOptions.settings`` for clients
without ``workspace/configuration``. Unknown keys are ignored and a value of the wrong type
keeps the default, so a bad setting never stops the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from modelmill.lsp.shared import DEFAULT_PATTERNS, WORKFLOW_KEYS


@dataclass(frozen=True)
class Settings:
    config_file_patterns: tuple[str, ...] = DEFAULT_PATTERNS
    default_device: str = "cpu"
    default_provider: str | None = None
    cache_dir: str | None = None
    diagnostics_delay_ms: int = 0
    """A fixed debounce of validation after a change; 0 (the default): validate at once, and debounce only
    documents whose validation is slow (``diagnostics.debounce_ms``)."""
    docs_base_url: str | None = None
    """Where diagnostic code links point (extension); default: docs/diagnostics.md of this checkout."""
    trusted: bool = True
    """Workspace trust (from initializationOptions / modelmill/setTrusted, not from the settings)."""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, value: Any, base: Settings | None = None) -> Settings:
        """Settings from a ``modelmill`` section object; missing or malformed keys keep ``base``'s values."""
        base = base or cls()
        if not isinstance(value, dict):
            return base
        changes: dict[str, Any] = {"raw": dict(value)}
        patterns = value.get("configFilePatterns")
        if isinstance(patterns, list) and all(isinstance(p, str) for p in patterns):
            changes["config_file_patterns"] = tuple(patterns)
        for key, attr in (("defaultDevice", "default_device"),):
            if isinstance(value.get(key), str) and value[key]:
                changes[attr] = value[key]
        for key, attr in (("defaultProvider", "default_provider"), ("cacheDir", "cache_dir"),
                          ("docsBaseUrl", "docs_base_url")):
            if key in value and (value[key] is None or isinstance(value[key], str)):
                changes[attr] = value[key] or None
        delay = value.get("diagnosticsDelayMs")
        if isinstance(delay, (int, float)) and not isinstance(delay, bool) and 0 <= delay <= 10_000:
            changes["diagnostics_delay_ms"] = int(delay)
        return replace(base, **changes)

    def with_trust(self, trusted: bool) -> Settings:
        return replace(self, trusted=bool(trusted))


def initial_settings(options: Any) -> tuple[Settings, Settings]:
    """From ``initializationOptions`` (a dict, else ignored): (the base settings that workspace/configuration values
    override, the settings in force: the base with the workspace trust, trusted unless ``trusted`` is false)."""
    options = options if isinstance(options, dict) else {}
    base = Settings.from_json(options.get("settings"), Settings())
    return base, base.with_trust(options.get("trusted", True) is not False)


# ------------------------------------------------------------------ file patterns


@lru_cache(maxsize=64)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A VS Code glob (``**``, ``*``, ``?``, ``[...]``, ``{a,b}``, extglob ``?(x)``/``*(x)``/``+(x)``/``@(x)``)."""
    out = []
    index = 0
    depth = 0
    while index < len(pattern):
        char = pattern[index]
        nxt = pattern[index + 1] if index + 1 < len(pattern) else ""
        if char in "?*+@!" and nxt == "(":
            close = _matching(pattern, index + 1)
            inner = "|".join(_glob_body(part) for part in pattern[index + 2:close].split("|"))
            suffix = {"?": "?", "*": "*", "+": "+", "@": "", "!": ""}[char]
            out.append(f"(?:{inner}){suffix}" if char != "!" else f"(?!(?:{inner}))[^/]*")
            index = close + 1
            continue
        if char == "*" and nxt == "*":
            if pattern[index + 2:index + 3] == "/":
                out.append("(?:.*/)?")
                index += 3
            else:
                out.append(".*")
                index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            close = pattern.find("]", index + 1)
            if close < 0:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1:close].replace("\\", "\\\\")
                out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
                index = close
        elif char == "{":
            depth += 1
            out.append("(?:")
        elif char == "}" and depth:
            depth -= 1
            out.append(")")
        elif char == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + "$", re.IGNORECASE)


def _glob_body(part: str) -> str:
    return glob_regex(part).pattern[:-1]


def _matching(pattern: str, open_at: int) -> int:
    depth = 0
    for index in range(open_at, len(pattern)):
        if pattern[index] == "(":
            depth += 1
        elif pattern[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return len(pattern) - 1


def matches_patterns(path: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Does a file path (any separator) match one of the globs? A pattern without '/' matches the name."""
    posix = path.replace("\\", "/")
    name = posix.rsplit("/", 1)[-1]
    for pattern in patterns:
        try:
            regex = glob_regex(pattern)
        except re.error:
            continue
        target = posix if "/" in pattern else name
        if regex.match(target) or (pattern.startswith("**/") and regex.match("/" + posix.lstrip("/"))):
            return True
    return False


def looks_like_workflow(top_keys: list[str]) -> bool:
    return any(key in WORKFLOW_KEYS for key in top_keys)
