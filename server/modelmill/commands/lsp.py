"""lsp: the language server for editors (LSP over stdio; --tcp PORT to debug); modelmill/lsp/launch.py starts it."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tcp", type=int, default=None, metavar="PORT", help="serve one client over TCP on PORT")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--no-fast-init", action="store_true", help="let pygls answer initialize (slower start)")


def run(args: argparse.Namespace) -> int:
    from modelmill.lsp.launch import main as lsp_main

    return lsp_main(args=args)
