"""The runner with stand-in run functions: resume, study-dir guards, failures, robustness."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_runs import HERE, _score, disk_full_run, marker_run, ok_run, write_fake

from fuselab.study import StudyDirError, expand, load_config, open_store, run_study
from fuselab.study.worker import RunTask


def _run(cfg: Path, out: Path, **kw):
    kw.setdefault("run_fn", ok_run)
    kw.setdefault("workers", 0)
    return run_study(cfg, out, check=False, progress=False, **kw)


def test_inline_study_records_every_run(fake_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    s = _run(fake_config, out)
    assert (s.total, s.done, s.failed, s.executed) == (4, 4, 0, 4)
    store = open_store(out, readonly=True)
    runs = store.runs()
    assert {r["status"] for r in runs} == {"done"}
    for r in runs:
        task = RunTask(r["run_id"], r["variant"], r["seed"], r["config"])
        assert r["metrics"]["test_accuracy"] == pytest.approx(_score(task))
        # the published checkpoint is the run's own file; no partial dir is left behind
        assert Path(r["checkpoint_path"]).read_bytes() == b"weights-" + r["run_id"].encode()
    assert not list((out / "checkpoints").glob(".partial-*"))
    assert (out / "config.toml").read_text() == fake_config.read_text()


def test_robustness_against_the_baseline_of_the_same_seed(fake_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    _run(fake_config, out)
    store = open_store(out, readonly=True)
    runs = store.runs()
    for early in (r for r in runs if r["variant"] == "early"):
        late = next(r for r in runs if r["variant"] == "late" and r["seed"] == early["seed"])
        d0 = early["metrics"]["test_accuracy"] - late["metrics"]["test_accuracy"]
        auc = [r for r in store.records(early["run_id"]) if r["evaluation"] == "robustness"
               and r["metric"] == "robust_auc" and r["modality"] == "a"]
        # curves acc - slope*k at levels 0, .5, 1 with slopes .05 (early) and .1 (late):
        # trapezoid of (d0, d0 + .05, d0 + .1) = d0 + .05
        assert len(auc) == 1 and auc[0]["baseline"] == "late"
        assert auc[0]["value"] == pytest.approx(d0 + 0.05)


def test_resume_skips_finished_runs_and_other_guards(fake_config: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "study"
    markers = tmp_path / "markers.txt"
    monkeypatch.setenv("FAKE_MARKERS", str(markers))
    _run(fake_config, out, run_fn=marker_run)
    assert len(markers.read_text().split()) == 4
    with pytest.raises(StudyDirError, match="use --resume"):
        _run(fake_config, out, run_fn=marker_run)
    s = _run(fake_config, out, run_fn=marker_run, resume=True)
    assert (s.executed, s.skipped, s.done) == (0, 4, 4)
    assert len(markers.read_text().split()) == 4
    other = write_fake(tmp_path / "other.toml", sleep=0.001)
    with pytest.raises(StudyDirError, match="written by another config"):
        _run(other, out, run_fn=marker_run, resume=True)
    assert len(open_store(out, readonly=True).runs()) == 4  # nothing lost
    s = _run(other, out, run_fn=marker_run, force=True)
    assert (s.mode, s.executed, s.done) == ("restart", 4, 4)
    ids = {r.run_id for r in expand(load_config(other))}
    assert {r["run_id"] for r in open_store(out, readonly=True).runs()} == ids


def test_failed_runs_are_recorded_with_their_message(tmp_path: Path) -> None:
    cfg = write_fake(tmp_path / "nan.toml", extra='\n[[grid.fusion]]\nlabel = "bad"\n'
                                                  'train = { nan = true }\n')
    out = tmp_path / "study"
    s = _run(cfg, out)
    assert (s.done, s.failed) == (4, 2)
    bad = [r for r in open_store(out, readonly=True).runs() if r["variant"] == "bad"]
    assert all(r["status"] == "failed" and "loss became nan" in r["error"] for r in bad)
    assert all(r["checkpoint_path"] is None for r in bad)
    # resume does not repeat failed runs unless asked to
    assert _run(cfg, out, resume=True).executed == 0
    assert _run(cfg, out, resume=True, retry_failed=True).executed == 2


def test_disk_full_while_saving_marks_failed_and_leaves_nothing(fake_config: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "study"
    s = _run(fake_config, out, run_fn=disk_full_run)
    assert s.failed == 4
    runs = open_store(out, readonly=True).runs()
    assert all(r["error"].startswith("disk full while saving") for r in runs)
    assert list((out / "checkpoints").iterdir()) == []


def test_second_writer_on_the_same_dir_is_refused(fake_config: Path, tmp_path: Path) -> None:
    from fuselab.study.studydir import StudyLock

    out = tmp_path / "study"
    with StudyLock(out), pytest.raises(StudyDirError, match="in use by another"):
        _run(fake_config, out)


def test_worker_processes_match_inline_results(fake_config: Path, tmp_path: Path) -> None:
    _run(fake_config, tmp_path / "inline")
    s = _run(fake_config, tmp_path / "pool", workers=2)
    assert s.done == 4
    a = {r["run_id"]: r["metrics"] for r in open_store(tmp_path / "inline").runs()}
    b = {r["run_id"]: r["metrics"] for r in open_store(tmp_path / "pool").runs()}
    assert a.keys() == b.keys()
    assert all(a[k]["test_accuracy"] == b[k]["test_accuracy"] for k in a)


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from fake_runs import marker_run
from fuselab.study import run_study
run_study({cfg!r}, {out!r}, run_fn=marker_run, check=False, workers=1, progress=False)
"""


