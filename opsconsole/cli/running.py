"""Running a command's coroutine so that Ctrl-C always works, at once and without a traceback.

Used by every command of :mod:`opsconsole.cli` that talks to servers.  :func:`run_async` is
``asyncio.run`` with its own signal handling: the first SIGINT (Ctrl-C) or SIGTERM cancels the
command, whose ``finally`` blocks then close the connections and end the remote ``tail``\\ s; a
second signal, or a cleanup still running after ``GRACE`` seconds, ends the process at once.
Either way the command ends with one line on stderr (or quietly, where stopping is the normal way
out, as for ``stats --follow``) and exit status 130 (or the one given).

Python's own handling was not enough: ``asyncio.run`` turns the first Ctrl-C into a cancellation
of the main task only, and a cancellation absorbed anywhere on the way left ``stats --follow``
running until a second Ctrl-C (about one run in eighty).  Here every signal cancels again, and the
deadline does not depend on any task's cooperation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

GRACE = 5.0
"""Seconds a cancelled command may take to clean up before the process ends regardless."""
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The command was stopped by a signal; ``exit_status`` is what the process returns."""

    def __init__(self, exit_status: int) -> None:
        super().__init__("interrupted")
        self.exit_status = exit_status


def _exit_now(status: int, quiet: bool) -> None:
    if not quiet:
        print("opsconsole: interrupted", file=sys.stderr, flush=True)
    os._exit(status)


def sync_interrupts() -> None:
    """For commands without an event loop: Ctrl-C raises KeyboardInterrupt, so their
    ``finally`` blocks (e.g. stopping a half-started lab) run; the CLI frame prints one line."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_async(main: Coroutine[Any, Any, T], *, interrupted_status: int = 130) -> T:
    """Run ``main`` to completion; on SIGINT/SIGTERM cancel it and raise :class:`Interrupted`
    once its cleanup is done (``interrupted_status`` 0: stopping is the normal way out)."""
    quiet = interrupted_status == 0
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    seen = 0

    def on_signal() -> None:
        nonlocal seen
        seen += 1
        if seen > 1:
            _exit_now(interrupted_status or 130, quiet)
        task.cancel()
        loop.call_later(GRACE, _deadline)

    def _deadline() -> None:
        if not task.done():
            _exit_now(interrupted_status, quiet)

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        try:
            result = loop.run_until_complete(task)
        except asyncio.CancelledError:
            if seen:
                raise Interrupted(interrupted_status) from None
            raise
        if seen and not quiet:
            raise Interrupted(interrupted_status)
        return result
    finally:
        _shutdown(loop)
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        loop.close()


def _shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left (bounded by ``GRACE``: nothing may keep the process alive)."""
    left = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in left:
        t.cancel()
    if left:
        loop.run_until_complete(asyncio.wait(left, timeout=GRACE))
    loop.run_until_complete(loop.shutdown_asyncgens())
    with contextlib.suppress(TimeoutError):  # a stuck DNS lookup must not hold the process
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), GRACE))
