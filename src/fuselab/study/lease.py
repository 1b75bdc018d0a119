"""Shared studies: many ``fuselab study --shared`` processes work one study through one database.

Each process (on this machine or another, all given the same ``--db-url``) takes pending runs one
at a time, when one of its workers is free: in one transaction it picks the first run in grid
order that is ``pending``, or ``running`` under a lease that has expired, and marks it
``running`` with its own worker id and ``lease_until = now + lease_s`` (the database's clock, so
machines need not agree on the time). On PostgreSQL the pick is ``SELECT ... FOR UPDATE SKIP
LOCKED`` (two processes never pick the same row, nor wait for each other); on SQLite the write
transaction (``BEGIN IMMEDIATE``) excludes every other writer.

While its runs train, a process renews their leases every ``lease_s / 4`` seconds from a
heartbeat thread with its own connection. A process that vanishes (``kill -9``, a machine lost)
stops renewing; once its lease expires another process takes the run over (``attempts`` counts
every take). A result is written only by the process that holds the run
(:meth:`~fuselab.study.store.Store.finish_run` with ``worker``), so a run is recorded once even
if a process that lost its lease finishes it later. On a clean stop (Ctrl-C) a process hands its
unfinished runs back as ``pending``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fuselab.study._sql import Tx
from fuselab.study.errors import StoreError
from fuselab.study.store import Store, now_text
from fuselab.study.worker import RunTask

log = logging.getLogger(__name__)


def worker_id() -> str:
    """``host:pid:nonce``: names this process in the ``worker`` column."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def take_run(store: Store, worker: str, lease_s: float) -> str | None:
    """Lease the next run nobody holds; its id, or ``None`` when every run is finished or held."""
    conn = store.conn
    now = conn.now

    def fn(tx: Tx) -> str | None:
        rows = tx.query(
            "SELECT run_id FROM runs WHERE status = 'pending' OR (status = 'running' AND"
            f" (lease_until IS NULL OR lease_until < {now})) ORDER BY position LIMIT 1"
            + conn.skip_locked)
        if not rows:
            return None
        run_id = str(rows[0][0])
        tx.execute(
            "UPDATE runs SET status = 'running', attempts = attempts + 1, worker = :w,"
            f" lease_until = {now} + :lease, host = :h, node = NULL, updated_at = :t"
            " WHERE run_id = :r",
            {"w": worker, "lease": float(lease_s), "h": socket.gethostname(), "r": run_id,
             "t": now_text()})
        return run_id

    return conn.write(fn)


def renew(store: Store, worker: str, lease_s: float) -> None:
    """Extend the lease of every run ``worker`` holds."""
    store.conn.write(lambda tx: tx.execute(
        f"UPDATE runs SET lease_until = {store.conn.now} + :lease WHERE worker = :w"
        " AND status = 'running'", {"w": worker, "lease": float(lease_s)}))


def release(store: Store, worker: str) -> None:
    """Hand every unfinished run ``worker`` holds back as ``pending`` (a clean stop)."""
    store.conn.write(lambda tx: tx.execute(
        "UPDATE runs SET status = 'pending', worker = NULL, lease_until = NULL"
        " WHERE worker = :w AND status = 'running'", {"w": worker}))


def reset_failed(store: Store) -> None:
    """``--retry-failed`` in a shared study: failed runs become pending again."""
    store.conn.write(lambda tx: tx.execute(
        "UPDATE runs SET status = 'pending' WHERE status = 'failed'"))


class Leases:
    """This process's leases in a shared study: :meth:`tasks` takes runs lazily, a heartbeat
    thread renews them, :meth:`close` stops it and hands back what was not finished.

    Args:
        store: the study's store (the caller's connection, used for taking runs).
        reopen: opens a second connection to the same database, for the heartbeat thread.
        lease_s: lease length in seconds.
        tasks: every run of the study by id (any of them may be the next one taken).
    """

    def __init__(self, store: Store, reopen: Callable[[], Store], lease_s: float,
                 tasks: Mapping[str, RunTask]) -> None:
        self.store, self.lease_s, self.by_id = store, float(lease_s), dict(tasks)
        self.worker = worker_id()
        self.taken = 0
        self._stop = threading.Event()
        self._beat_store = reopen()
        self._thread = threading.Thread(target=self._beat, name="fuselab-lease", daemon=True)
        self._thread.start()

    def tasks(self, stop: Callable[[], bool] = lambda: False) -> Iterator[RunTask | None]:
        """Take runs one at a time as the backend asks for the next. ``None``: none is free now,
        but other processes hold some; their lease may expire (the process vanished), and the
        run is then taken over here, so ask again later. Ends when every run is finished."""
        poll = min(max(self.lease_s / 4, 0.2), 10.0)
        next_try = 0.0
        while not stop():
            if time.monotonic() < next_try:
                yield None
                continue
            run_id = take_run(self.store, self.worker, self.lease_s)
            if run_id is None:
                if not self._held_elsewhere():
                    return
                next_try = time.monotonic() + poll
                yield None
                continue
            if run_id not in self.by_id:
                raise StoreError(f"{self.store.location}: run {run_id} is not in this study's "
                                 "grid; was the study started from another config?")
            self.taken += 1
            yield self.by_id[run_id]

    def _held_elsewhere(self) -> bool:
        return bool(self.store.conn.query(
            "SELECT 1 FROM runs WHERE status = 'running' AND (worker IS NULL OR worker <> :w)"
            " LIMIT 1", {"w": self.worker}))

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                renew(self._beat_store, self.worker, self.lease_s)
            except StoreError as e:  # the database is briefly unreachable: try again
                log.warning("could not renew the leases of %s: %s", self.worker, e)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            release(self._beat_store, self.worker)
        finally:
            self._beat_store.close()

    def __enter__(self) -> Leases:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
