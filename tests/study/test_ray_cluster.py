"""A real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head and a
second node, each a raylet with its own CPUs): a study's runs land on both nodes, the store
records the node of each, the second node is killed while it trains a run, and that run is
retried on the head; nothing is lost or recorded twice. Epoch progress reaches the driver.

Ray is a test extra; with ``CI=true`` a missing Ray fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_runs import HERE, node_traced_run, write_fake

from fuselab.study import open_store, run_study
from fuselab.study.progress import StudyProgress

try:
    import ray
    from ray.cluster_utils import Cluster
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("ray not installed (pip install -e '.[test]')", allow_module_level=True)

#: Fast detection of a dead node (Ray's defaults take ~30 s); small object stores.
_NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}
_HEAD = {**_NODE, "include_dashboard": False, "_system_config": {
    "health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
    "health_check_timeout_ms": 500, "health_check_failure_threshold": 2}}


def _lines(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines()] if path.exists() else []


def _kill_on_second_start(cluster: Any, node: Any, markers: Path, killed: list[str]) -> None:
    """Remove ``node`` (no graceful shutdown) once it has started its second run: by then one
    run finished there and one is in flight."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        starts = [ln[1] for ln in _lines(markers) if ln[0] == "start" and ln[2] == node.node_id]
        if len(starts) >= 2:
            cluster.remove_node(node, allow_graceful=False)
            killed.append(starts[1])
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_runs_spread_over_two_nodes_and_survive_losing_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 seeds x 2 variants = 6 runs of ~1.5 s, each asking for one CPU: one at a time per node
    cfg = write_fake(tmp_path / "fake.toml", sleep=1.5,
                     extra="\n[execution.ray]\nnum_cpus_per_run = 1\n")
    cfg.write_text(cfg.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    markers = tmp_path / "markers.txt"
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(StudyProgress, "event", lambda self, ev: events.append(ev))
    cluster = Cluster(initialize_head=True, head_node_args=_HEAD)
    second = cluster.add_node(**_NODE)
    head_id = cluster.head_node.node_id
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    killed: list[str] = []
    try:
        ray.init(address=cluster.address, log_to_driver=False, runtime_env={"env_vars": {
            "FAKE_MARKERS": str(markers), "PYTHONPATH": path}})
        watcher = threading.Thread(target=_kill_on_second_start,
                                   args=(cluster, second, markers, killed), daemon=True)
        watcher.start()
        s = run_study(cfg, tmp_path / "study", backend="ray", run_fn=node_traced_run,
                      check=False, progress=False)
        watcher.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed, "the second node never started a second run"
    lost = killed[0]
    runs = {r["run_id"]: r for r in open_store(tmp_path / "study", readonly=True).runs()}
    assert (s.done, s.failed, len(runs)) == (6, 0, 6)
    # every run recorded once, with its own records, and the node it finished on
    records = open_store(tmp_path / "study", readonly=True).records()
    for rid, r in runs.items():
        assert r["status"] == "done"
        assert sum(rec["run_id"] == rid and rec["evaluation"] == "test" for rec in records) == 1
    ends = {ln[1]: ln[2] for ln in _lines(markers) if ln[0] == "end"}
    assert {rid: r["node"] for rid, r in runs.items()} == ends
    assert set(ends.values()) == {head_id, second.node_id}  # runs landed on both nodes
    # the run in flight on the killed node started there, never ended there, finished on the head
    starts = [(ln[1], ln[2]) for ln in _lines(markers) if ln[0] == "start"]
    assert (lost, second.node_id) in starts and (lost, head_id) in starts
    assert runs[lost]["node"] == head_id
    assert all(node == head_id for rid, node in ends.items()
               if (rid, second.node_id) not in starts)
    # per-epoch progress streamed back from both nodes to the driver's display
    epochs = [ev for ev in events if ev.get("kind") == "epoch"]
    assert {(ev["run_id"], ev["epoch"]) for ev in epochs} >= {(rid, e) for rid in runs
                                                              for e in (1, 2)}
    assert {ev["node"] for ev in epochs} == {head_id, second.node_id}
