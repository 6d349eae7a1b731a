"""migrate: rewrite an old nested Olive config in the current flat form (stdout, -o FILE or --in-place)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config")
    parser.add_argument("-o", "--output", default=None, help="write here instead of stdout")
    parser.add_argument("--in-place", action="store_true", help="overwrite the config file")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from modelmill.config import load_document, migrate_document

    path = Path(args.config)
    text = migrate_document(load_document(path))
    target = path if args.in_place else Path(args.output) if args.output else None
    if target is None:
        sys.stdout.write(text)
    else:
        tmp = target.with_name(f".{target.name}.tmp")  # written whole, then renamed: never a half config
        tmp.write_text(text)
        tmp.replace(target)
        print(f"wrote {target}", file=sys.stderr)
    return 0
