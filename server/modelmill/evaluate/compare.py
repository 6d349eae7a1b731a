"""`modelmill evaluate`: measure one model, or two side by side, and print a table or JSON.

The measuring is an ``EvaluateRun`` (evaluate/job.py) in the run engine's worker process, as in the editor;
this module renders its events on stderr and its results on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable


def run_evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from modelmill.engine.runner import start_run
    from modelmill.engine.workflow import new_run_id
    from modelmill.evaluate.job import REPORT_FILES, EvaluateRun
    from modelmill.evaluate.results import EvaluationResult
    from modelmill.render import format_value, stderr_console

    console = stderr_console()
    labels = {"model": args.model, "compare": args.compare}
    job = EvaluateRun(args.model, args.compare, args.metrics, args.reference,
                      Path(args.report) if args.report else None, bool(getattr(args, "trust_remote_code", False)))
    handle = start_run(job, new_run_id(), [_renderer(console, labels)])
    try:
        while not handle.wait(0.2):  # short waits: Ctrl-C is noticed between them
            pass
    except KeyboardInterrupt:
        handle.cancel()
    outcome = handle.result()
    if outcome.status == "cancelled":
        print("cancelled; no partial output was written", file=sys.stderr)
        return 130
    if outcome.status != "succeeded":
        return 2 if (outcome.error or {}).get("kind") == "ConfigError" else 1
    finished = next(e for e in handle.events() if e["type"] == "run.finished")
    results = {labels[label]: EvaluationResult.from_json(data) for label, data in finished["results"].items()}
    if finished.get("output_dir"):
        folder = Path(finished["output_dir"])
        console.print(f"reports: {', '.join(str(folder / name) for name in REPORT_FILES)}")
    if args.json:
        payload = {label: result.to_json() for label, result in results.items()}
        print(json.dumps(payload if args.compare else payload[args.model], indent=2))
        return 0
    table = Table("metric", *results.keys(), *(["ratio"] if args.compare else []))
    first, *rest = results.values()
    for value in first.values:
        row = [f"{value.key} ({value.unit})" if value.unit else value.key, format_value(value.value)]
        if rest:
            other = rest[0].get(value.key)
            row.append(format_value(other))
            row.append(f"{other / value.value:.2f}x" if other and value.value else "")
        table.add_row(*row)
    Console(file=sys.stdout).print(table)
    return 0


def _renderer(console: Any, labels: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    """The evaluation's events as lines on stderr: each model as it starts, each value as it is measured, and a
    failure as ``modelmill`` prints any error (message, fix)."""
    from rich.markup import escape

    from modelmill.render import format_value

    paths: dict[str, str] = {}

    def render(event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "run.started":
            paths.update(event["plan"].get("evaluate") or {})
        elif kind == "evaluation.started":
            console.print(f"[bold]evaluating[/] {paths.get(event['candidate'], event['candidate'])}")
        elif kind == "metric.measured":
            label = labels.get(event.get("candidate") or "model") or ""
            console.print(f"  [dim]{label}[/]: {event['key']} = {format_value(event['value'], event.get('unit', ''))}")
        elif kind == "warning":
            console.print(f"[yellow]warning[/]: {escape(str(event['message']))}", highlight=False)
        elif kind == "error":
            _print_error(event)

    return render


def _print_error(event: dict[str, Any]) -> None:
    if event.get("kind") == "internal":
        if event.get("traceback"):
            print(event["traceback"], file=sys.stderr)
        print(f"error: {event['message']}", file=sys.stderr)
        print("error: ModelMill hit an unexpected internal error (traceback above); no partial output was "
              "written. Please report it with the command you ran.", file=sys.stderr)
        return
    text = f"{event['where']}: {event['message']}" if event.get("where") else str(event["message"])
    if event.get("fix"):
        text += f"\n  fix: {event['fix']}"
    print(f"error: {text}", file=sys.stderr)