def _done(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_kill_9_mid_study_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_fake(tmp_path / "slow.toml", sleep=0.6)
    out = tmp_path / "study"
    markers = tmp_path / "markers.txt"
    env = {**os.environ, "FAKE_MARKERS": str(markers)}
    code = SCRIPT.format(here=str(HERE), cfg=str(cfg), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 90
    while _done(out / "results.sqlite") < 1 and time.monotonic() < deadline:
        assert proc.poll() is None, "study ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r["run_id"]: r["status"] for r in open_store(out, readonly=True).runs()}
    done_before = {k for k, v in before.items() if v == "done"}
    assert 1 <= len(done_before) < 4
    first = markers.read_text().split()
    monkeypatch.setenv("FAKE_MARKERS", str(markers))
    s = _run(cfg, out, run_fn=marker_run, resume=True)
    assert s.skipped == len(done_before) and s.done == 4
    second = markers.read_text().split()[len(first):]
    assert done_before.isdisjoint(second)  # a finished run is never repeated
    assert sorted(done_before | set(second)) == sorted(before)
    store = open_store(out, readonly=True)
    for rid in before:  # every run recorded exactly once: 1 test + 6 curve points
        own = [r for r in store.records(rid) if r["evaluation"] != "robustness"]
        assert len(own) == 7
    assert not list((out / "checkpoints").glob(".partial-*"))


def test_force_with_a_config_failing_its_check_keeps_old_results(fake_config: Path,
                                                                 tmp_path: Path) -> None:
    from fuselab.study import ConfigError

    out = tmp_path / "study"
    _run(fake_config, out)
    other = write_fake(tmp_path / "other.toml", sleep=0.001)  # robustness without snr_curve
    with pytest.raises(ConfigError, match=r"^evaluate.robustness: needs evaluate.snr_curve"):
        run_study(other, out, run_fn=ok_run, workers=0, progress=False, force=True)
    runs = open_store(out, readonly=True).runs()
    assert len(runs) == 4 and {r["status"] for r in runs} == {"done"}
    assert len(list((out / "checkpoints").glob("*.pt"))) == 4


def test_scaled_robustness_min_max_within_seed_and_axis_context() -> None:
    from fuselab.study.crossrun import scaled_records

    runs = [{"run_id": f"r{i}", "variant": v, "seed": s, "status": "done"}
            for i, (v, s) in enumerate([("late · d=8", 0), ("early · d=8", 0), ("pro · d=8", 0),
                                        ("late · d=32", 0), ("early · d=32", 0), ("late · d=8", 1)])]
    values = [0.0, 0.3, -0.1, 0.0, 0.0, 0.0]
    rows = [{"evaluation": "robustness", "metric": "robust_auc", "value": v, "modality": "all",
             "baseline": "late", "run_id": f"r{i}"} for i, v in enumerate(values)]
    out, warnings = scaled_records(rows, runs, lambda v: v.split(" · ")[0])
    got = {r["run_id"]: r["value"] for r in out}
    # seed 0, d=8: (v - (-0.1)) / (0.3 - (-0.1))
    assert got == pytest.approx({"r0": 0.25, "r1": 1.0, "r2": 0.0})
    assert {r["metric"] for r in out} == {"robust_auc_scaled"}
    assert all(r["baseline"] == "late" and r["modality"] == "all" for r in out)
    # d=32 has equal values, seed 1 a single variant: both undefined, both reported
    assert len(warnings) == 2 and any("same value" in w for w in warnings)
    assert any("one variant only" in w for w in warnings)


def test_a_start_event_after_its_outcome_leaves_the_run_done(
        fake_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A backend with no order between events and outcomes (Ray's driver-side queue) may
    # deliver a run's start late; the run must stay done, not go back to running.
    from fuselab.study import runner
    from fuselab.study.worker import run_task

    def late_starts(name, tasks, run_fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        for t in tasks:
            yield run_task(t, ok_run, lambda ev: None)
            yield {"kind": "start", "run_id": t.run_id, "pid": 1, "host": "late"}

    monkeypatch.setattr(runner, "_backend", late_starts)
    s = _run(fake_config, tmp_path / "study")
    assert s.done == 4
    assert {r["status"] for r in open_store(tmp_path / "study").runs()} == {"done"}
