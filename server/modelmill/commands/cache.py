"""cache: list or clean the pass cache."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["ls", "clean"])
    parser.add_argument("--cache_dir", default=None,
                        help="the workflow's cache_dir (default: the command-line cache in $MODELMILL_HOME/cache)")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from modelmill.engine.cache import Cache
    from modelmill.paths import default_cache_dir

    cache = Cache(Path(args.cache_dir).resolve() if args.cache_dir else default_cache_dir(), create=False)
    if args.action == "clean":
        print(f"removed {cache.clean()} cache entries from {cache.root}")
        return 0
    table = Table("key", "pass", "size", "created", "folder")
    for row in cache.list():
        table.add_row(row["key"][:12], str(row["pass"]), f"{row['bytes'] / 1e6:.1f} MB",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created"] or 0)), row["folder"])
    Console().print(table)
    return 0
