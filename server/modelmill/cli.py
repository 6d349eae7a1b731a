"""Olive-compatible command line: `modelmill <command>` accepts `olive <command>`'s flags.

This module assembles the parser and turns errors into messages and exit codes; each command lives in its own
module under modelmill/commands/. Start-up imports only argparse: heavy libraries load inside the commands that
need them.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from modelmill import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmill",
        description="Turn Hugging Face, PyTorch and ONNX models into fast ONNX Runtime models. "
                    "Accepts Microsoft Olive's commands, flags and workflow configs.")
    parser.add_argument("--version", action="version", version=f"modelmill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from modelmill.commands import register

    register(sub)  # every command, one module each (modelmill/commands/), in --help order
    return parser


class _Refused(Exception):
    """A command line the short path does not take (the full parser then answers it as usual)."""


class _Strict(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Refused(message)


def lsp_args(argv: Sequence[str]) -> argparse.Namespace | None:
    """``modelmill lsp [flags]`` parsed without building every command's parser (about 40 ms of CPU an editor waits
    for on each server start): the lsp command's flags alone (``commands/lsp.py``, the same list), giving the same
    namespace. None for anything else, help and mistakes included: the full parser answers those."""
    if not argv or argv[0] != "lsp" or any(arg.startswith("-h") or arg == "--help" for arg in argv[1:]):
        return None
    from modelmill.commands import lsp

    parser = _Strict(prog="modelmill lsp", add_help=False)
    lsp.add_arguments(parser)
    try:
        args = parser.parse_args(list(argv[1:]))
    except _Refused:
        return None
    args.command, args.func = "lsp", lsp.run
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = lsp_args(sys.argv[1:] if argv is None else argv)
    if args is None:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
    from modelmill.errors import ModelMillError

    try:
        return int(args.func(args) or 0)
    except ModelMillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cancelled; no partial output was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # a plain print() to a closed pipe (`modelmill schema | head`): exit quietly
        from modelmill.pipes import EXIT_STATUS, silence_standard_streams

        silence_standard_streams()
        return EXIT_STATUS
    except Exception:  # noqa: BLE001 - an unexpected failure still ends with a message and a nonzero exit
        import traceback

        traceback.print_exc()
        print("error: ModelMill hit an unexpected internal error (traceback above); no partial output was "
              "written. Please report it with the command you ran.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
