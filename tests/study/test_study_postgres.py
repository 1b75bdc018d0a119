"""The results store on a real PostgreSQL server (a throwaway cluster started by the test).

A study shared by many machines keeps its results in a database server: ``--db-url
postgresql+psycopg://...``. The test starts PostgreSQL from the machine's Debian packages on a
private port of 127.0.0.1, runs two writers against it and reads everything back, then runs
one study with three `fuselab study --shared` processes, one of them killed (docs/cluster.md).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuselab.study import RunSpec, open_store


def _initdb() -> Path | None:
    """``initdb`` on PATH or in Debian's versioned ``/usr/lib/postgresql/<major>/bin``."""
    found = shutil.which("initdb")
    if found:
        return Path(found)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return versions[-1] if versions else None


def _unavailable(reason: str) -> None:
    # CI installs the server (.ci/run): there a missing piece is a failure, not a skip.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must run this test (.ci/run installs Debian's postgresql)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    for module in ("psycopg", "sqlalchemy"):
        if importlib.util.find_spec(module) is None:
            _unavailable(f"{module} not installed (pip install -e '.[sql]')")
    found = _initdb()
    if found is None:
        _unavailable("PostgreSQL server binaries not installed (apt-get install postgresql)")
    assert found is not None
    initdb = str(found)
    pg_ctl = str(Path(os.path.realpath(initdb)).parent / "pg_ctl")
    # PostgreSQL refuses to run as root: run it as the 'postgres' user when we are root.
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and no 'postgres' user to run the server")
        prefix = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's tmp dir: that one is private to root, and the server runs as 'postgres'.
    root = Path(tempfile.mkdtemp(prefix="fuselab-pg-"))
    root.chmod(0o777)
    data = root / "data"
    port = _free_port()
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "fuselab", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    opts = f"-h 127.0.0.1 -p {port} -k {root}"
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w",
                    "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://fuselab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _spec(rid: str, seed: int) -> RunSpec:
    return RunSpec(rid, "late · concat", {"depth": "late", "operator": "concat"}, seed,
                   {"model": {"name": "m"}, "seed": seed}, "grid.fusion[0]")


def test_study_results_round_trip_through_postgres(postgres_url: str) -> None:
    writer = open_store(postgres_url)
    writer.init_study("shared", {"study": {"name": "shared"}}, "h1")
    writer.add_runs([_spec("a", 0), _spec("b", 1)])
    writer.finish_run("a", status="done", metrics={"test_accuracy": 0.875},
                      records=[{"evaluation": "snr_grid", "metric": "accuracy", "value": 0.5,
                                "snr_audio": 0.25, "snr_image": None}])
    # A second process (machine) finishing the same run again replaces, never duplicates.
    other = open_store(postgres_url)
    other.finish_run("a", status="done", metrics={"test_accuracy": 0.875},
                     records=[{"evaluation": "snr_grid", "metric": "accuracy", "value": 0.5,
                               "snr_audio": 0.25, "snr_image": None}])
    other.finish_run("b", status="failed", metrics={}, records=[], error="NaN loss at step 3")
    reader = open_store(postgres_url, readonly=True)
    assert reader.study()["name"] == "shared"
    runs = {r["run_id"]: r for r in reader.runs()}
    assert runs["a"]["status"] == "done" and runs["a"]["metrics"] == {"test_accuracy": 0.875}
    assert runs["b"]["status"] == "failed" and runs["b"]["error"] == "NaN loss at step 3"
    recs = reader.records()
    assert len(recs) == 1
    assert recs[0] | {} == {"run_id": "a", "evaluation": "snr_grid", "metric": "accuracy",
                            "value": 0.5, "snr_audio": 0.25, "snr_image": None}


WORKER = """
import sys
sys.path.insert(0, {here!r})
import fuselab.study as fs
from fake_runs import traced_run
real = fs.run_study
fs.run_study = lambda *a, **k: real(*a, run_fn=traced_run, check=False, **k)
from fuselab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _database(server_url: str, name: str) -> str:
    """A new empty database on the test server; its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name}")
        con.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


def _markers(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_three_shared_workers_one_killed_every_run_done_once(postgres_url: str,
                                                             tmp_path: Path) -> None:
    """Three `fuselab study --shared` processes (each its own study folder, as on three
    machines) work one 8-run study through one PostgreSQL database; one is killed with SIGKILL
    while it trains. Its run is taken over once its 2 s lease has expired; every run is done and
    recorded exactly once."""
    import signal
    import sys
    import time
    from collections import Counter

    from fake_runs import HERE, write_fake

    url = _database(postgres_url, "shared_study")
    cfg = write_fake(tmp_path / "fake.toml", sleep=1.2, extra="\n[execution]\nlease_s = 2\n")
    cfg.write_text(cfg.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3]"))
    markers = tmp_path / "markers.txt"
    env = {**os.environ, "FAKE_MARKERS": str(markers)}
    code = WORKER.format(here=str(HERE))
    procs = [subprocess.Popen(
        [sys.executable, "-c", code, "study", str(cfg), "--db-url", url, "--shared",
         "--out", str(tmp_path / f"machine{i}"), "--workers", "0", "--quiet", "--no-report"],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(3)]
    victim = procs[0]
    deadline = time.monotonic() + 90
    while not any(ln[0] == "start" and ln[2] == str(victim.pid) for ln in _markers(markers)):
        assert time.monotonic() < deadline and victim.poll() is None, victim.stdout
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    outs = [p.communicate(timeout=120)[0] for p in procs[1:]]
    assert [p.returncode for p in procs[1:]] == [0, 0], outs

    lines = _markers(markers)
    (lost,) = [ln[1] for ln in lines if ln[0] == "start" and ln[2] == str(victim.pid)]
    ends = Counter(ln[1] for ln in lines if ln[0] == "end")
    store = open_store(url, readonly=True)
    runs = {r["run_id"]: r for r in store.runs()}
    assert len(runs) == 8 and all(r["status"] == "done" for r in runs.values())
    assert ends == Counter(list(runs))  # every run finished exactly once
    # the killed process's run: started there, taken over (a second attempt) by a survivor
    starts = [ln[2] for ln in lines if ln[0] == "start" and ln[1] == lost]
    assert len(starts) == 2 and starts[0] == str(victim.pid) != starts[1]
    assert {r: runs[r]["attempts"] for r in runs} == {r: 1 + (r == lost) for r in runs}
    survivors = {str(p.pid) for p in procs[1:]}
    assert {ln[2] for ln in lines if ln[0] == "start"} - {str(victim.pid)} <= survivors
    # one set of records per run, nothing appended twice
    tests = Counter(rec["run_id"] for rec in store.records() if rec["evaluation"] == "test")
    assert tests == Counter(list(runs))
