"""Every tutorial script runs at its ``tiny`` budget, as the tutorial pages tell a reader to run it.

The pages include their code from these scripts (pymdownx.snippets), so a tutorial whose code
stopped working fails here. Each script runs in its own process: the tutorials register an
encoder and a fusion operator, which must not leak into the registries of the test session.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = REPO / "docs" / "tutorials"
SCRIPTS = TUTORIALS / "scripts"
TESTED = {"quickstart.py", "reading_report.py", "own_data.py", "custom_operator.py", "cluster.py"}

pytestmark = pytest.mark.slow


def run(*args: str | Path, timeout: int = 600) -> str:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{out}"
    return done.stdout


def test_every_script_is_run_by_a_test() -> None:
    assert {p.name for p in SCRIPTS.glob("*.py")} == TESTED


def test_quickstart_then_claims_on_the_same_study(tmp_path: Path) -> None:
    out = tmp_path / "quickstart"
    first = run(SCRIPTS / "quickstart.py", "--budget", "tiny", "--out", out, "--workers", "0")
    assert "9 of 9 runs done, 0 failed" in first
    assert "pro-fusion · d=128" in first and (out / "report.html").is_file()
    second = run(SCRIPTS / "reading_report.py", "--budget", "tiny", "--out", out)
    assert "0 runs executed" in second  # claims are judged from the stored records
    claims = (SCRIPTS / "quickstart_claims.toml").read_text().count("[[claims]]")
    verdicts = re.findall(r"^\[(holds|does not hold|inconclusive)\] ", second, flags=re.M)
    assert len(verdicts) == claims == 4
    assert "Claims" in second.splitlines()[-1]  # the report has a claims section


def test_own_data_with_a_registered_encoder_in_worker_processes(tmp_path: Path) -> None:
    # --workers 1: the run happens in a spawned process, which must see the registration
    out = run(SCRIPTS / "own_data.py", "--budget", "tiny", "--out", tmp_path, "--workers", "1")
    assert "3 runs done, 0 failed" in out
    assert {"concat", "lowrank", "gated"} <= set(re.findall(r"^\d+\s+(\w+)\s", out, flags=re.M))


def test_custom_operator_tests_pass_and_study_runs(tmp_path: Path) -> None:
    tests = run("-m", "pytest", SCRIPTS / "custom_operator.py", "-q", "-p", "no:cacheprovider")
    assert re.search(r"\b6 passed\b", tests), tests
    out = run(SCRIPTS / "custom_operator.py", "--budget", "tiny", "--out", tmp_path,
              "--workers", "0")
    assert "4 runs done, 0 failed" in out
    assert re.search(r"^\d+\s+max\s", out, flags=re.M)


def test_cluster_script_on_local_ray_with_a_database_url(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    pytest.importorskip("sqlalchemy")
    out = run(SCRIPTS / "cluster.py", "--budget", "tiny", "--out", tmp_path / "study")
    assert "3 runs done, 0 failed on Ray" in out
    assert "3 runs in sqlite:///" in out
    assert (tmp_path / "study" / "store.json").is_file()
    assert not (tmp_path / "study" / "results.sqlite").exists()


def test_tutorial_figures_are_small_and_used() -> None:
    files = sorted((TUTORIALS / "figures").iterdir())
    pages = "".join(p.read_text() for p in TUTORIALS.glob("*.md"))
    assert any(f.suffix == ".png" for f in files)
    for f in files:
        assert f.stat().st_size < 100_000, f"{f.name}: {f.stat().st_size:,} bytes"
        assert f"figures/{f.name}" in pages, f"{f.name} is not used by any tutorial page"
    assert sum(f.stat().st_size for f in files) < 1_000_000
