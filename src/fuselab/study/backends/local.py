"""Local backends: in-process (``workers=0``) and a pool of spawned worker processes.

Workers are started with ``spawn`` (a forked child of a process that already ran torch can hang
in OpenMP), set their own torch thread count, and send progress events through a queue. A worker
whose parent died (``kill -9`` of the study) exits on its own within a second, so no orphan keeps
computing. If a worker process dies (segfault, OOM kill), the runs in flight in that pool are
retried up to ``max_retries`` times in a fresh pool, then recorded as failed. Workers ignore
SIGINT; the parent decides what Ctrl-C means (:mod:`fuselab.study.interrupt`).

Events travel on a :class:`multiprocessing.SimpleQueue`, whose ``put`` writes to the pipe before
it returns: a run's ``start`` event is readable before its outcome reaches the parent, so the
parent never sees a run start after it finished (a ``Queue``'s feeder thread gave no such
order, and a late ``start`` set a finished run back to ``running``). Each pool has its own
queue, so a worker killed while writing cannot leave a lock held for the next pool. A pool that
finished its runs is given :data:`EXIT_GRACE_S` for its workers to exit, then killed: nothing
is left to lose, and a worker stuck in interpreter teardown must not hang the study (nor, at
exit, the process that ran it).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from fuselab._process import own_process
from fuselab.study.backends.todo import Todo
from fuselab.study.interrupt import ignore_sigint, sigint_blocked
from fuselab.study.worker import Outcome, RunFn, RunTask, run_task

_EVENTS: Any = None
Stop = Callable[[], bool]

#: Seconds a pool whose runs all finished waits for its workers to exit before killing them.
EXIT_GRACE_S = 30.0


def _never() -> bool:
    return False


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def _init_worker(events: Any, parent: int) -> None:
    global _EVENTS
    ignore_sigint()
    _EVENTS = events
    own_process()  # a worker process is fuselab's: retain_memory="auto" applies here
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _report(ev: dict[str, Any]) -> None:
    if _EVENTS is not None:
        _EVENTS.put(ev)


def _pool_run(task: RunTask, run_fn: RunFn) -> Outcome:
    return run_task(task, run_fn, _report)


def run_inline(tasks: Iterable[RunTask | None], run_fn: RunFn,
               stop: Stop = _never) -> Iterator[dict[str, Any] | Outcome]:
    """Run every task in this process, one after another (debugging, tests, ``--workers 0``);
    once ``stop()`` is true no further task starts (nor is taken from a lazy ``tasks``)."""
    events: list[dict[str, Any]] = []
    todo = Todo(tasks)
    while not stop() and not todo.done:
        task = todo.pop()
        if task is None:
            todo.idle()
            continue
        out = run_task(task, run_fn, events.append)
        yield from events
        events.clear()
        yield out


def _warm_up(task: RunTask | None) -> None:
    """Load what every run needs (torch, the run pipeline, the task's data) into a worker.
    A failure here is left to the run that meets it, which records it readably."""
    import torch
    import torch._dynamo  # torch.optim's first optimizer imports it: seconds per process

    from fuselab.study import execute

    if task is not None:
        torch.set_num_threads(task.threads)
        with contextlib.suppress(Exception):
            execute.load_splits(task.config, task.data_root)


@dataclass
class Pool:
    """Worker processes and the queue their progress events come back on."""

    executor: ProcessPoolExecutor
    events: Any

    def close(self) -> None:
        """Stop every worker now (runs in flight are abandoned, not recorded)."""
        _shut_down(self.executor, 0.0)


def prestart(workers: int, sample: RunTask | None) -> Pool:
    """Start ``workers`` processes now and let each import torch and load ``sample``'s data,
    so that this start-up (seconds per worker) overlaps the parent's up-front check instead of
    following it; :func:`run_local` then uses the pool."""
    with sigint_blocked():
        pool = _new_pool(workers)
        for _ in range(workers):
            pool.executor.submit(_warm_up, sample)
    return pool


def _new_pool(workers: int) -> Pool:
    ctx = mp.get_context("spawn")
    events = ctx.SimpleQueue()
    return Pool(ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                    initializer=_init_worker, initargs=(events, os.getpid())),
                events)


def run_local(
    tasks: Iterable[RunTask | None], run_fn: RunFn, *, workers: int, max_retries: int = 1,
    stop: Stop = _never, started: Pool | None = None,
) -> Iterator[dict[str, Any] | Outcome]:
    """Run tasks on ``workers`` spawned processes; yields events and outcomes as they arrive.

    ``tasks`` may be lazy: the next one is asked for only when a worker is free for it.
    ``started``: a pool from :func:`prestart` to use first (closed here in any case).

    At most ``workers`` runs are handed to the pool at a time, so once ``stop()`` is true no
    further run starts and the ones in flight finish. Closing the generator early (an exception
    in the consumer, a second Ctrl-C) kills the worker processes instead of waiting for them.
    """
    if workers < 1:
        if started is not None:
            started.close()
        yield from run_inline(tasks, run_fn, stop)
        return
    attempts: dict[str, int] = {}
    todo = Todo(tasks)
    try:
        while not stop() and not todo.done:
            first = todo.pop()
            if first is None:
                todo.idle()
                continue
            todo.push_front([first])
            pool = started if started is not None else _new_pool(todo.at_most(workers))
            started = None
            yield from _pool_round(pool, todo, run_fn, workers, attempts, max_retries, stop)
    finally:
        if started is not None:  # never used (nothing to run, or stopped at once)
            started.close()


def _pool_round(pool: Pool, todo: Todo, run_fn: RunFn, workers: int,
                attempts: dict[str, int], max_retries: int,
                stop: Stop) -> Generator[dict[str, Any] | Outcome, None, None]:
    """Run on ``pool`` until done or broken, then shut it down; runs to retry go back to
    ``todo``. Any exit by exception kills the pool's workers."""
    try:
        retry = yield from _one_pool(pool, todo, run_fn, workers, attempts, max_retries, stop)
    except BaseException:
        pool.close()
        raise
    yield from _drain(pool.events)
    _shut_down(pool.executor, EXIT_GRACE_S)
    todo.push_front(retry)


def _one_pool(pool: Pool, todo: Todo, run_fn: RunFn, workers: int,
              attempts: dict[str, int], max_retries: int,
              stop: Stop) -> Generator[dict[str, Any] | Outcome, None, list[RunTask]]:
    """Feed ``todo`` to ``pool`` until it is done, stopped or broken; returns runs to retry."""
    running: dict[Future[Outcome], RunTask] = {}
    retry: list[RunTask] = []
    broken = False
    while True:
        while not broken and not stop() and len(running) < workers:
            task = todo.pop()
            if task is None:
                break
            try:
                with sigint_blocked():  # a worker started here inherits the block
                    running[pool.executor.submit(_pool_run, task, run_fn)] = task
            except BrokenProcessPool:
                todo.push_front([task])
                broken = True
        if not running:
            if todo.done or broken or stop():
                break
            todo.idle()  # a shared study: runs held elsewhere may come free; keep the pool
            continue
        finished, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
        yield from _drain(pool.events)
        for fut in finished:
            task = running.pop(fut)
            try:
                yield fut.result()
            except BrokenProcessPool as e:
                broken = True
                attempts[task.run_id] = attempts.get(task.run_id, 0) + 1
                if stop():
                    continue  # Ctrl-C: not a failure; the run stays unfinished for --resume
                if attempts[task.run_id] > max_retries:
                    yield Outcome(task.run_id, "failed",
                                  error=f"worker process died ({e}); gave up after "
                                        f"{attempts[task.run_id]} attempts")
                else:
                    retry.append(task)
    return retry


def _shut_down(pool: ProcessPoolExecutor, grace_s: float) -> None:
    """Ask ``pool``'s workers to exit, wait up to ``grace_s`` seconds, then kill the rest."""
    # ProcessPoolExecutor has no public way to stop busy workers before Python 3.14
    # (terminate_workers); its process table is the only handle on them.
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join(timeout=5)


def _drain(events: Any) -> Iterator[dict[str, Any]]:
    while not events.empty():
        yield events.get()
