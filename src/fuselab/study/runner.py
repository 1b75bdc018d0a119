"""Run a study: config -> checked grid -> runs on a backend -> results store -> cross-run records.

    summary = run_study("examples/quickstart.toml", out="runs/quickstart", workers=2)
    summary.study_dir, summary.done, summary.failed

The parent process is the only writer of the store. A run is marked ``running`` when a worker
starts it and ``done``/``failed`` together with its metrics and records in one transaction, so a
``kill -9`` of the parent loses only the runs in flight, and ``resume=True`` re-runs exactly the
runs that are not finished (``pending``/``running``; ``failed`` too with ``retry_failed``).
Ctrl-C: the first lets the runs in flight finish and be recorded and starts no new one
(``interrupted=True`` in the summary), the second cancels them (``KeyboardInterrupt``); see
:mod:`fuselab.study.interrupt`.

``shared=True`` joins a study that other processes work too, through one database: runs are
taken one at a time under a lease (:mod:`fuselab.study.lease`, docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuselab.study._sql import display_url
from fuselab.study.claims import Verdict, evaluate_claims
from fuselab.study.config import StudyConfig, load_config
from fuselab.study.crossrun import robustness_vs_baseline
from fuselab.study.environment import Invocation
from fuselab.study.errors import ConfigError, StoreError
from fuselab.study.grid import RunSpec, baseline_part, canonical_json, config_hash, expand
from fuselab.study.interrupt import Interrupts
from fuselab.study.lease import Leases, reset_failed
from fuselab.study.overrides import dump_overrides
from fuselab.study.progress import StudyProgress
from fuselab.study.store import Store, open_store, open_url
from fuselab.study.studydir import StudyLock, check_target, dir_error, open_study_store, prepare
from fuselab.study.worker import Outcome, RunFn, RunTask, clean_partials

if TYPE_CHECKING:
    from fuselab.study.backends.local import Pool


@dataclass
class StudySummary:
    """What :func:`run_study` did (``check_s``: time of the up-front grid check)."""

    study_dir: Path
    total: int
    executed: int
    done: int
    failed: int
    skipped: int
    wall_s: float
    run_time_s: float
    mode: str
    check_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: one :class:`~fuselab.study.claims.Verdict` per ``[[claims]]`` entry, from the store
    claims: list[Verdict] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C: runs in flight were recorded, the rest not started


def default_workers(threads_per_run: int) -> int:
    """CPU cores available to this process divided by the threads each run uses (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, threads_per_run))


def study_hash(cfg: StudyConfig, specs: list[RunSpec], data_id: str = "") -> str:
    """Identity of a study: its name, the ids of its runs and its data identity (execution
    options excluded)."""
    key: dict[str, Any] = {"name": cfg.name, "runs": [s.run_id for s in specs],
                           "baseline": cfg.baseline}
    if data_id:
        key["data"] = data_id
    return config_hash(key)


def study_data_id(specs: list[RunSpec], root: str | None) -> str:
    """The data identity (``fuselab.data.identity``) of the study's data config (a digest of
    them all when the grid varies the data); "" when no dataset of the study has one."""
    from fuselab import data

    ids: dict[str, str] = {}
    for spec in specs:
        key = canonical_json(spec.config["data"])
        if key in ids:
            continue
        name, opts = spec.config["data"]["name"], spec.config["data"]["options"]
        try:
            ids[key] = data.identity(name, root=root, **opts)
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise ConfigError("data", f"cannot list the sources of dataset {name!r}: "
                                      f"{str(e).strip(chr(34))}") from None
    found = sorted({v for v in ids.values() if v})
    return found[0] if len(found) == 1 else config_hash(found, 64) if found else ""


