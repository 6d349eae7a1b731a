"""Reports over evaluated candidates: metrics.json, metrics.md (a table) and report.html (tables + plots).

The HTML is self-contained: matplotlib (Agg, via ``matplotlib.figure.Figure``) draws a bar chart per
metric key and, when candidates have both a latency and a size, a latency-vs-size scatter; the PNGs
are embedded as base64 data URIs.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from modelmill.evaluate.results import EvaluationResult, MetricValue
from modelmill.units import human_size, is_bytes


def metric_columns(results: dict[str, EvaluationResult]) -> list[MetricValue]:
    """One MetricValue per key (first seen), in first-seen order: the table columns."""
    seen: dict[str, MetricValue] = {}
    for result in results.values():
        for value in result.values:
            seen.setdefault(value.key, value)
    return list(seen.values())


def format_value(value: float | None, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if is_bytes(unit):
        return human_size(value)
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def header(column: MetricValue) -> str:
    arrow = "↑" if column.higher_is_better else "↓"
    shown = column.unit and not is_bytes(column.unit)  # sizes name their unit in each cell (KiB, MiB, ...)
    return f"{column.key} ({column.unit}) {arrow}" if shown else f"{column.key} {arrow}"


def markdown_table(results: dict[str, EvaluationResult]) -> str:
    columns = metric_columns(results)
    rows = ["| candidate | " + " | ".join(header(c) for c in columns) + " |",
            "|---|" + "---:|" * len(columns)]
    for name, result in results.items():
        values = result.by_key()
        cells = [format_value(values[c.key].value if c.key in values else None, c.unit) for c in columns]
        rows.append(f"| {name.replace('|', '/').replace('<', '&lt;')} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bar_chart(column: MetricValue, results: dict[str, EvaluationResult]) -> str | None:
    from matplotlib.figure import Figure

    names, heights = [], []
    for name, result in results.items():
        value = result.by_key().get(column.key)
        if value is not None and math.isfinite(value.value):
            names.append(name)
            heights.append(value.value)
    if not names:
        return None
    fig = Figure(figsize=(max(4.0, 0.9 * len(names) + 2), 3.2))
    ax = fig.add_subplot()
    best = (max if column.higher_is_better else min)(heights)
    ax.bar(range(len(names)), heights, color=["#2a9d8f" if h == best else "#8ab6d6" for h in heights])
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(column.unit or "value")
    ax.set_title(f"{column.key} ({'higher' if column.higher_is_better else 'lower'} is better)")
    for index, height in enumerate(heights):
        ax.annotate(format_value(height, column.unit), (index, height), ha="center", va="bottom", fontsize=8)
    return _png(fig)


def _latency_key(columns: list[MetricValue]) -> MetricValue | None:
    latencies = [c for c in columns if c.unit == "ms"]
    for preferred in ("avg", "p50", "prefill_ms"):
        for column in latencies:
            if column.sub_type == preferred:
                return column
    return latencies[0] if latencies else None


def _size_key(columns: list[MetricValue]) -> MetricValue | None:
    return next((c for c in columns if c.metric_type == "size_on_disk" or c.unit == "bytes"), None)


def _scatter(latency: MetricValue, size: MetricValue, results: dict[str, EvaluationResult]) -> str | None:
    from matplotlib.figure import Figure

    points = []
    for name, result in results.items():
        values = result.by_key()
        if latency.key in values and size.key in values:
            points.append((name, values[size.key].value / 1e6, values[latency.key].value))
    if not points:
        return None
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    ax.scatter([p[1] for p in points], [p[2] for p in points], color="#e76f51")
    for name, x, y in points:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{size.key} (MB)")
    ax.set_ylabel(f"{latency.key} (ms)")
    ax.set_title("latency vs size (lower left is better)")
    ax.grid(True, alpha=0.3)
    return _png(fig)


def figures(results: dict[str, EvaluationResult]) -> list[tuple[str, str]]:
    """The report's plots as (caption, base64 PNG): latency vs size when both were measured, then a bar chart per
    metric key (the best bar highlighted)."""
    columns = metric_columns(results)
    found = []
    latency, size = _latency_key(columns), _size_key(columns)
    if latency is not None and size is not None:
        image = _scatter(latency, size, results)
        if image:
            found.append(("latency vs size", image))
    for column in columns:
        image = _bar_chart(column, results)
        if image:
            found.append((column.key, image))
    return found


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}td.best{font-weight:bold;color:#1d7a6f}
figure{display:inline-block;margin:0.5em}img{max-width:100%}.muted{color:#666;font-size:13px}"""


def html_report(results: dict[str, EvaluationResult], title: str = "ModelMill evaluation") -> str:
    columns = metric_columns(results)
    best: dict[str, float] = {}
    for column in columns:
        found = [r.by_key()[column.key].value for r in results.values() if column.key in r.by_key()]
        found = [v for v in found if math.isfinite(v)]
        if found:
            best[column.key] = max(found) if column.higher_is_better else min(found)
    head = "".join(f"<th>{html.escape(header(c))}</th>" for c in columns)
    rows = []
    for name, result in results.items():
        values = result.by_key()
        cells = []
        for column in columns:
            value = values[column.key].value if column.key in values else None
            css = "num best" if value is not None and len(results) > 1 and value == best.get(column.key) else "num"
            cells.append(f'<td class="{css}">{html.escape(format_value(value, column.unit))}</td>')
        rows.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    figure_html = "\n".join(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{image}">'
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>" for caption, image in figures(results))
    models = "".join(f"<li><b>{html.escape(name)}</b>: {html.escape(result.model_path)} "
                     f"<span class='muted'>({result.duration_s:.1f} s to evaluate)</span></li>"
                     for name, result in results.items())
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p class='muted'>↑ higher is better, ↓ lower is better; bold marks the best candidate.</p>\n"
            f"<table><thead><tr><th>candidate</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>\n"
            f"<h2>Models</h2><ul>{models}</ul>\n<h2>Plots</h2>\n{figure_html}\n</body></html>\n")


def write_reports(results: dict[str, EvaluationResult], out_dir: Path) -> dict[str, Path]:
    """Write metrics.json, metrics.md and report.html into ``out_dir``, and lm-eval's own results of each
    candidate that ran lm-eval tasks as lm_eval/<candidate>.json.

    Returns {"json": path, "markdown": path, "html": path, "lm_eval:<candidate>": path, ...}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = metric_columns(results)
    payload = {"version": 1,
               "metrics": {c.key: {"unit": c.unit, "higher_is_better": c.higher_is_better, "priority": c.priority,
                                   "metric_type": c.metric_type} for c in columns},
               "candidates": {name: {key: value for key, value in result.to_json().items() if key != "details"}
                              for name, result in results.items()}}
    paths = {"json": out_dir / "metrics.json", "markdown": out_dir / "metrics.md", "html": out_dir / "report.html"}
    paths["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text("# ModelMill evaluation\n\n" + markdown_table(results), encoding="utf-8")
    paths["html"].write_text(html_report(results), encoding="utf-8")
    for name, result in results.items():
        if result.details.get("lm_eval"):
            path = out_dir / "lm_eval" / f"{_file_name(name)}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(result.details["lm_eval"], indent=2) + "\n", encoding="utf-8")
            paths[f"lm_eval:{name}"] = path
    return paths


def _file_name(name: str) -> str:
    """A candidate's label as a file name (labels are input, c1, ...; a path given to evaluate --compare is not)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name).strip("._")
    return cleaned or "model"
