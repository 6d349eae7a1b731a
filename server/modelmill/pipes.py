"""When the reader of our output goes away (``modelmill run ... 2>&1 | head -3``).

Python ignores SIGPIPE, so a write to a closed pipe raises ``BrokenPipeError`` instead of ending the
process. Python's docs ("Note on SIGPIPE") advise pointing the stream at /dev/null, so that no later
write nor the flush at exit fails again, and exiting with status 1, which is what the CLI does.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

EXIT_STATUS = 1
"""Python's own exit status on EPIPE (the docs' recommendation)."""


def _fd(stream: IO[Any] | None) -> int | None:
    try:
        return stream.fileno() if stream is not None else None
    except (AttributeError, OSError, ValueError):  # closed, or not backed by a file descriptor
        return None


def _same_file(a: int, b: int) -> bool:
    try:
        first, second = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def silence(stream: IO[Any] | None) -> None:
    """Point ``stream``'s file descriptor, and stdout/stderr where they share its pipe, at /dev/null."""
    broken = _fd(stream)
    if broken is None:
        return
    targets = {broken} | {fd for fd in (_fd(sys.__stdout__), _fd(sys.__stderr__))
                          if fd is not None and fd != broken and _same_file(fd, broken)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in targets:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def silence_standard_streams() -> None:
    """Both standard streams to /dev/null: the process is about to exit after a write failed with EPIPE."""
    for stream in (sys.stdout, sys.stderr):
        silence(stream)