def run_study(
    config: str | Path | StudyConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    retry_failed: bool = False,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    data_dir: str | Path | None = None,
    db_url: str | None = None,
    run_fn: RunFn | None = None,
    check: bool = True,
    progress: bool = True,
    command: str | None = None,
    shared: bool = False,
) -> StudySummary:
    """Run (or resume) the study described by ``config``; see the module docstring.

    Args:
        out: study directory (default ``runs/<study name>``).
        workers: local worker processes (default: cores / threads per run; 0 = in-process).
        backend: ``"local"`` or ``"ray"`` (``address``: Ray cluster address, e.g. ``"auto"``).
        data_dir: dataset root, overriding ``data.root`` (does not change run ids).
        db_url: SQLAlchemy URL of a database server instead of ``results.sqlite``.
        run_fn: the function executing one run (default: the real pipeline,
            :func:`fuselab.study.execute.execute_run`).
        check: build every model once and validate every option before any run.
        command: the command line recorded with the environment (default: ``sys.argv``).
        shared: work the study together with other processes using the same database (each
            takes pending runs under a lease); joins a study already there without ``resume``.
    """
    t0 = time.perf_counter()
    cfg = config if isinstance(config, StudyConfig) else load_config(config)
    invocation = Invocation(command, cfg.execution.device)
    completed = False
    _check_run_args(backend, workers, shared, force)
    specs = expand(cfg)
    if run_fn is None:
        from fuselab.study.execute import execute_run

        run_fn = execute_run
    root = str(data_dir) if data_dir is not None else cfg.data.root
    study_dir = Path(out) if out is not None else Path("runs") / cfg.name
    n_workers = workers if workers is not None else cfg.execution.workers
    if n_workers is None:
        n_workers = default_workers(cfg.execution.threads_per_run)
    if db_url is not None:
        display_url(db_url)  # a malformed URL is refused before any file is created
    check_target(study_dir, cfg.source)
    data_id = study_data_id(specs, root)
    identity = study_hash(cfg, specs, data_id)
    with StudyLock(study_dir, shared=shared):
        store = open_study_store(study_dir, db_url)
        started: Pool | None = None
        try:
            mode, check_s, started = _open_study(
                store, cfg, specs, study_dir, identity, data_id, invocation, resume=resume or shared,
                force=force, check=check, root=root, backend=backend, workers=n_workers)
            tasks = _pending_tasks(store, cfg, specs, study_dir, root, retry_failed, shared)
            ckpt_dir = study_dir / "checkpoints"
            names = {s.run_id: f"{s.variant} · seed {s.seed}" for s in specs}
            bar = StudyProgress(len(tasks), names, enabled=progress, workers=max(1, n_workers))
            leases = Leases(store, lambda: _reopen(study_dir, db_url), cfg.execution.lease_s,
                            {s.run_id: _task(s, cfg, root, ckpt_dir, study_dir)
                             for s in specs}) if shared else None
            try:
                with Interrupts() as intr:
                    def stop() -> bool:
                        return intr.stopping
                    source = tasks if leases is None else leases.tasks(stop)
                    run_time, lost = _execute(
                        store, bar, intr,
                        _backend(backend, source, run_fn, n_workers, address, cfg, stop,
                                 started),
                        None if leases is None else leases.worker)
            finally:
                bar.close()
                if leases is not None:
                    leases.close()
            stopped = intr.stopping
            executed = len(tasks) if leases is None else leases.taken
            warnings = [f"run {r}: its lease expired and another process took it over; this "
                        "process's result was dropped" for r in lost] + _cross_run(store, cfg)
            final = store.status()
            verdicts = evaluate_claims(cfg.claims, store.runs(), store.records())
            completed = not stopped
        finally:
            with contextlib.suppress(StoreError):  # the end time must not mask the real error
                invocation.record_end(store, interrupted=not completed)
            store.close()
            if started is not None:
                started.close()
    return StudySummary(
        study_dir=study_dir, total=len(specs), executed=executed,
        done=sum(v == "done" for v in final.values()),
        failed=sum(v == "failed" for v in final.values()),
        skipped=len(specs) - len(tasks), wall_s=time.perf_counter() - t0, run_time_s=run_time,
        mode=mode, check_s=check_s, warnings=warnings, claims=verdicts,
        interrupted=stopped,
    )


