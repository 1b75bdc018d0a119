"""The runs a backend still has to start: a fixed list, or a lazy source (a shared study takes
each run from the database only when a worker is free for it, :mod:`fuselab.study.lease`).

Runs handed back for a retry (their worker died) come before the source's next run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from fuselab.study.worker import RunTask


class Todo:
    """Runs to start, retries first; :meth:`pop` asks the source only when a run is wanted."""

    def __init__(self, tasks: Iterable[RunTask]) -> None:
        self._known = len(tasks) if isinstance(tasks, Sequence) else None
        self._source = iter(tasks)
        self._retry: deque[RunTask] = deque()

    def pop(self) -> RunTask | None:
        """The next run to start, or ``None`` when there is none left."""
        if self._retry:
            return self._retry.popleft()
        task = next(self._source, None)
        if task is not None and self._known is not None:
            self._known -= 1
        return task

    def push_front(self, tasks: Sequence[RunTask]) -> None:
        """Runs to start again, before any other."""
        self._retry.extendleft(reversed(tasks))

    def at_most(self, n: int) -> int:
        """``n``, or fewer when the runs left are known to be fewer (at least 1)."""
        if self._known is None:
            return n
        return max(1, min(n, self._known + len(self._retry)))
