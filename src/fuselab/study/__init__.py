"""Fusion studies: one config -> a checked grid of runs -> a results store -> a report.

    from fuselab.study import load_config, expand, run_study, open_store
    cfg = load_config("examples/quickstart.toml")      # typed, validated (errors name the path)
    runs = expand(cfg)                                 # RunSpec per grid point and seed
    summary = run_study(cfg, out="runs/quickstart", workers=2)
    store = open_store("runs/quickstart")              # runs(), records(), study()
    model = load_run_model("runs/quickstart", run_id)  # a finished run's trained model

See docs/study.md for the config schema and the runner's guarantees.
"""

from fuselab.study.config import StudyConfig, load_config, parse_config
from fuselab.study.errors import (
    ConfigError,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
    StudyDirError,
)
from fuselab.study.grid import RunSpec, expand
from fuselab.study.runner import StudySummary, run_study
from fuselab.study.store import Store, open_store
from fuselab.study.trained import load_run_model
from fuselab.study.worker import Outcome, RunResult, RunTask

__all__ = [
    "ConfigError",
    "Outcome",
    "RunResult",
    "RunSpec",
    "RunTask",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "StudyConfig",
    "StudyDirError",
    "StudySummary",
    "expand",
    "load_config",
    "load_run_model",
    "open_store",
    "parse_config",
    "run_study",
]