def _check_run_args(backend: str, workers: int | None, shared: bool, force: bool) -> None:
    if backend not in ("local", "ray"):
        raise ValueError(f"backend: expected 'local' or 'ray', got {backend!r}")
    if shared and force:
        raise ValueError("shared: --force would discard the runs other processes work on; "
                         "start over with --force without --shared first")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 0):
        raise ValueError(f"workers: expected an integer >= 0, got {workers!r}")


def _open_study(store: Store, cfg: StudyConfig, specs: list[RunSpec], study_dir: Path,
                identity: str, data_id: str, invocation: Invocation, *, resume: bool,
                force: bool, check: bool, root: str | None, backend: str,
                workers: int) -> tuple[str, float, Pool | None]:
    """Decide what to do with the study dir (cheap, refuses a wrong one), check the grid, then
    change files: the study row, the start record, the config copy, the run rows.
    Returns the mode, the seconds the check took and the local worker pool, started before the
    check so that worker start-up (spawn, imports, data) overlaps it."""
    mode = prepare(store, study_dir, cfg.name, identity, resume=resume,
                   force=force, apply=False, data_id=data_id)
    started = _prestart(backend, workers, specs, cfg, root, study_dir)
    t_check = time.perf_counter()
    try:
        if check:
            from fuselab.study.plan import check_plan

            check_plan(cfg, specs, data_root=root, local=backend == "local")
    except BaseException:
        if started is not None:
            started.close()
        raise
    check_s = time.perf_counter() - t_check
    prepare(store, study_dir, cfg.name, identity, resume=resume,
            force=force, apply=True, data_id=data_id)
    store.init_study(cfg.name, cfg.raw, identity, data_id=data_id)
    invocation.record_start(store, cfg.overrides)
    _save_config(cfg, study_dir)
    store.add_runs(specs)
    return mode, check_s, started


def _pending_tasks(store: Store, cfg: StudyConfig, specs: list[RunSpec], study_dir: Path,
                   root: str | None, retry_failed: bool, shared: bool) -> list[RunTask]:
    """Tasks of the runs still to do (failed ones too with ``retry_failed``)."""
    ckpt_dir = study_dir / "checkpoints"
    if not shared:  # other processes of a shared study may be writing theirs
        clean_partials(ckpt_dir)
    elif retry_failed:
        reset_failed(store)
    status = store.status()
    finished = {"done", "failed"} if not retry_failed else {"done"}
    todo = [s for s in specs if status.get(s.run_id) not in finished]
    return [_task(s, cfg, root, ckpt_dir, study_dir) for s in todo]


def _execute(store: Store, bar: StudyProgress, intr: Interrupts,
             items: Iterator[dict[str, Any] | Outcome],
             worker: str | None = None) -> tuple[float, list[str]]:
    """Record what the backend yields; returns the summed run time and the runs whose result
    was dropped (``worker``, a shared study: the lease was lost). Each store write is kept whole
    by a second Ctrl-C, and the backend is closed (its workers stopped) on any exit."""
    run_time = 0.0
    lost: list[str] = []
    finished: set[str] = set()
    try:
        for item in items:
            with intr.deferred():
                if isinstance(item, Outcome):
                    if not _record(store, item, worker):
                        lost.append(item.run_id)
                    finished.add(item.run_id)
                    run_time += item.duration_s
                    bar.finished(item)
                elif item.get("kind") == "start" and item.get("run_id") in finished:
                    continue  # a late start must not show a finished run as running again
                else:
                    if item.get("kind") == "start" and worker is None:  # shared: taken already
                        store.mark_running(item["run_id"], item.get("host"))
                    bar.event(item)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    return run_time, lost


def _reopen(study_dir: Path, db_url: str | None) -> Store:
    """A second connection to the study's store (the lease heartbeat's)."""
    return open_url(db_url) if db_url is not None else open_store(study_dir)


