"""Local backends: in-process (``workers=0``) and a pool of spawned worker processes.

Workers are started with ``spawn`` (a forked child of a process that already ran torch can hang
in OpenMP), set their own torch thread count, and send progress events through a queue. A worker
whose parent died (``kill -9`` of the study) exits on its own within a second, so no orphan keeps
computing. If a worker process dies (segfault, OOM kill), the runs it may have held are retried
up to ``max_retries`` times in a fresh pool, then recorded as failed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fuselab._process import own_process
from fuselab.study.worker import Outcome, RunFn, RunTask, run_task

_EVENTS: Any = None


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def _init_worker(events: Any, parent: int) -> None:
    global _EVENTS
    _EVENTS = events
    own_process()  # a worker process is fuselab's: retain_memory="auto" applies here
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _report(ev: dict[str, Any]) -> None:
    if _EVENTS is not None:
        _EVENTS.put(ev)


def _pool_run(task: RunTask, run_fn: RunFn) -> Outcome:
    return run_task(task, run_fn, _report)


def run_inline(tasks: Sequence[RunTask], run_fn: RunFn) -> Iterator[dict[str, Any] | Outcome]:
    """Run every task in this process, one after another (debugging, tests, ``--workers 0``)."""
    events: list[dict[str, Any]] = []
    for task in tasks:
        out = run_task(task, run_fn, events.append)
        yield from events
        events.clear()
        yield out


def run_local(
    tasks: Sequence[RunTask], run_fn: RunFn, *, workers: int, max_retries: int = 1
) -> Iterator[dict[str, Any] | Outcome]:
    """Run tasks on ``workers`` spawned processes; yields events and outcomes as they arrive."""
    if workers < 1:
        yield from run_inline(tasks, run_fn)
        return
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    attempts = {t.run_id: 0 for t in tasks}
    todo = list(tasks)
    while todo:
        broken: list[RunTask] = []
        pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                                   initializer=_init_worker, initargs=(events, os.getpid()))
        try:
            futures: dict[Future[Outcome], RunTask] = {pool.submit(_pool_run, t, run_fn): t
                                                       for t in todo}
            todo = []
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                yield from _drain(events)
                for fut in finished:
                    task = futures[fut]
                    try:
                        yield fut.result()
                    except BrokenProcessPool as e:
                        attempts[task.run_id] += 1
                        if attempts[task.run_id] > max_retries:
                            yield Outcome(task.run_id, "failed",
                                          error=f"worker process died ({e}); gave up after "
                                                f"{attempts[task.run_id]} attempts")
                        else:
                            broken.append(task)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        yield from _drain(events)
        todo = broken


def _drain(events: Any) -> Iterator[dict[str, Any]]:
    while True:
        try:
            yield events.get_nowait()
        except queue.Empty:
            return
