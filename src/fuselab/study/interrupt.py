"""Ctrl-C during a study, in two stages: the first drains, the second cancels.

* First Ctrl-C (SIGINT): no new run starts; the runs in flight finish and are recorded, then
  :func:`fuselab.study.run_study` returns with ``interrupted=True``.
* Second Ctrl-C: :class:`Cancelled` (a ``KeyboardInterrupt``) now; the backend kills the runs in flight (they stay
  ``running`` in the store, and ``--resume`` reruns them). A store write in progress is finished
  first (:meth:`Interrupts.deferred`), so a run is recorded completely or not at all.

Worker processes never see the terminal's SIGINT (:func:`sigint_blocked` while they are spawned,
``SIG_IGN`` in their initializer): only the parent decides what Ctrl-C means.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker
from types import FrameType
from typing import Any

FIRST = ("Ctrl-C: no new run starts; waiting for the runs in flight to finish and be recorded "
         "(Ctrl-C again to cancel them now; continue later with --resume)")


def announce(message: str) -> None:
    """Tell the user from inside a signal handler: one raw write to stderr, which (unlike
    ``print``) cannot re-enter a buffered stream that the interrupted code was writing to."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no real stderr
        os.write(sys.stderr.fileno(), f"\n{message}\n".encode())


class Cancelled(KeyboardInterrupt):
    """The second Ctrl-C: the runs in flight were cancelled (they rerun with ``--resume``)."""


class Interrupts:
    """Counts SIGINTs while active (main thread only; elsewhere it does nothing).

    Args:
        notify: called with :data:`FIRST` on the first Ctrl-C.
    """

    def __init__(self, notify: Callable[[str], None] = announce) -> None:
        self.count = 0
        self._notify = notify
        self._old: Any = None
        self._active = False
        self._deferring = 0
        self._pending = False

    @property
    def stopping(self) -> bool:
        """True after the first Ctrl-C: start no new run."""
        return self.count > 0

    def __enter__(self) -> Interrupts:
        # An ignored SIGINT (a background job of a script, nohup) stays ignored.
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._old = signal.signal(signal.SIGINT, self._handle)
            self._active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._old)
            self._active = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            self._notify(FIRST)
            return
        if self._deferring:
            self._pending = True
            return
        raise Cancelled

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A second Ctrl-C inside this block takes effect at its end (keeps a write whole)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
            if not self._deferring and self._pending:
                self._pending = False
                raise Cancelled


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread; processes started inside inherit the block across ``exec``,
    so a spawned worker ignores Ctrl-C from its first instruction. A SIGINT that arrives
    meanwhile is delivered when the block ends (or handled by another thread of this process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # multiprocessing starts its resource tracker on first need (a queue, a spawned process)
    # and then *unblocks* SIGINT in the calling thread: started inside the block, it would
    # lift the block for the workers spawned after it. Started first, it leaves the mask alone.
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ignore_sigint() -> None:
    """In a worker process: ignore SIGINT for good (the parent decides) and unblock it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