def _task(spec: RunSpec, cfg: StudyConfig, root: str | None, ckpt_dir: Path,
          study_dir: Path) -> RunTask:
    x = cfg.execution
    return RunTask(
        run_id=spec.run_id, variant=spec.variant, seed=spec.seed, config=spec.config,
        data_root=root, checkpoint_dir=str(ckpt_dir) if x.checkpoints else None,
        threads=x.threads_per_run, device=x.device, log_dir=str(study_dir / "logs"),
        tensorboard=x.tensorboard, mlflow=x.mlflow,
    )


def _backend(name: str, tasks: Iterable[RunTask | None], run_fn: RunFn, workers: int,
             address: str | None, cfg: StudyConfig,
             stop: Callable[[], bool],
             started: Pool | None = None) -> Iterator[dict[str, Any] | Outcome]:
    if isinstance(tasks, list) and not tasks:
        return iter(())
    x = cfg.execution
    if name == "ray":
        from fuselab.study.backends.ray_backend import run_ray

        return run_ray(tasks, run_fn, address=address, max_retries=x.max_retries,
                       num_cpus=x.ray.cpus(x.threads_per_run), num_gpus=x.ray.gpus(x.device),
                       stop=stop)
    from fuselab.study.backends.local import run_local

    return run_local(tasks, run_fn, workers=workers, max_retries=x.max_retries, stop=stop,
                     started=started)


def _prestart(backend: str, workers: int, specs: list[RunSpec], cfg: StudyConfig,
              root: str | None, study_dir: Path) -> Pool | None:
    if backend != "local" or workers < 1 or not specs:
        return None
    from fuselab.study.backends.local import prestart

    sample = _task(specs[0], cfg, root, study_dir / "checkpoints", study_dir)
    return prestart(min(workers, len(specs)), sample)


def _record(store: Store, out: Outcome, worker: str | None = None) -> bool:
    """Write one outcome; a run whose records cannot be stored is recorded as failed instead.
    ``False``: not written, ``worker`` no longer holds the run (shared study)."""
    where = {"host": out.host, "node": out.node, "worker": worker}
    try:
        return store.finish_run(out.run_id, status=out.status, metrics=out.metrics,
                                records=out.records, error=out.error, duration_s=out.duration_s,
                                checkpoint_path=out.checkpoint_path, **where)
    except (TypeError, ValueError) as e:
        out.status, out.error, out.records, out.metrics = "failed", f"bad records: {e}", [], {}
        return store.finish_run(out.run_id, status="failed", metrics={}, records=[],
                                error=out.error, duration_s=out.duration_s, **where)


def _cross_run(store: Store, cfg: StudyConfig) -> list[str]:
    if cfg.baseline is None or "robustness" not in cfg.evaluate:
        return []
    opts = cfg.evaluate["robustness"]
    rows, warnings = robustness_vs_baseline(
        store.runs(), store.records, cfg.baseline, lambda v: baseline_part(v, cfg),
        modalities=opts.get("modalities"),
    )
    store.replace_study_records(rows)
    return warnings


def _save_config(cfg: StudyConfig, study_dir: Path) -> None:
    # overrides.toml beside the config copy: the two reproduce the study (--overrides FILE)
    over = study_dir / "overrides.toml"
    if cfg.overrides:
        tmp = over.with_suffix(f".{os.getpid()}.tmp")  # processes of a shared study write too
        tmp.write_text(dump_overrides(cfg.overrides), encoding="utf-8")
        os.replace(tmp, over)
    else:
        over.unlink(missing_ok=True)
    if cfg.source is None:
        return
    dest = study_dir / f"config{cfg.source.suffix}"
    if cfg.source.resolve() != dest.resolve():
        tmp = dest.with_suffix(f".{os.getpid()}.tmp")
        try:
            shutil.copyfile(cfg.source, tmp)
            os.replace(tmp, dest)  # replaces a link named config.*, never writes through it
        except OSError as e:
            raise dir_error(study_dir, e) from None
