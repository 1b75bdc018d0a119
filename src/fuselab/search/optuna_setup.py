"""The Optuna side of a search: its storage (the study's own database), sampler and pruner.

Optuna is an optional extra (``pip install 'fuselab[search]'``), imported only here and in the
modules that run or read a search. Its tables (``studies``, ``trials``, ...) live in the same
database as the results store: ``DIR/results.sqlite``, or the ``--db-url`` server, whose
tables never clash with the store's (``study``, ``runs``, ``records``).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fuselab.search.config import SearchSpec
from fuselab.study.errors import ConfigError

#: Seconds between the heartbeats of a running trial, and after how long without one another
#: process sharing the database fails the trial and queues it again (RDBStorage heartbeat).
HEARTBEAT_S = 30
GRACE_S = 120
#: SQLite waits this long for a lock held by another process (parent, workers) before failing.
SQLITE_TIMEOUT_S = 60
#: Sampler/pruner arguments a config cannot set: seeds come from search.seed, the rest are
#: Python objects (callables, strategies) that TOML cannot express.
_OBJECT_OPTIONS = ("seed", "constraints_func", "gamma", "weights", "mutation", "crossover",
                   "elite_population_selection_strategy", "child_generation_strategy",
                   "after_trial_strategy")


def optuna() -> Any:
    """The ``optuna`` module, or an ImportError naming the extra to install."""
    try:
        import optuna as op
    except ImportError as e:
        raise ImportError(f"fuselab search needs Optuna: pip install 'fuselab[search]' ({e})"
                          ) from e
    return op


@contextmanager
def quiet() -> Iterator[None]:
    """Optuna's experimental-feature and heartbeat-with-ask warnings: fuselab uses those
    features on purpose (docs/search.md says how), so they would only be noise."""
    op = optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        # importances are computed with the target's sign set for each direction (results.py)
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
        yield


def sqlite_url(path: Path) -> str:
    """A SQLAlchemy URL for the SQLite file ``path``: built from parts, so spaces, ``%``, ``?``,
    ``#`` and braces in the path are quoted (and survive Optuna's ``str.format`` of the URL)."""
    import sqlalchemy as sa

    url = sa.engine.URL.create("sqlite", database=str(Path(path).resolve()))
    return url.render_as_string(hide_password=False)


def storage(url: str, *, heartbeat: bool = False, max_retry: int | None = None) -> Any:
    """An ``RDBStorage`` on ``url``; with ``heartbeat`` a running trial whose process stopped
    beating for :data:`GRACE_S` is failed and queued again (``max_retry`` times) by whichever
    process sharing the database asks for a trial next."""
    op = optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    extra: dict[str, Any] = {}
    if heartbeat:
        with quiet():
            retry = op.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        extra = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S,
                 "heartbeat_stale_trial_callback": retry}
    with quiet():
        return op.storages.RDBStorage(url, engine_kwargs=kwargs, **extra)


def _classes(kind: str) -> dict[str, Any]:
    op = optuna()
    if kind == "sampler":
        return {"tpe": op.samplers.TPESampler, "nsga2": op.samplers.NSGAIISampler,
                "random": op.samplers.RandomSampler}
    return {"median": op.pruners.MedianPruner, "percentile": op.pruners.PercentilePruner,
            "hyperband": op.pruners.HyperbandPruner,
            "successive_halving": op.pruners.SuccessiveHalvingPruner,
            "none": op.pruners.NopPruner}


def _build(kind: str, name: str, options: dict[str, Any], **fixed: Any) -> Any:
    cls = _classes(kind)[name]
    where = f"search.{kind}_options"
    allowed = [p for p in inspect.signature(cls).parameters if p not in _OBJECT_OPTIONS]
    for key, v in options.items():
        if key not in allowed:
            hint = "; the seed is search.seed" if key == "seed" else ""
            raise ConfigError(f"{where}.{key}", f"not an option of {kind} {name!r} "
                                                f"({cls.__name__}); allowed: {allowed}{hint}")
        if not isinstance(v, (bool, int, float, str)):
            raise ConfigError(f"{where}.{key}", f"expected a scalar, got {v!r}")
    try:
        with quiet():
            return cls(**options, **fixed)
    except (TypeError, ValueError) as e:
        raise ConfigError(where, f"{cls.__name__} rejects {options}: {e}") from None


def sampler(spec: SearchSpec, offset: int = 0) -> Any:
    """The configured sampler, seeded with ``search.seed + offset``: a resumed search passes the
    number of trials it already has, so it does not replay the first trials' random draws."""
    return _build("sampler", spec.sampler, spec.sampler_options, seed=spec.seed + offset)


def pruner(name: str, options: dict[str, Any]) -> Any:
    """The configured pruner (``"none"``: Optuna's ``NopPruner``)."""
    return _build("pruner", name, options)


def check(spec: SearchSpec) -> None:
    """Build the sampler and pruner once, so bad options fail before any trial."""
    sampler(spec)
    pruner(spec.pruner, spec.pruner_options)
