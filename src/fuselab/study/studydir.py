"""The study directory: its lock, its layout and the "written by another config" check.

Layout::

    runs/<study>/
        results.sqlite (+ -wal, -shm)   the results store (or store.json naming a database URL)
        study.lock                      held (flock) by the one `fuselab study` writing here
        config.toml | config.yaml       a copy of the config the study was started with
        checkpoints/<run_id>.pt         finished runs only; .partial-* are never read
        report.html, report.md, figures/ written by fuselab.report
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any

from fuselab.study.errors import StudyDirError
from fuselab.study.store import URL_FILE, Store, open_store

LOCK_NAME = "study.lock"


class StudyLock:
    """An exclusive ``flock`` on ``DIR/study.lock``: one writer per study directory."""

    def __init__(self, study_dir: Path) -> None:
        self.path = study_dir / LOCK_NAME
        self._fh: IO[str] | None = None

    def __enter__(self) -> StudyLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise StudyDirError(
                f"study directory {self.path.parent} is in use by another `fuselab study` "
                f"process (lock {self.path}); wait for it or stop it first"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def open_study_store(study_dir: Path, db_url: str | None) -> Store:
    """Create/open the writable store of ``study_dir`` (SQLite inside it, or ``db_url``)."""
    study_dir.mkdir(parents=True, exist_ok=True)
    if db_url is not None:
        from fuselab.study._sql import SQLAlchemyConnection

        store = Store(SQLAlchemyConnection(db_url))
        url_file = study_dir / URL_FILE
        tmp = url_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": store.location}))
        os.replace(tmp, url_file)
        return store
    return open_store(study_dir, create=True)


def prepare(store: Store, study_dir: Path, name: str, config_hash: str, *, resume: bool,
            force: bool, apply: bool = True) -> str:
    """Check that this study may write here; returns ``"new"``, ``"resume"`` or ``"restart"``.

    * empty store: new study;
    * same config: ``--resume`` continues it, ``--force`` starts over, otherwise an error
      (results would be mixed up with a new attempt by accident);
    * another config: refused unless ``--force`` (which forgets the old runs).

    With ``apply=False`` nothing is deleted (the decision only), so a study that then fails its
    up-front check has not discarded the old results.
    """
    old = store.study()
    runs = store.runs() if old else []
    if not old:
        return "new"
    same = old.get("config_hash") == config_hash
    if force:
        if apply:
            store.clear()
            shutil.rmtree(study_dir / "checkpoints", ignore_errors=True)
        return "restart"
    if not same:
        raise StudyDirError(
            f"study directory {study_dir} was written by another config (study "
            f"{old.get('name')!r}, config hash {old.get('config_hash')}, this config "
            f"{name!r} has {config_hash}); use another --out directory, or --force to discard "
            f"its {len(runs)} runs"
        )
    if not resume and any(r["status"] in ("done", "failed", "running") for r in runs):
        n = sum(r["status"] == "done" for r in runs)
        raise StudyDirError(
            f"study directory {study_dir} already holds this study ({n} of {len(runs)} runs "
            f"done); use --resume to continue it or --force to start over"
        )
    return "resume"
