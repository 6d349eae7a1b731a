"""validate: check a workflow config and print every problem as file:line:col (exit 1 on errors)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config")
    parser.add_argument("--json", action="store_true", help="print the diagnostics as JSON")


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from modelmill.config import format_report, load_document, validate_document

    path = Path(args.config)
    document = load_document(path)
    diagnostics = validate_document(document)
    errors = [d for d in diagnostics if d.severity == "error"]
    if args.json:
        print(json.dumps([d.to_json(str(path)) for d in diagnostics], indent=2))
    else:
        if diagnostics:
            print(format_report(diagnostics, str(path)))
        counts = {s: sum(1 for d in diagnostics if d.severity == s) for s in ("error", "warning", "info", "hint")}
        summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n) or "no problems"
        print(f"{path}: {summary}", file=sys.stderr)
    return 1 if errors else 0
