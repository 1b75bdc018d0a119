"""Options for studies spread over machines: ``[execution.ray]``, ``execution.lease_s``, the run's
host/node in the store (an older store gains the columns without losing data), and leases on a
SQLite store (take / expire / take over / finish only by the holder)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from fuselab.study import ConfigError, RunSpec, open_store, parse_config
from fuselab.study.lease import release, renew, take_run

_BASE = {"study": {"name": "s"}, "data": {"name": "none"}, "model": {"name": "m"},
         "grid": {"fusion": [{"label": "a"}]}}


def _cfg(execution: dict) -> object:
    return parse_config({**_BASE, "execution": execution})


def test_ray_resources_defaults_and_values() -> None:
    x = _cfg({"threads_per_run": 2}).execution
    assert (x.ray.cpus(x.threads_per_run), x.ray.gpus(x.device)) == (2.0, 0.0)
    assert _cfg({"device": "cuda"}).execution.ray.gpus("cuda") == 1.0
    x = _cfg({"ray": {"num_cpus_per_run": 0.5, "num_gpus_per_run": 0.25}}).execution
    assert (x.ray.cpus(1), x.ray.gpus("cuda")) == (0.5, 0.25)
    assert _cfg({"ray": {"num_gpus_per_run": 2}}).execution.ray.gpus("cpu") == 2.0
    assert _cfg({}).execution.lease_s == 60.0


@pytest.mark.parametrize(("execution", "path", "says"), [
    ({"ray": {"num_gpus_per_run": 1.5}}, "execution.ray.num_gpus_per_run", "whole number, got 1.5"),
    ({"ray": {"num_gpus_per_run": -1}}, "execution.ray.num_gpus_per_run", ">= 0.0, got -1"),
    ({"ray": {"num_cpus_per_run": 0}}, "execution.ray.num_cpus_per_run", "> 0"),
    ({"ray": {"num_cpus_per_run": "2"}}, "execution.ray.num_cpus_per_run", "a number, got str"),
    ({"ray": {"gpus": 1}}, "execution.ray.gpus", "num_gpus_per_run"),
    ({"ray": 1}, "execution.ray", "table"),
    ({"lease_s": 0.5}, "execution.lease_s", ">= 1.0, got 0.5"),
    ({"lease_s": 1e9}, "execution.lease_s", "at most 86400"),
])
def test_bad_cluster_options_name_their_path(execution: dict, path: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        _cfg(execution)
    assert e.value.path == path and says in str(e.value)


_OLD_RUNS = ("CREATE TABLE runs (run_id TEXT PRIMARY KEY, position INTEGER NOT NULL, status TEXT"
             " NOT NULL, variant TEXT NOT NULL, factors TEXT NOT NULL, seed INTEGER NOT NULL,"
             " config TEXT NOT NULL, metrics TEXT NOT NULL, error TEXT, duration_s DOUBLE"
             " PRECISION, checkpoint_path TEXT, attempts INTEGER NOT NULL, updated_at TEXT NOT"
             " NULL)")


def _old_store(db: Path) -> None:
    """A store as fuselab wrote it before runs had host/node/worker/lease_until columns."""
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE study (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute(_OLD_RUNS)
    con.execute("CREATE TABLE records (run_id TEXT NOT NULL, source TEXT NOT NULL, seq INTEGER"
                " NOT NULL, evaluation TEXT NOT NULL, metric TEXT NOT NULL, value DOUBLE"
                " PRECISION, cond TEXT NOT NULL, PRIMARY KEY (run_id, source, seq))")
    con.execute("INSERT INTO study VALUES ('name', 'old'), ('config_hash', 'h')")
    con.execute("INSERT INTO runs VALUES ('r1', 0, 'done', 'late', '{}', 0, '{}',"
                " '{\"test_accuracy\": 0.75}', NULL, 2.5, NULL, 1, 't')")
    con.execute("INSERT INTO records VALUES ('r1', 'run', 0, 'test', 'accuracy', 0.75, '{}')")
    con.commit()
    con.close()


def test_old_store_is_read_as_is_and_migrated_on_write(tmp_path: Path) -> None:
    _old_store(tmp_path / "results.sqlite")
    ro = open_store(tmp_path, readonly=True)  # read-only: nothing changed, new fields None
    (run,) = ro.runs()
    assert (run["host"], run["node"], run["metrics"]) == (None, None, {"test_accuracy": 0.75})
    ro.close()
    cols = {r[1] for r in sqlite3.connect(tmp_path / "results.sqlite").execute(
        "PRAGMA table_info(runs)")}
    assert "host" not in cols
    rw = open_store(tmp_path)
    rw.add_runs([RunSpec("r2", "early", {}, 0, {}, "grid.fusion[1]")])
    rw.finish_run("r2", status="done", metrics={}, records=[], host="box", node="n1")
    runs = {r["run_id"]: r for r in rw.runs()}
    assert runs["r1"]["metrics"] == {"test_accuracy": 0.75} and runs["r1"]["host"] is None
    assert (runs["r2"]["host"], runs["r2"]["node"]) == ("box", "n1")
    assert rw.records()[0]["value"] == 0.75 and rw.study()["name"] == "old"


def _two_runs(tmp_path: Path):
    store = open_store(tmp_path, create=True)
    store.init_study("s", {}, "h")
    store.add_runs([RunSpec(r, "v", {}, 0, {}, "grid.fusion[0]") for r in ("a", "b")])
    return store


def test_leases_on_sqlite(tmp_path: Path) -> None:
    one, two = _two_runs(tmp_path), open_store(tmp_path)
    assert take_run(one, "w1", lease_s=60) == "a"
    assert take_run(two, "w2", lease_s=1) == "b"
    assert take_run(one, "w1", lease_s=60) is None  # both held
    time.sleep(1.2)  # w2 stopped renewing: its lease on b expired
    assert take_run(one, "w3", lease_s=60) == "b"
    # w2 comes back late: its result is refused, w3's is recorded
    assert not two.finish_run("b", status="done", metrics={"by": 2}, records=[], worker="w2")
    assert one.finish_run("b", status="done", metrics={"by": 3}, records=[], worker="w3")
    renew(one, "w1", lease_s=60)
    release(one, "w1")  # a clean stop hands "a" back
    runs = {r["run_id"]: r for r in one.runs()}
    assert (runs["a"]["status"], runs["b"]["status"], runs["b"]["metrics"]) == \
        ("pending", "done", {"by": 3})
    assert (runs["a"]["attempts"], runs["b"]["attempts"]) == (1, 2)


SHARED = """
import sys
sys.path.insert(0, {here!r})
from fake_runs import traced_run
from fuselab.study import run_study
if __name__ == "__main__":
    s = run_study({cfg!r}, {out!r}, run_fn=traced_run, check=False, workers=0, progress=False,
                  shared=True)
    print(s.executed)
"""


def test_two_shared_processes_on_one_sqlite_store(tmp_path: Path) -> None:
    """Two `--shared` processes on one study folder (SQLite): every run done exactly once."""
    import os
    import subprocess
    import sys
    from collections import Counter

    from fake_runs import HERE, write_fake

    cfg = write_fake(tmp_path / "fake.toml", sleep=0.4)
    cfg.write_text(cfg.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    markers = tmp_path / "markers.txt"
    script = tmp_path / "worker.py"
    script.write_text(SHARED.format(here=str(HERE), cfg=str(cfg), out=str(tmp_path / "s")))
    env = {**os.environ, "FAKE_MARKERS": str(markers)}
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    executed = [int(out.strip().splitlines()[-1]) for out, _ in outs]
    runs = open_store(tmp_path / "s", readonly=True).runs()
    assert sum(executed) == len(runs) == 6 and all(r["status"] == "done" for r in runs)
    ends = Counter(ln.split()[1] for ln in markers.read_text().splitlines()
                   if ln.startswith("end "))
    assert ends == Counter(r["run_id"] for r in runs)
    assert all(r["attempts"] == 1 and r["host"] for r in runs)
