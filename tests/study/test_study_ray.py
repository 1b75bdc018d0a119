"""Ray backend on a local 2-CPU Ray instance started by the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_runs import HERE, crash_once_run, write_fake

from fuselab.study import open_store, run_study

ray = pytest.importorskip("ray")


def test_ray_backend_retries_a_dead_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_fake(tmp_path / "fake.toml")
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("FAKE_MARKERS", str(markers))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"FAKE_MARKERS": str(markers),
                                       "PYTHONPATH": os.pathsep.join(
                                           [str(HERE), os.environ.get("PYTHONPATH", "")])}})
    try:
        s = run_study(cfg, tmp_path / "study", backend="ray", run_fn=crash_once_run,
                      check=False, progress=False)
    finally:
        ray.shutdown()
    # every worker died once (os._exit) on its first attempt; Ray re-ran each task
    assert (s.done, s.failed) == (4, 0)
    assert len(list(markers.glob("*.tried"))) == 4
    runs = open_store(tmp_path / "study", readonly=True).runs()
    assert all(r["status"] == "done" and r["metrics"]["test_accuracy"] >= 0 for r in runs)
