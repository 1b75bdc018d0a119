"""The study directory: what may be written where, its lock, and the "another config" check.

Layout::

    runs/<study>/
        results.sqlite (+ -wal, -shm)   the results store (or store.json naming a database URL)
        study.lock                      held (flock) by the one `fuselab study` writing here
        config.toml | config.yaml       a copy of the config the study was started with
        checkpoints/<run_id>.pt         finished runs only; .partial-* are never read
        report.html, report.md, figures/ written by fuselab.report

fuselab writes only into a folder that does not exist yet, is empty, or is a study folder it
wrote (:func:`check_target`), and ``--force`` deletes only files it wrote (:func:`discard`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from fuselab.study.errors import StoreReadOnlyError, StudyDirError
from fuselab.study.store import DB_NAME, URL_FILE, Store, check_sqlite, open_store, open_url
from fuselab.study.worker import PARTIAL_RE, clean_partials

LOCK_NAME = "study.lock"
CHECKPOINTS = "checkpoints"


def dir_error(folder: Path, err: OSError) -> StudyDirError | StoreReadOnlyError:
    """The study-folder error for an ``OSError`` met while creating files in ``folder``."""
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnlyError(f"study folder {folder} is read-only ({err.strerror}: "
                                  f"{err.filename}); use a writable --out folder")
    if err.errno == errno.ELOOP:
        return StudyDirError(f"{err.filename} is a symbolic link; fuselab does not write "
                             "through links in a study folder")
    return StudyDirError(f"cannot write into study folder {folder}: {err}")


def check_target(study_dir: Path, source: Path | None = None) -> None:
    """Refuse an output folder that is a file, or that holds files and is not a fuselab study.

    Allowed: a path that does not exist yet, an empty folder, a folder holding a results store,
    or one holding only what a study writes before its store (``study.lock``, an empty
    ``checkpoints/``) and ``source``, the config being run.
    """
    if not study_dir.exists():
        if study_dir.is_symlink():
            raise StudyDirError(f"output folder {study_dir} is a symbolic link to nothing")
        return
    if not study_dir.is_dir():
        raise StudyDirError(f"output folder {study_dir} is a file, not a folder")
    try:
        names = sorted(os.listdir(study_dir))
    except OSError as e:
        raise StudyDirError(f"cannot list output folder {study_dir}: {e}") from None
    if DB_NAME in names:
        check_sqlite(study_dir / DB_NAME)
        return
    if URL_FILE in names:
        return
    own = source.resolve() if source is not None else None
    foreign = [n for n in names if not _early(study_dir / n) and (study_dir / n).resolve() != own]
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise StudyDirError(
            f"output folder {study_dir} is not empty and is not a fuselab study folder (it holds "
            f"{shown}); fuselab writes only into a new or empty folder or a study folder it "
            f"wrote, so that it never mixes with or deletes other files: choose another --out")


def _early(p: Path) -> bool:
    """Written by a study that stopped before creating its store."""
    if p.name == LOCK_NAME and p.is_file() and not p.is_symlink():
        return True
    if p.name == CHECKPOINTS and p.is_dir() and not p.is_symlink():
        return all(PARTIAL_RE.fullmatch(q.name) for q in p.iterdir())
    return False


class StudyLock:
    """An exclusive ``flock`` on ``DIR/study.lock``: one writer per study directory; ``shared``
    takes a shared lock instead, which the processes of one shared study (``--shared``) hold
    together and which still excludes a plain ``fuselab study`` on the same folder."""

    def __init__(self, study_dir: Path, shared: bool = False) -> None:
        self.path = study_dir / LOCK_NAME
        self.shared = shared
        self._fh: IO[str] | None = None

    def __enter__(self) -> StudyLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: the lock file is truncated below; never truncate a link's target.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise dir_error(self.path.parent, e) from None
        fh = os.fdopen(fd, "r+")
        try:
            fcntl.flock(fh.fileno(), (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
                        | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            how = "" if self.shared else " (or several `fuselab study --shared` processes)"
            raise StudyDirError(
                f"study directory {self.path.parent} is in use by another `fuselab study` "
                f"process{how} (lock {self.path}); wait for it or stop it first"
            ) from None
        if not self.shared:  # the pid of the one writer; shared holders are in the store
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
    if db_url is not None:
        store = open_url(db_url)
        url_file = study_dir / URL_FILE
        tmp = url_file.with_suffix(f".{os.getpid()}.tmp")  # shared studies: one per process
        try:
            study_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"url": store.location}))
            os.replace(tmp, url_file)
        except OSError as e:
            store.close()
            raise dir_error(study_dir, e) from None
        return store
    return open_store(study_dir, create=True)


def prepare(store: Store, study_dir: Path, name: str, config_hash: str, *, resume: bool,
            force: bool, apply: bool = True, data_id: str = "") -> str:
    """Check that this study may write here; returns ``"new"``, ``"resume"`` or ``"restart"``.

    * empty store: new study;
    * other data (``data_id``, the data identity, differs from the stored one): refused unless
      ``--force``, naming both identities (the runs' results were computed on other data);
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
    old_data = old.get("data_id", "")
    if old_data and data_id and old_data != data_id and not force:
        raise StudyDirError(
            f"study directory {study_dir} holds results computed on other data: its data "
            f"identity is {old_data[:16]}, the data this config reads now is {data_id[:16]} "
            "(the source file list changed: files added to or removed from the manifest, "
            "another manifest, or another speakers selection); restore that data, use another "
            f"--out directory, or --force to discard its {len(runs)} runs"
        )
    if force:
        if apply:
            discard(store, study_dir)
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


def discard(store: Store, study_dir: Path) -> None:
    """``--force``: forget the old runs and delete the files fuselab wrote for them, nothing else.

    Deleted: each old run's checkpoint ``checkpoints/<run_id><suffix>`` (named in the store) and
    partial checkpoint folders. Kept: every other file, e.g. reports (rebuilt by ``fuselab
    report``), ``logs/`` and anything the user put there.
    """
    ckpt_dir = study_dir / CHECKPOINTS
    written = [(r["run_id"], Path(r["checkpoint_path"]).name) for r in store.runs()
               if r.get("checkpoint_path")]
    # Forget first: a crash in between leaves unreferenced files, never a run recorded as done
    # whose checkpoint is gone.
    store.clear()
    for run_id, name in written:
        path = ckpt_dir / name  # the study folder may have moved since the run
        if path.stem == run_id:
            path.unlink(missing_ok=True)
    clean_partials(ckpt_dir)
