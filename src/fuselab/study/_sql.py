"""Database connections behind the results store: ``sqlite3`` (default) or SQLAlchemy (a URL).

Both speak the same SQL with ``:name`` parameters, so the store's queries are written once. Writes
go through :meth:`Connection.write`, which runs a function inside one transaction and retries
while the database is locked; errors are translated into :mod:`fuselab.study.errors` classes.
"""

from __future__ import annotations

import os
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


def one_line(err: BaseException) -> str:
    """An error message on one line, without SQLAlchemy's "(Background on this error ...)"."""
    return " ".join(str(err).split("(Background on this error")[0].split())


def _classify(err: BaseException, where: str) -> StoreError | None:
    msg = str(err).lower()
    if "locked" in msg or "busy" in msg:
        return StoreLockedError(
            f"results database {where} is locked by another process; is another "
            f"`fuselab study` writing to it? ({one_line(err)})"
        )
    if "readonly" in msg or "read-only" in msg or "read only" in msg:
        return StoreReadOnlyError(f"results database {where} is read-only ({one_line(err)})")
    if "disk is full" in msg or "no space" in msg or "disk i/o" in msg:
        return StoreError(f"results database {where}: disk full or I/O error ({one_line(err)})")
    if "unable to open" in msg:
        return StoreError(f"cannot open results database {where} ({one_line(err)})")
    if "not a database" in msg or "malformed" in msg:
        return StoreError(f"{where} is not a readable SQLite results database ({one_line(err)})")
    return None


def sqlite_uri(path: Path, **query: str) -> str:
    """``file:`` URI of ``path`` for ``sqlite3.connect(uri=True)``; characters that mean something
    in a URI (``#``, ``?``, ``%``, spaces) are percent-encoded, so the database is where the path
    says, whatever the folder is called."""
    uri = Path(os.path.abspath(path)).as_uri()
    return uri + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


#: SQL for "now" in seconds since the epoch, on the database server's clock (one clock for every
#: machine of a shared study), per SQLAlchemy dialect name.
_NOW = {"sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
        "postgresql": "extract(epoch from clock_timestamp())"}


class Connection:
    """Base: retrying writes and plain reads; subclasses provide ``_begin`` and ``query``.

    ``lock_rows`` / ``skip_locked`` end a ``SELECT`` inside a write so that the rows it reads stay
    locked until the transaction ends (and, for ``skip_locked``, rows another transaction holds
    are passed over): empty on SQLite, whose write transactions already exclude each other
    (``BEGIN IMMEDIATE``)."""

    where: str
    lock_timeout: float
    dialect: str = "sqlite"

    @property
    def lock_rows(self) -> str:
        return "" if self.dialect == "sqlite" else " FOR UPDATE"

    @property
    def skip_locked(self) -> str:
        return "" if self.dialect == "sqlite" else " FOR UPDATE SKIP LOCKED"

    @property
    def now(self) -> str:
        """SQL expression: the database's current time in seconds since the epoch."""
        try:
            return _NOW[self.dialect]
        except KeyError:
            raise StoreError(f"{self.where}: a shared study needs SQLite or PostgreSQL, not "
                             f"{self.dialect}") from None

    def _begin(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def _errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def query(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        try:
            return self._query(sql, params)
        except self._errors() as e:
            raise _classify(e, self.where) or StoreError(f"{self.where}: {one_line(e)}") from e

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
                err = _classify(e, self.where) or StoreError(f"{self.where}: {one_line(e)}")
                if isinstance(err, StoreLockedError) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise err from e

    def tables(self) -> list[str]:
        """Names of the tables in the database."""
        raise NotImplementedError

    def prepare_writes(self) -> None:
        """Settings for writing, applied once the database is known to be a fuselab store."""

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
    """A ``sqlite3`` database file in WAL mode (``readonly`` opens it with ``mode=ro``).

    A WAL database needs its ``-shm`` file, which cannot be created on read-only media; there a
    read-only open falls back to ``immutable=1``, which is exact only when no ``-wal`` file holds
    changes not yet copied into the database: with such a file the open is refused instead.
    """

    def __init__(self, path: Path, *, readonly: bool = False, lock_timeout: float = 30.0) -> None:
        self.where = str(path)
        self.lock_timeout = lock_timeout
        try:
            if readonly:
                self.con = self._open_readonly(path)
            else:
                self.con = self._connect(sqlite_uri(path, mode="rwc"))
        except sqlite3.Error as e:
            raise _classify(e, self.where) or StoreError(f"{self.where}: {one_line(e)}") from e

    def prepare_writes(self) -> None:
        # WAL: readers (fuselab show, report) never block the study's writes, nor it theirs.
        try:
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise _classify(e, self.where) or StoreError(f"{self.where}: {one_line(e)}") from e

    def tables(self) -> list[str]:
        return [r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")]

    def _connect(self, uri: str) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        return sqlite3.connect(uri, uri=True, timeout=min(self.lock_timeout, 5.0),
                               isolation_level=None, check_same_thread=False)

    def _open_readonly(self, path: Path) -> sqlite3.Connection:
        con = self._connect(sqlite_uri(path, mode="ro"))
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.OperationalError as e:
            con.close()
            if "unable to open" not in str(e).lower() or os.access(path.parent, os.W_OK):
                raise
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise StoreReadOnlyError(
                f"results database {path} is on read-only storage and {wal.name} holds changes "
                "not yet written into it (the study was stopped while writing); copy the study "
                "folder to writable storage to read it")
        con = self._connect(sqlite_uri(path, mode="ro", immutable="1"))
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con

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


def display_url(url: str) -> str:
    """``url`` with its password hidden; ``StoreError`` when it is not a database URL (nothing
    is connected, so a study can refuse a bad ``--db-url`` before it creates any file)."""
    try:
        import sqlalchemy as sa
    except ImportError as e:  # optional extra
        raise StoreError(f"a database URL needs SQLAlchemy: pip install 'fuselab[sql]' ({e})"
                         ) from e
    if "://" not in url:
        raise StoreError(f"bad database URL {url!r}: {_URL_FORM}")
    try:
        return str(sa.engine.make_url(url).render_as_string(hide_password=True))
    except (sa.exc.ArgumentError, ValueError, TypeError) as e:
        raise StoreError(f"bad database URL ({_URL_FORM}): {e}") from None


_URL_FORM = "expected dialect+driver://user@host/database, e.g. postgresql+psycopg://me@db/study"


class SQLAlchemyConnection(Connection):
    """Any SQLAlchemy URL (``postgresql+psycopg://user@host/db``, ``sqlite:///path``)."""

    def __init__(self, url: str, *, lock_timeout: float = 30.0) -> None:
        self.where = display_url(url)
        import sqlalchemy as sa

        self._sa = sa
        self.lock_timeout = lock_timeout
        try:
            self.engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError, ValueError, TypeError) as e:
            raise StoreError(f"bad database URL {self.where}: {e}") from e
        self.dialect = str(self.engine.dialect.name)

    def tables(self) -> list[str]:
        try:
            return list(self._sa.inspect(self.engine).get_table_names())
        except self._sa.exc.SQLAlchemyError as e:
            raise _classify(e, self.where) or StoreError(f"{self.where}: {one_line(e)}") from e

    def _begin(self) -> _SABegin:
        return _SABegin(self.engine, self._sa.text)

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._sa.exc.SQLAlchemyError,)

    def _query(self, sql: str, params: Params | None) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(self._sa.text(sql), dict(params or {}))]

    def close(self) -> None:
        self.engine.dispose()
