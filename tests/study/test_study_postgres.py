"""The results store on a real PostgreSQL server (a throwaway cluster started by the test).

A study shared by many machines keeps its results in a database server: ``--db-url
postgresql+psycopg://...``. The test starts PostgreSQL from the machine's Debian packages on a
private port of 127.0.0.1, runs two writers against it and reads everything back.
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
