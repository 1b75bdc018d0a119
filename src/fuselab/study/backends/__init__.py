"""Execution backends: each turns a list of :class:`RunTask` into a stream of events/outcomes.

A backend is a generator ``execute(tasks, run_fn, ...) -> Iterator[dict | Outcome]``: ``dict``
items are progress events from workers (``{"kind": "start" | "epoch", "run_id", ...}``),
:class:`~fuselab.study.worker.Outcome` items are finished runs. The parent process consumes the
stream and is the only writer of the results store.
"""

from fuselab.study.backends.local import run_inline, run_local

__all__ = ["run_inline", "run_local"]
