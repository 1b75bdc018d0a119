"""Results store: the read interface, atomic replacement of records, locks, read-only, URLs."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from fuselab.study import (
    RunSpec,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
    open_store,
)


def _spec(rid: str, variant: str = "late · concat", seed: int = 0) -> RunSpec:
    return RunSpec(rid, variant, {"depth": "late", "operator": "concat"}, seed,
                   {"model": {"name": "m"}, "seed": seed}, "grid.fusion[0]")


def _filled(tmp_path: Path):
    store = open_store(tmp_path, create=True)
    store.init_study("s", {"study": {"name": "s"}}, "h1")
    store.add_runs([_spec("a"), _spec("b", seed=1)])
    return store


def test_read_interface_round_trip(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    recs = [{"evaluation": "snr_grid", "metric": "accuracy", "value": 0.5, "snr_audio": None,
             "snr_image": 0.25}, {"evaluation": "test", "metric": "mse", "value": math.nan,
                                  "split": "test"}]
    store.finish_run("a", status="done", metrics={"test_accuracy": 0.9, "x": math.nan},
                     records=recs, duration_s=1.5, checkpoint_path="/c/a.pt")
    study = store.study()
    assert study["name"] == "s" and study["config"] == {"study": {"name": "s"}}
    assert study["created_at"]
    runs = {r["run_id"]: r for r in store.runs()}
    assert [r["run_id"] for r in store.runs()] == ["a", "b"]  # grid order
    a = runs["a"]
    assert a["status"] == "done" and a["variant"] == "late · concat" and a["seed"] == 0
    assert a["factors"] == {"depth": "late", "operator": "concat"}
    assert a["config"] == {"model": {"name": "m"}, "seed": 0}
    assert a["metrics"]["test_accuracy"] == 0.9 and math.isnan(a["metrics"]["x"])
    assert a["error"] is None and a["duration_s"] == 1.5 and a["checkpoint_path"] == "/c/a.pt"
    assert runs["b"]["status"] == "pending"
    got = store.records("a")
    assert got[0] == {"run_id": "a", **recs[0]}
    assert got[1]["split"] == "test" and math.isnan(got[1]["value"])
    assert store.records("b") == []


def test_old_metric_names_read_under_todays_names(tmp_path: Path) -> None:
    """A store written before ``throughput_b256`` became ``throughput`` (+ ``batch_size``)."""
    store = _filled(tmp_path)
    store.finish_run("a", status="done", metrics={"throughput_b256": 812.0, "params": 10.0},
                     records=[{"evaluation": "cost", "metric": "throughput_b256", "value": 812.0},
                              {"evaluation": "cost", "metric": "params", "value": 10.0}])
    run = next(r for r in store.runs() if r["run_id"] == "a")
    assert run["metrics"] == {"throughput": 812.0, "params": 10.0}
    assert [(r["metric"], r["value"]) for r in store.records("a")] == [
        ("throughput", 812.0), ("params", 10.0)]


def test_finishing_twice_replaces_never_appends(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    rec = {"evaluation": "test", "metric": "accuracy", "value": 0.1, "split": "test"}
    store.finish_run("a", status="failed", metrics={}, records=[rec], error="boom")
    store.finish_run("a", status="done", metrics={"m": 1}, records=[rec, {**rec, "value": 0.2}])
    assert [r["value"] for r in store.records("a")] == [0.1, 0.2]
    run = store.runs()[0]
    assert run["status"] == "done" and run["error"] is None
    # study-level records are replaced as a set, independent of the run's own records
    store.replace_study_records([{"run_id": "a", "evaluation": "robustness", "metric": "r",
                                 "value": 1.0, "modality": "all", "baseline": "late"}] * 2)
    store.replace_study_records([{"run_id": "a", "evaluation": "robustness", "metric": "r",
                                 "value": 2.0, "modality": "all", "baseline": "late"}])
    assert [r["value"] for r in store.records("a")] == [0.1, 0.2, 2.0]


def test_bad_record_rejected_without_partial_write(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    good = {"evaluation": "test", "metric": "accuracy", "value": 0.1}
    with pytest.raises(TypeError, match="condition 'snr' must be str/int/float/None"):
        store.finish_run("a", status="done", metrics={}, records=[good, {**good, "snr": [1]}])
    assert store.records("a") == [] and store.runs()[0]["status"] == "pending"


def test_locked_database_gives_clear_error_after_retries(tmp_path: Path) -> None:
    _filled(tmp_path).close()
    store = open_store(tmp_path, lock_timeout=0.3)
    blocker = sqlite3.connect(tmp_path / "results.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert len(open_store(tmp_path, lock_timeout=0.3).runs()) == 2  # reading needs no lock
        with pytest.raises(StoreLockedError, match="locked by another process"):
            store.mark_running("a")
    finally:
        blocker.execute("ROLLBACK")
    store.mark_running("a")  # the lock is gone: the same store works again
    assert store.runs()[0]["status"] == "running"


def test_read_only_database(tmp_path: Path) -> None:
    _filled(tmp_path).close()
    ro = open_store(tmp_path, readonly=True)
    assert len(ro.runs()) == 2
    with pytest.raises(StoreReadOnlyError, match="read-only"):
        ro.mark_running("a")


def test_missing_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no results database"):
        open_store(tmp_path / "nothing")


def test_sqlalchemy_url_store(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = open_store(url)
    store.init_study("s", {"k": 1}, "h")
    store.add_runs([_spec("a")])
    store.finish_run("a", status="done", metrics={"test_accuracy": 1.0},
                     records=[{"evaluation": "test", "metric": "accuracy", "value": 1.0}])
    again = open_store(url)
    assert again.study()["config"] == {"k": 1}
    assert again.runs()[0]["metrics"] == {"test_accuracy": 1.0}
    assert again.records()[0]["value"] == 1.0
