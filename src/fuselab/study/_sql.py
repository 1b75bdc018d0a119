"""Database connections behind the results store: ``sqlite3`` (default) or SQLAlchemy (a URL).

Both speak the same SQL with ``:name`` parameters, so the store's queries are written once. Writes
go through :meth:`Connection.write`, which runs a function inside one transaction and retries
while the database is locked; errors are translated into :mod:`fuselab.study.errors` classes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from fuselab.study.errors import StoreError, StoreLockedError, StoreReadOnlyError

R = TypeVar("R")
Params = Mapping[str, Any]


class Tx(Protocol):
    """What a write function receives: execute statements inside the open transaction."""

    def execute(self, sql: str, params: Params | None = None) -> None: ...

    def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]: ...


def _classify(err: BaseException, where: str) -> StoreError | None:
    msg = str(err).lower()
    if "locked" in msg or "busy" in msg:
        return StoreLockedError(
            f"results database {where} is locked by another process; is another "
            f"`fuselab study` writing to it? ({err})"
        )
    if "readonly" in msg or "read-only" in msg or "read only" in msg:
        return StoreReadOnlyError(f"results database {where} is read-only ({err})")
    if "disk is full" in msg or "no space" in msg or "disk i/o" in msg:
        return StoreError(f"results database {where}: disk full or I/O error ({err})")
    if "unable to open" in msg:
        return StoreError(f"cannot open results database {where} ({err})")
    return None


class Connection:
    """Base: retrying writes and plain reads; subclasses provide ``_begin`` and ``query``."""

    where: str
    lock_timeout: float

    def _begin(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def _errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        try:
            return self._query(sql, params)
        except self._errors() as e:
            raise _classify(e, self.where) or StoreError(f"{self.where}: {e}") from e

    def _query(self, sql: str, params: Params | None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def write(self, fn: Callable[[Tx], R]) -> R:
        """Run ``fn`` in one transaction; retry with backoff while the database is locked."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                with self._begin() as tx:
                    return fn(tx)
            except self._errors() as e:
                err = _classify(e, self.where) or StoreError(f"{self.where}: {e}")
                if isinstance(err, StoreLockedError) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise err from e

    def close(self) -> None:
        raise NotImplementedError


class _SqliteTx:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def execute(self, sql: str, params: Params | None = None) -> None:
        self.con.execute(sql, dict(params or {}))

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self.con.executemany(sql, [dict(r) for r in rows])

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return list(self.con.execute(sql, dict(params or {})).fetchall())


class _SqliteBegin(AbstractContextManager[_SqliteTx]):
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> _SqliteTx:
        # IMMEDIATE takes the write lock up front, so a busy database fails here, not mid-way.
        self.con.execute("BEGIN IMMEDIATE")
        return _SqliteTx(self.con)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
        elif self.con.in_transaction:
            self.con.execute("ROLLBACK")


class SqliteConnection(Connection):
    """A ``sqlite3`` database file in WAL mode (``readonly`` opens it with ``mode=ro``)."""

    def __init__(self, path: Path, *, readonly: bool = False, lock_timeout: float = 30.0) -> None:
        self.where = str(path)
        self.lock_timeout = lock_timeout
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}?mode=rwc"
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            self.con = sqlite3.connect(uri, uri=True, timeout=min(lock_timeout, 5.0),
                                       isolation_level=None, check_same_thread=False)
            if not readonly:
                self.con.execute("PRAGMA journal_mode=WAL")
                self.con.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise _classify(e, self.where) or StoreError(f"{self.where}: {e}") from e

    def _begin(self) -> _SqliteBegin:
        return _SqliteBegin(self.con)

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def _query(self, sql: str, params: Params | None) -> list[tuple[Any, ...]]:
        return list(self.con.execute(sql, dict(params or {})).fetchall())

    def close(self) -> None:
        self.con.close()


class _SATx:
    def __init__(self, conn: Any, text: Callable[[str], Any]) -> None:
        self.conn, self.text = conn, text

    def execute(self, sql: str, params: Params | None = None) -> None:
        self.conn.execute(self.text(sql), dict(params or {}))

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch: Sequence[dict[str, Any]] = [dict(r) for r in rows]
        if batch:
            self.conn.execute(self.text(sql), batch)

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(self.text(sql), dict(params or {}))]


class _SABegin(AbstractContextManager[_SATx]):
    def __init__(self, engine: Any, text: Callable[[str], Any]) -> None:
        self.cm = engine.begin()
        self.text = text

    def __enter__(self) -> _SATx:
        return _SATx(self.cm.__enter__(), self.text)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return self.cm.__exit__(exc_type, exc, tb)


class SQLAlchemyConnection(Connection):
    """Any SQLAlchemy URL (``postgresql+psycopg://user@host/db``, ``sqlite:///path``)."""

    def __init__(self, url: str, *, lock_timeout: float = 30.0) -> None:
        try:
            import sqlalchemy as sa
        except ImportError as e:  # optional extra
            raise StoreError(
                f"a database URL needs SQLAlchemy: pip install 'fuselab[sql]' ({e})"
            ) from e
        self._sa = sa
        self.where = sa.engine.make_url(url).render_as_string(hide_password=True)
        self.lock_timeout = lock_timeout
        try:
            self.engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError) as e:
            raise StoreError(f"bad database URL {self.where}: {e}") from e

    def _begin(self) -> _SABegin:
        return _SABegin(self.engine, self._sa.text)

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._sa.exc.SQLAlchemyError,)

    def _query(self, sql: str, params: Params | None) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(self._sa.text(sql), dict(params or {}))]

    def close(self) -> None:
        self.engine.dispose()
