"""A search on a local 2-CPU Ray instance: trials as Ray tasks, reattached for pruning."""

from __future__ import annotations

import os
from pathlib import Path

import fake_trials
import pytest
from fake_trials import HERE, write_search
from test_search_run import PRUNE

import fuselab
from fuselab.search import run_search
from fuselab.search.results import read_search

ray = pytest.importorskip("ray")


def test_ray_search_asks_one_trial_at_a_time_and_prunes(tmp_path: Path, lookup_npz: Path) -> None:
    src = str(Path(fuselab.__file__).resolve().parents[1])
    cfg = write_search(tmp_path / "p.toml", lookup_npz, PRUNE.format(sleep=0.0), epochs=3)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(HERE), src])}})
    try:
        # workers=1: at most one trial in flight, so the median pruner sees the same history as
        # in the in-process test and decides the same way
        run_search(cfg, tmp_path / "s", backend="ray", workers=1, run_fn=fake_trials.fake_trial,
                   check=False, progress=False)
    finally:
        ray.shutdown()
    data = read_search(tmp_path / "s")
    states = {t["params"]["score"]: t["state"] for t in data.trials}
    assert states == {0.9: "complete", 0.8: "complete", 0.7: "pruned", 0.95: "complete",
                      0.1: "pruned"}
    assert all(t["intermediate"] for t in data.trials)
