"""The runs a backend still has to start: a fixed list, or a lazy source (a shared study takes
each run from the database only when a worker is free for it, :mod:`fuselab.study.lease`).

A lazy source may yield ``None``: no run now, ask again later (runs held by other processes may
come free). Runs handed back for a retry (their worker died) come before the source's next run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence

from fuselab.study.worker import RunTask

#: How long a backend with nothing in flight waits before asking a lazy source again.
POLL_S = 0.2


class Todo:
    """Runs to start, retries first; :meth:`pop` asks the source only when a run is wanted."""

    def __init__(self, tasks: Iterable[RunTask | None]) -> None:
        self._known = len(tasks) if isinstance(tasks, Sequence) else None
        self._source = iter(tasks)
        self._retry: deque[RunTask] = deque()
        self._ended = False

    @property
    def done(self) -> bool:
        """No run is left, nor will one come."""
        return self._ended and not self._retry

    def pop(self) -> RunTask | None:
        """The next run to start, or ``None`` when there is none now (see :attr:`done`)."""
        if self._retry:
            return self._retry.popleft()
        if self._ended:
            return None
        task = next(self._source, self)
        if task is self:
            self._ended = True
            return None
        if task is not None and self._known is not None:
            self._known -= 1
        return task  # type: ignore[return-value]

    def idle(self) -> None:
        """Nothing in flight and no run now: wait a moment before asking again."""
        time.sleep(POLL_S)

    def push_front(self, tasks: Sequence[RunTask]) -> None:
        """Runs to start again, before any other."""
        self._retry.extendleft(reversed(tasks))

    def at_most(self, n: int) -> int:
        """``n``, or fewer when the runs left are known to be fewer (at least 1)."""
        if self._known is None:
            return n
        return max(1, min(n, self._known + len(self._retry)))
