"""schema: print (or write with -o) the workflow config JSON Schema."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default=None)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from modelmill.config import workflow_json_schema

    text = json.dumps(workflow_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
