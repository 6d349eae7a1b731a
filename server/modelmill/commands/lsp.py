"""lsp: the language server for editors (LSP over stdio; --tcp PORT to debug); modelmill/lsp/launch.py starts it."""

from __future__ import annotations

import argparse

# launch.py imports only the standard library at its top, as the modules here must; its flags are the one list
# (``python -m modelmill.lsp`` takes the same).
from modelmill.lsp.launch import add_arguments, main

__all__ = ["add_arguments", "run"]


def run(args: argparse.Namespace) -> int:
    return main(args=args)
