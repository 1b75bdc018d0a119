"""Run a search: config -> up-front check -> Optuna trials on a backend -> best.toml.

    summary = run_search("examples/search_avmnist.toml", out="runs/search_avmnist", workers=2)
    summary.best_config        # runs/search_avmnist/best.toml: `fuselab study` it on the test split

The search directory is a study directory (``study.lock``, ``results.sqlite`` or
``store.json``, ``config.toml``, ``overrides.toml``): the results store keeps the search's
config, identity and environment, and Optuna's tables in the same database keep the trials.
The parent asks for and tells every trial; workers train them (:mod:`fuselab.search.trial`).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuselab.search import optuna_setup as setup
from fuselab.search.check import base_config, check_search
from fuselab.search.config import SearchConfig, load_search_config
from fuselab.search.results import OBJECTIVES_ATTR
from fuselab.search.trials import TrialSource, counted, requeue_orphans
from fuselab.study.environment import Invocation
from fuselab.study.errors import StoreError, StudyDirError
from fuselab.study.grid import config_hash
from fuselab.study.progress import StudyProgress
from fuselab.study.runner import _save_config, default_workers
from fuselab.study.store import DB_NAME
from fuselab.study.studydir import StudyLock, open_study_store, prepare
from fuselab.study.worker import Outcome, RunFn, RunTask

#: Study-table key marking a store as a search's (``fuselab report`` builds the search report).
KIND_KEY = "kind"


@dataclass
class SearchSummary:
    """What :func:`run_search` did; ``states`` counts every trial of the search by state."""

    study_dir: Path
    states: dict[str, int]
    executed: int
    wall_s: float
    mode: str
    best_config: Path | None = None
    requeued: int = 0
    chosen: list[dict[str, Any]] = field(default_factory=list)


def search_hash(cfg: SearchConfig) -> str:
    """Identity of a search: what its trials train and how designs are sampled. The budget,
    ``top_k``, ``study.seeds``, ``[evaluate]`` and ``[execution]`` are left out: raising
    ``search.trials`` and resuming continues the same search."""
    s = cfg.search
    return config_hash({
        "kind": "search", "name": cfg.name, "base": base_config(cfg),
        "space": cfg.raw["search"]["space"], "cost": s.cost, "cost_options": s.cost_options,
        "sampler": [s.sampler, s.sampler_options, s.seed], "pruner": [s.pruner, s.pruner_options],
        "enqueue": s.enqueue,
    })


def objective_metric(cfg: SearchConfig, data_root: str | None) -> str:
    """The validation metric trials are scored on: ``train.metric``, ``"auto"`` resolved with
    the task of the training split."""
    from fuselab.study.execute import load_splits, train_config
    from fuselab.train import monitored_metric

    base = base_config(cfg)
    task = load_splits(base, data_root)["train"].task
    return monitored_metric(train_config(base, base["seed"], None), task)


def run_search(
    config: str | Path | SearchConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
    data_dir: str | Path | None = None,
    db_url: str | None = None,
    run_fn: RunFn | None = None,
    check: bool = True,
    progress: bool = True,
    command: str | None = None,
) -> SearchSummary:
    """Run (or resume, or join) the search described by ``config``; options as for
    :func:`fuselab.study.run_study` (``workers``: trials trained at once, also with Ray)."""
    t0 = time.perf_counter()
    op = setup.optuna()
    cfg = config if isinstance(config, SearchConfig) else load_search_config(config)
    op.logging.set_verbosity(op.logging.WARNING)  # fuselab prints its own progress
    if backend not in ("local", "ray"):
        raise ValueError(f"backend: expected 'local' or 'ray', got {backend!r}")
    if run_fn is None:
        from fuselab.search.trial import execute_trial

        run_fn = execute_trial
    root = str(data_dir) if data_dir is not None else cfg.study.data.root
    study_dir = Path(out) if out is not None else Path("runs") / cfg.name
    x = cfg.study.execution
    n_workers = workers if workers is not None else x.workers
    if n_workers is None:
        n_workers = default_workers(x.threads_per_run)
    invocation = Invocation(command, x.device)
    completed = False
    with StudyLock(study_dir):
        store = open_study_store(study_dir, db_url)
        url = db_url or setup.sqlite_url(study_dir / DB_NAME)
        storage = setup.storage(url, heartbeat=True, max_retry=x.max_retries)
        try:
            mode, metric = _prepare_search(op, store, storage, cfg, study_dir, invocation, root,
                                           resume=resume, force=force, check=check)
            study = _open_study(op, storage, cfg, metric)
            owner = f"{socket.gethostname()}:{study_dir.resolve()}"
            requeued = requeue_orphans(study, owner, x.max_retries, exclusive=db_url is None)
            source = TrialSource(study, storage, cfg, base_config(cfg), metric, owner,
                                 _task_maker(cfg, root, study_dir, url, metric))
            try:
                _loop(source, run_fn, backend, n_workers, address, cfg, progress)
            except BaseException:
                source.abandon()
                raise
            finally:
                source.close()
            best = _write_best(cfg, study_dir, store, url)
            states = _states(study)
            completed = True
        finally:
            with contextlib.suppress(StoreError):  # the end time must not mask the real error
                invocation.record_end(store, interrupted=not completed)
            store.close()
            storage.engine.dispose()
    return SearchSummary(study_dir=study_dir, states=states, executed=source.asked,
                         wall_s=time.perf_counter() - t0, mode=mode, best_config=best[0],
                         requeued=requeued, chosen=best[1])


def _prepare_search(op: Any, store: Any, storage: Any, cfg: SearchConfig, study_dir: Path,
                    invocation: Invocation, root: str | None, *, resume: bool, force: bool,
                    check: bool) -> tuple[str, str]:
    """Decide what to do with the directory (refusing trials of another run), check the
    config, then record the search; returns the mode and the objective metric."""
    h = search_hash(cfg)
    mode = prepare(store, study_dir, cfg.name, h, resume=resume, force=force, apply=False)
    existing = _trial_count(op, storage, cfg.name)
    if existing and not (resume or force):
        raise StudyDirError(
            f"search directory {study_dir} already holds {existing} trials of search "
            f"{cfg.name!r}; use --resume to continue it (more trials: --set "
            "search.trials=N --resume) or --force to start over")
    if check:
        check_search(cfg, root)
    metric = objective_metric(cfg, root)
    prepare(store, study_dir, cfg.name, h, resume=resume, force=force, apply=True)
    if force and existing:
        op.delete_study(study_name=cfg.name, storage=storage)
    store.init_study(cfg.name, cfg.raw, h)
    store.write_meta({KIND_KEY: "search", "objective": metric})
    invocation.record_start(store, cfg.overrides)
    _save_config(cfg, study_dir)  # type: ignore[arg-type]  # needs .source, .overrides
    return mode, metric


def _task_maker(cfg: SearchConfig, root: str | None, study_dir: Path, url: str,
                metric: str) -> Callable[[int, dict[str, Any], int], RunTask]:
    """``make_task(number, run_config, trial_id)``: the run task of one trial."""
    x = cfg.study.execution

    def make_task(number: int, run_config: dict[str, Any], trial_id: int) -> RunTask:
        return RunTask(
            run_id=f"trial-{number}", variant=f"trial {number}", seed=cfg.search.train_seed,
            config={**run_config, "evaluate": {}}, data_root=root, checkpoint_dir=None,
            threads=x.threads_per_run, device=x.device, log_dir=str(study_dir / "logs"),
            tensorboard=x.tensorboard, mlflow=x.mlflow,
            context={"storage": url, "study": cfg.name, "trial_id": trial_id,
                     "metric": metric, "cost": cfg.search.cost,
                     "cost_options": cfg.search.cost_options,
                     "pruner": None if cfg.search.pruner == "none" else
                     [cfg.search.pruner, cfg.search.pruner_options]})

    return make_task

def _trial_count(op: Any, storage: Any, name: str) -> int:
    try:
        return len(op.load_study(study_name=name, storage=storage).trials)
    except KeyError:  # no such study yet
        return 0


def _open_study(op: Any, storage: Any, cfg: SearchConfig, metric: str) -> Any:
    from fuselab.tasks import higher_is_better

    directions = ["maximize" if higher_is_better(metric) else "minimize"]
    if cfg.search.cost:
        directions.append("minimize")
    offset = _trial_count(op, storage, cfg.name)
    with setup.quiet():
        study = op.create_study(
            storage=storage, study_name=cfg.name, directions=directions, load_if_exists=True,
            sampler=setup.sampler(cfg.search, offset),
            pruner=setup.pruner(cfg.search.pruner, cfg.search.pruner_options))
        if not study.trials:
            for design in cfg.search.enqueue:
                study.enqueue_trial(design)
    study.set_user_attr(OBJECTIVES_ATTR, [f"val_{metric}"] + ([cfg.search.cost] if cfg.search.cost else []))
    return study


def _loop(source: TrialSource, run_fn: RunFn, backend: str, workers: int,
          address: str | None, cfg: SearchConfig, progress: bool) -> None:
    """Feed the source's trials to the backend and tell each outcome as it arrives."""
    todo = max(0, cfg.search.trials - counted(source.study))
    bar = StudyProgress(todo, source.names, enabled=progress, workers=max(1, workers))
    try:
        if backend == "ray":
            from fuselab.study.backends.ray_backend import run_ray

            gpus = 1.0 if cfg.study.execution.device == "cuda" else 0.0
            stream = run_ray(source, run_fn, address=address, num_gpus=gpus,
                             max_retries=cfg.study.execution.max_retries,
                             max_in_flight=max(1, workers))
        else:
            from fuselab.study.backends.local import run_local

            stream = run_local(source, run_fn, workers=workers,
                               max_retries=cfg.study.execution.max_retries)
        for item in stream:
            if isinstance(item, Outcome):
                source.tell(item)
                bar.finished(item)
            else:
                bar.event(item)
    finally:
        bar.close()


def _states(study: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


def _write_best(cfg: SearchConfig, study_dir: Path, store: Any, url: str,
                ) -> tuple[Path | None, list[dict[str, Any]]]:
    from fuselab.search.export import choose, write_best_config
    from fuselab.search.results import read_trials

    data = read_trials(url, cfg.name)
    chosen = choose(data, cfg.search.top_k)
    if not chosen:
        return None, []
    path = write_best_config(cfg, chosen, data, study_dir / "best.toml")
    return path, chosen
