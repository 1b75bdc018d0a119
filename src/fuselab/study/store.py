"""The results store: one row per run, one row per evaluation record, plus the study itself.

Read interface (docs/architecture.md, used by :mod:`fuselab.report`)::

    store = open_store("runs/quickstart")      # a study dir, or a database URL
    store.study()    # {"name", "config", "created_at", "config_hash", "environment"}
    store.runs()     # [{"run_id", "status", "variant", "factors", "seed", "config", "metrics",
                     #   "error", "duration_s", "checkpoint_path", "attempts", "host", "node"}, ...]
    store.records()  # [{"run_id", "evaluation", "metric", "value", **condition}, ...]

Only the study's parent process writes (in a shared study, each ``fuselab study --shared``
parent writes the runs it leased, :mod:`fuselab.study.lease`). Every write is one transaction: a
run's status, metrics and records change together, and a run's records are replaced, never
appended to, so a retried or resumed run can never be recorded twice. ``host`` is the machine a run
ran on, ``node`` its Ray node id (``None`` off Ray).

Stores written before a column existed are brought up to date when opened for writing
(``ALTER TABLE ... ADD COLUMN``; nothing else changes); read-only opens read them as they are.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fuselab.study._sql import Connection, SQLAlchemyConnection, SqliteConnection, Tx
from fuselab.study.errors import StoreError

DB_NAME = "results.sqlite"
URL_FILE = "store.json"
STATUSES = ("pending", "running", "done", "failed")
#: Metric names written by older fuselab versions -> today's name; mapped on every read, so an
#: old store reports (and resumes) like a new one. ``throughput_b256`` was recorded at whatever
#: ``throughput_batch`` the run used; today's ``throughput`` record carries ``batch_size``.
LEGACY_METRICS = {"throughput_b256": "throughput"}
#: Record sources: a run's own records, and cross-run records the study adds after all runs.
RUN, STUDY = "run", "study"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, position INTEGER NOT NULL,"
    " status TEXT NOT NULL, variant TEXT NOT NULL, factors TEXT NOT NULL, seed INTEGER NOT NULL,"
    " config TEXT NOT NULL, metrics TEXT NOT NULL, error TEXT, duration_s DOUBLE PRECISION,"
    " checkpoint_path TEXT, attempts INTEGER NOT NULL, updated_at TEXT NOT NULL, host TEXT,"
    " node TEXT, worker TEXT, lease_until DOUBLE PRECISION)",
    "CREATE TABLE IF NOT EXISTS records (run_id TEXT NOT NULL, source TEXT NOT NULL,"
    " seq INTEGER NOT NULL, evaluation TEXT NOT NULL, metric TEXT NOT NULL,"
    " value DOUBLE PRECISION, cond TEXT NOT NULL, PRIMARY KEY (run_id, source, seq))",
)
#: Every column of every table in the first store version, so that an existing database is
#: recognised by its shape (later columns: :data:`_ADDED`).
_COLUMNS = {
    "study": ("key", "value"),
    "runs": ("run_id", "position", "status", "variant", "factors", "seed", "config", "metrics",
             "error", "duration_s", "checkpoint_path", "attempts", "updated_at"),
    "records": ("run_id", "source", "seq", "evaluation", "metric", "value", "cond"),
}
#: Columns added since, with their types: an older store gets them when opened for writing.
#: ``worker``/``lease_until``: which ``fuselab study --shared`` process holds a running run, and
#: until when (seconds since the epoch, the database's clock); see :mod:`fuselab.study.lease`.
_ADDED = {"runs": (("host", "TEXT"), ("node", "TEXT"), ("worker", "TEXT"),
                   ("lease_until", "DOUBLE PRECISION"))}
_RUN_COLS = ("run_id", "status", "variant", "factors", "seed", "config", "metrics", "error",
             "duration_s", "checkpoint_path", "attempts", "host", "node")


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dumps(value: Any, *, keep_order: bool = False) -> str:
    # NaN metrics (a diverged run) must survive the round trip, so allow them in JSON.
    # A config keeps its key order: the order of a model's encoders is the order its features
    # are concatenated in, so a run rebuilt from a key-sorted config would be another model.
    return json.dumps(value, sort_keys=not keep_order)


class Store:
    """Results of one study in one database; see the module docstring for the read interface."""

    def __init__(self, conn: Connection, *, readonly: bool = False) -> None:
        self.conn = conn
        self.location = conn.where
        self.readonly = readonly
        has_schema = self._has_schema()
        if not has_schema:
            other = sorted(set(conn.tables()) - set(_COLUMNS))
            if other:
                raise StoreError(f"{self.location} is not a fuselab results database (it holds "
                                 f"tables {other[:5]}); fuselab needs a new or empty database")
            if readonly:
                raise StoreError(f"{self.location} holds no fuselab results")
        if not readonly:
            conn.prepare_writes()  # only now: nothing is changed in a database that is not ours
            if not has_schema:
                self._create()
            self._migrate()
        self._present = {c for c in _RUN_COLS if self._has_column("runs", c)}

    def _create(self) -> None:
        try:
            self.conn.write(_run_all(_SCHEMA))
        except StoreError:
            # Several `fuselab study --shared` processes may create one new database at the
            # same moment; PostgreSQL can then refuse a concurrent CREATE TABLE IF NOT EXISTS.
            if not self._has_schema():
                raise

    def _migrate(self) -> None:
        """Add the columns of :data:`_ADDED` that an older store lacks (data untouched)."""
        for table, cols in _ADDED.items():
            for col, kind in cols:
                if self._has_column(table, col):
                    continue
                try:
                    self.conn.write(_run_all([f"ALTER TABLE {table} ADD COLUMN {col} {kind}"]))
                except StoreError:
                    if not self._has_column(table, col):  # not added by another process
                        raise

    def _has_column(self, table: str, col: str) -> bool:
        try:
            self.conn.query(f"SELECT {col} FROM {table} WHERE 1 = 0")
        except StoreError:
            return False
        return True

    def _has_schema(self) -> bool:
        # Reading first means opening an existing store takes no write lock (a report built
        # while the study runs, or a store on a read-only disk). Every column is named, so a
        # database holding other tables called "runs" or "study" is never taken for a store
        # (and never written to: --force deletes rows).
        found = 0
        for table, cols in _COLUMNS.items():
            try:
                self.conn.query(f"SELECT {', '.join(cols)} FROM {table} WHERE 1 = 0")
                found += 1
            except StoreError:
                if self._table_exists(table):
                    raise StoreError(f"{self.location} holds a table {table!r} that is not a "
                                     "fuselab results table; use an empty database or "
                                     "another study folder") from None
        if 0 < found < len(_COLUMNS):
            raise StoreError(f"{self.location} holds only part of a fuselab results store")
        return found == len(_COLUMNS)

    def _table_exists(self, table: str) -> bool:
        try:
            self.conn.query(f"SELECT 1 FROM {table} WHERE 1 = 0")
        except StoreError:
            return False
        return True

    # ---- read interface (docs/architecture.md) -------------------------------------------
    def study(self) -> dict[str, Any]:
        """``{"name", "config", "created_at", "config_hash", "data_id", "environment"}``; ``{}``
        before init. ``data_id`` is the data identity ("" for synthetic data or a store written
        before it was kept); ``environment`` is where and how the study last ran
        (study/environment.py)."""
        meta = {k: v for k, v in self.conn.query("SELECT key, value FROM study")}
        if not meta:
            return {}
        return {
            "name": meta.get("name", ""),
            "config": self._loads(meta.get("config", "{}"), "the study's config"),
            "created_at": meta.get("created_at", ""),
            "config_hash": meta.get("config_hash", ""),
            "data_id": meta.get("data_id", ""),
            "environment": json.loads(meta.get("environment", "{}")),
        }

    def runs(self) -> list[dict[str, Any]]:
        """Every run in grid order, with its status, config, metrics and error."""
        cols = [c if c in self._present else f"NULL AS {c}" for c in _RUN_COLS]
        rows = self.conn.query(f"SELECT {', '.join(cols)} FROM runs ORDER BY position")
        out = []
        for row in rows:
            r = dict(zip(_RUN_COLS, row, strict=True))
            for key in ("factors", "config", "metrics"):
                r[key] = self._loads(r[key], f"run {r['run_id']}'s {key}")
            if isinstance(r["metrics"], dict):
                r["metrics"] = {LEGACY_METRICS.get(k, k): v for k, v in r["metrics"].items()}
            out.append(r)
        return out

    def records(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Tidy records (``evaluation``, ``metric``, ``value``, conditions) plus ``run_id``."""
        sql = "SELECT run_id, evaluation, metric, value, cond FROM records"
        params: dict[str, Any] = {}
        if run_id is not None:
            sql += " WHERE run_id = :run_id"
            params["run_id"] = run_id
        rows = self.conn.query(sql + " ORDER BY run_id, source, seq", params)
        out = []
        for rid, evaluation, metric, value, cond in rows:
            rec = self._loads(cond, f"a record of run {rid}")
            # SQLite stores NaN as NULL; a record value is always a float.
            rec.update(run_id=rid, evaluation=evaluation, metric=LEGACY_METRICS.get(metric, metric),
                       value=math.nan if value is None else float(value))
            out.append(rec)
        return out

    def _loads(self, text: str, what: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError) as e:
            raise StoreError(f"{self.location} is damaged: {what} is not valid JSON ({e})"
                             ) from None

    # ---- writes (the study's parent process only) ----------------------------------------
    def meta(self, key: str) -> str | None:
        rows = self.conn.query("SELECT value FROM study WHERE key = :k", {"k": key})
        return rows[0][0] if rows else None

    def init_study(self, name: str, config: Mapping[str, Any], config_hash: str,
                   data_id: str = "") -> None:
        """Record (or replace) the study's name, config, hash and data identity;
        ``created_at`` is kept."""

        def fn(tx: Tx) -> None:
            created = tx.query("SELECT value FROM study WHERE key = 'created_at'")
            values = {"name": name, "config": _dumps(config, keep_order=True), "config_hash": config_hash,
                      "data_id": data_id, "created_at": created[0][0] if created else now_text()}
            tx.executemany(
                "INSERT INTO study (key, value) VALUES (:k, :v) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [{"k": k, "v": v} for k, v in values.items()],
            )

        self.conn.write(fn)

    def write_meta(self, values: Mapping[str, Any]) -> None:
        """Set study-table entries (JSON-encoded), e.g. ``{"environment": {...}}``."""
        rows = [{"k": k, "v": _dumps(v)} for k, v in values.items()]
        self.conn.write(lambda tx: tx.executemany(
            "INSERT INTO study (key, value) VALUES (:k, :v) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", rows))

    def clear(self) -> None:
        """Forget every run and record (``--force`` on a study dir of another config)."""
        self.conn.write(_run_all([f"DELETE FROM {t}" for t in ("records", "runs", "study")]))

    def add_runs(self, specs: Iterable[Any]) -> None:
        """Insert runs as ``pending``; runs already present keep their status and results."""
        rows = [
            {"run_id": s.run_id, "position": i, "status": "pending", "variant": s.variant,
             "factors": _dumps(s.factors), "seed": s.seed, "config": _dumps(s.config, keep_order=True),
             "metrics": "{}", "attempts": 0, "updated_at": now_text()}
            for i, s in enumerate(specs)
        ]
        self.conn.write(lambda tx: tx.executemany(
            "INSERT INTO runs (run_id, position, status, variant, factors, seed, config, metrics,"
            " attempts, updated_at) VALUES (:run_id, :position, :status, :variant, :factors,"
            " :seed, :config, :metrics, :attempts, :updated_at)"
            " ON CONFLICT (run_id) DO UPDATE SET position = excluded.position", rows))

    def status(self) -> dict[str, str]:
        """``{run_id: status}`` of every run."""
        return dict(self.conn.query("SELECT run_id, status FROM runs"))  # type: ignore[arg-type]

    def mark_running(self, run_id: str, host: str | None = None) -> None:
        """A run started (``host``: where, when known at the start)."""
        self.conn.write(lambda tx: tx.execute(
            "UPDATE runs SET status = 'running', attempts = attempts + 1, updated_at = :t,"
            " host = :h, node = NULL WHERE run_id = :r", {"r": run_id, "t": now_text(), "h": host}))

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        metrics: Mapping[str, Any],
        records: Iterable[Mapping[str, Any]],
        error: str | None = None,
        duration_s: float | None = None,
        checkpoint_path: str | None = None,
        host: str | None = None,
        node: str | None = None,
        worker: str | None = None,
    ) -> bool:
        """Atomically set a run's outcome and replace its own records.

        ``worker``: the leasing process (:mod:`fuselab.study.lease`); the outcome is written only
        while that process still holds the run, else nothing changes and ``False`` is returned
        (its lease expired and another process took the run over: one result per run)."""
        if status not in ("done", "failed"):
            raise ValueError(f"finish_run: status must be 'done' or 'failed', got {status!r}")
        rows = [_record_row(run_id, RUN, i, rec) for i, rec in enumerate(records)]

        def fn(tx: Tx) -> bool:
            if worker is not None:
                held = tx.query("SELECT worker FROM runs WHERE run_id = :r AND status ="
                                " 'running'" + self.conn.lock_rows, {"r": run_id})
                if not held or held[0][0] != worker:
                    return False
            tx.execute("DELETE FROM records WHERE run_id = :r AND source = :s",
                       {"r": run_id, "s": RUN})
            tx.executemany(_INSERT_RECORD, rows)
            tx.execute(
                "UPDATE runs SET status = :status, metrics = :metrics, error = :error,"
                " duration_s = :d, checkpoint_path = :ckpt, updated_at = :t,"
                " host = COALESCE(:host, host), node = :node, worker = NULL, lease_until = NULL"
                " WHERE run_id = :r",
                {"status": status, "metrics": _dumps(dict(metrics)), "error": error,
                 "d": duration_s, "ckpt": checkpoint_path, "t": now_text(), "r": run_id,
                 "host": host, "node": node})
            return True

        return self.conn.write(fn)

    def replace_study_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Replace every cross-run record (e.g. robustness vs the baseline) in one transaction."""
        by_run: dict[str, int] = {}
        rows = []
        for rec in records:
            rid = str(rec["run_id"])
            rows.append(_record_row(rid, STUDY, by_run.get(rid, 0),
                                    {k: v for k, v in rec.items() if k != "run_id"}))
            by_run[rid] = by_run.get(rid, 0) + 1

        def fn(tx: Tx) -> None:
            tx.execute("DELETE FROM records WHERE source = :s", {"s": STUDY})
            tx.executemany(_INSERT_RECORD, rows)

        self.conn.write(fn)

    def delete_runs(self, run_ids: Iterable[str]) -> None:
        ids = [{"r": r} for r in run_ids]

        def fn(tx: Tx) -> None:
            tx.executemany("DELETE FROM records WHERE run_id = :r", ids)
            tx.executemany("DELETE FROM runs WHERE run_id = :r", ids)

        self.conn.write(fn)

    def close(self) -> None:
        self.conn.close()


def _run_all(statements: Iterable[str]) -> Callable[[Tx], None]:
    def fn(tx: Tx) -> None:
        for sql in statements:
            tx.execute(sql)

    return fn


_INSERT_RECORD = ("INSERT INTO records (run_id, source, seq, evaluation, metric, value, cond)"
                  " VALUES (:run_id, :source, :seq, :evaluation, :metric, :value, :cond)")


def _record_row(run_id: str, source: str, seq: int, rec: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("evaluation", "metric", "value"):
        if key not in rec:
            raise ValueError(f"run {run_id}: record {dict(rec)!r} lacks {key!r}")
    cond = {k: v for k, v in rec.items() if k not in ("evaluation", "metric", "value", "run_id")}
    for k, v in cond.items():
        if v is not None and not isinstance(v, (str, int, float)):
            raise TypeError(f"run {run_id}: record condition {k!r} must be str/int/float/None, "
                            f"got {type(v).__name__} {v!r}")
    value = float(rec["value"])
    return {"run_id": run_id, "source": source, "seq": seq, "evaluation": str(rec["evaluation"]),
            "metric": str(rec["metric"]), "value": None if math.isnan(value) else value,
            "cond": _dumps(cond)}


def open_store(
    study_dir_or_url: str | os.PathLike[str],
    *,
    readonly: bool = False,
    create: bool = False,
    lock_timeout: float = 30.0,
) -> Store:
    """Open the results store of a study directory (``DIR/results.sqlite``) or a database URL.

    A study dir whose results live in a database server holds ``store.json`` with the URL
    (password hidden; ``$FUSELAB_DB_URL`` supplies the full URL). ``readonly`` opens SQLite with
    ``mode=ro`` (``fuselab show``/``report``); ``create`` allows a new database.
    """
    target = os.fspath(study_dir_or_url)
    if "://" in target:
        return open_url(target, readonly=readonly, lock_timeout=lock_timeout)
    path = Path(target)
    if (path / URL_FILE).is_file():
        url = os.environ.get("FUSELAB_DB_URL") or _stored_url(path / URL_FILE)
        return open_url(url, readonly=readonly, lock_timeout=lock_timeout)
    if path.suffix != ".sqlite" and not path.is_dir() and (readonly or not create):
        what = "is not a folder" if path.exists() else "does not exist"
        raise StoreError(f"no results database: study folder {str(path)!r} {what}")
    db = path if path.suffix == ".sqlite" else path / DB_NAME
    if not db.is_file() and (readonly or not create):
        raise StoreError(f"no results database at {db}; run `fuselab study CONFIG --out "
                         f"{path}` first")
    if create:
        db.parent.mkdir(parents=True, exist_ok=True)
    return _opened(SqliteConnection(db, readonly=readonly, lock_timeout=lock_timeout), readonly)


def check_sqlite(db: Path) -> None:
    """``StoreError`` when the existing file ``db`` is not a fuselab results database; reads only
    (an empty database, left by a study stopped before it wrote its tables, passes)."""
    conn = SqliteConnection(db, readonly=True)
    try:
        Store(conn, readonly=True)
    except StoreError:
        if conn.tables():
            raise
    finally:
        conn.close()


def open_url(url: str, *, readonly: bool = False, lock_timeout: float = 30.0) -> Store:
    """The store in the database at SQLAlchemy ``url`` (``StoreError`` for a malformed URL)."""
    return _opened(SQLAlchemyConnection(url, lock_timeout=lock_timeout), readonly)


def _opened(conn: Connection, readonly: bool) -> Store:
    """A :class:`Store` on ``conn``; the connection is closed if the store cannot be used."""
    try:
        return Store(conn, readonly=readonly)
    except BaseException:
        conn.close()
        raise


def _stored_url(url_file: Path) -> str:
    try:
        url = json.loads(url_file.read_text(encoding="utf-8"))["url"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StoreError(f"{url_file} does not hold a database URL ({e})") from None
    if not isinstance(url, str):
        raise StoreError(f"{url_file} does not hold a database URL")
    return url
