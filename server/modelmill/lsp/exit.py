"""The ``exit`` notification, handled where ``shutdown`` cannot cancel it.

pygls runs ``exit`` like any handler: a task registered among its request futures. When ``shutdown`` completes it
cancels every other registered future, so an ``exit`` read in the same chunk as ``shutdown`` (clients send them
back to back) could be cancelled before its first step: its body never ran and the server never exited, waiting
on a client that was waiting for it. Here ``exit`` starts a task pygls does not know of.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from lsprotocol import types
from pygls.protocol import LanguageServerProtocol

SHUTDOWN_WAIT_S = 5.0
"""How long ``exit`` waits for a ``shutdown`` still in flight (its reply must reach the client first)."""


class ExitingProtocol(LanguageServerProtocol):
    """pygls's protocol, except that ``exit`` runs outside the futures that ``shutdown`` cancels."""

    def handle_message(self, message: Any) -> None:
        if getattr(message, "method", None) == types.EXIT:
            self._exit_task = asyncio.ensure_future(exit_after_shutdown(self))
            return
        super().handle_message(message)


async def exit_after_shutdown(protocol: LanguageServerProtocol) -> None:
    """Exit (0 after ``shutdown``, 1 without, as the protocol says) once a ``shutdown`` in flight has replied,
    without waiting for pygls's stdin reader thread, which only returns at end of input."""
    await asyncio.sleep(0)  # a shutdown dispatched in the same turn starts (and names its task)
    task = getattr(protocol._server, "shutdown_task", None)
    if task is not None and not task.done():
        await asyncio.wait({task}, timeout=SHUTDOWN_WAIT_S)
    for _ in range(3):  # its done callbacks (pygls's reply) run before we go on
        await asyncio.sleep(0)
    if hasattr(protocol._server, "closing"):
        protocol._server.closing = True  # nothing more is published
    sys.stderr.flush()
    os._exit(0 if getattr(protocol, "_shutdown", False) else 1)
