"""Sizes and times as a person reads them: ``547 KiB``, ``1 min 15 s`` (the report, the terminal, the panel's
counterpart in extension/src/runModel.ts)."""

from __future__ import annotations

_SIZE_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB")


def human_size(size: float) -> str:
    value, index = float(size), 0
    while abs(value) >= 1024 and index < len(_SIZE_UNITS) - 1:
        value /= 1024
        index += 1
    return f"{round(value)} bytes" if index == 0 else f"{float(f'{value:.3g}'):g} {_SIZE_UNITS[index]}"


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes = int(seconds // 60)
        return f"{minutes} min {round(seconds - minutes * 60)} s"
    hours = int(seconds // 3600)
    return f"{hours} h {round((seconds - hours * 3600) / 60)} min"


def is_bytes(unit: str | None) -> bool:
    return (unit or "").lower() in ("b", "byte", "bytes")
