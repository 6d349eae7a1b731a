"""migrate: rewrite an old nested Olive config in the current flat form (stdout, -o FILE or --in-place)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config")
    parser.add_argument("-o", "--output", default=None, help="write here instead of stdout")
    parser.add_argument("--in-place", action="store_true", help="overwrite the config file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing -o file")


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
        from modelmill.engine.output import write_file_output

        # written whole, then renamed: never a half config; -o never replaces a file unasked
        write_file_output(target, lambda tmp: tmp.write_text(text), overwrite=args.in_place or args.overwrite,
                          flag="--in-place" if args.in_place else "-o")
        print(f"wrote {target}", file=sys.stderr)
    return 0
