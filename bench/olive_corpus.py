"""Validate every Olive workflow config under a folder, as a new user would, and summarize.

    .venv/bin/python bench/olive_corpus.py FOLDER [--list CODE] [--json OUT]

A workflow config is a .json/.yaml/.yml file whose top level is an object with ``passes`` or
``input_model``. Each one is validated from its own folder (the working directory is changed to
it, as when a user runs ``olive run --config x.json`` there), all in this one process. Prints the
number of configs, how many are clean (no errors), errors by code, the pass types that are Olive
passes ModelMill cannot run (``pass-not-runnable``, by name), crashes, and the time taken.
``--list CODE`` also prints every diagnostic with that code (file:line:col: message).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".json", ".yaml", ".yml")


def workflow_configs(folder: Path) -> list[Path]:
    """Files under ``folder`` that look like Olive workflow configs."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and ("passes" in data or "input_model" in data):
            found.append(path)
    return found


def run(folder: Path, list_codes: set[str]) -> dict[str, Any]:
    from modelmill.config import load_document, validate_document

    configs = workflow_configs(folder)
    errors: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    configs_with: Counter[str] = Counter()
    not_runnable: Counter[str] = Counter()
    crashes: list[str] = []
    listed: list[str] = []
    clean = 0
    cwd = os.getcwd()
    started = time.perf_counter()
    for path in configs:
        try:
            os.chdir(path.parent)
            found = validate_document(load_document(path.name))
        except Exception:  # noqa: BLE001 - a crash is what this counts
            crashes.append(f"{path}: {traceback.format_exc().strip().splitlines()[-1]}")
            continue
        finally:
            os.chdir(cwd)
        codes = {d.code for d in found if d.severity == "error"}
        clean += not codes
        configs_with.update(codes)
        for diag in found:
            (errors if diag.severity == "error" else warnings)[diag.code] += 1
            if diag.code == "pass-not-runnable":
                not_runnable[str(diag.data.get("pass_type", diag.message.split(" ", 1)[0]))] += 1
            if diag.code in list_codes:
                start = diag.range.start
                listed.append(f"{path}:{start.line + 1}:{start.col + 1}: {diag.severity} {diag.code}: "
                              f"{diag.message}")
    return {"configs": len(configs), "clean": clean, "errors": dict(errors.most_common()),
            "configs_with_error": dict(configs_with.most_common()), "warnings": dict(warnings.most_common()),
            "not_runnable": dict(not_runnable.most_common()), "crashes": crashes, "listed": listed,
            "seconds": round(time.perf_counter() - started, 2)}


def report(result: dict[str, Any]) -> str:
    lines = [f"configs: {result['configs']}", f"clean (no errors): {result['clean']}",
             f"crashes: {len(result['crashes'])}", f"time: {result['seconds']} s", "errors by code (diagnostics / configs):"]
    lines += [f"  {code}: {count} / {result['configs_with_error'][code]}" for code, count in result["errors"].items()]
    lines.append("warnings by code:")
    lines += [f"  {code}: {count}" for code, count in result["warnings"].items()]
    lines.append("passes not runnable here (pass entries):")
    lines += [f"  {name}: {count}" for name, count in result["not_runnable"].items()]
    lines += [f"crash: {line}" for line in result["crashes"]]
    lines += result["listed"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--list", action="append", default=[], metavar="CODE",
                        help="also print every diagnostic with this code")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.folder.resolve(), set(args.list))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if result["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
