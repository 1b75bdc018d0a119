"""The built wheel works on its own: sdist + wheel build, twine check, a non-editable install in
a fresh virtual environment outside the repository, `fuselab study quickstart` at a tiny budget
and `fuselab show` on its results.

Marked ``wheel`` (about a minute on 2 cores): ``pytest -m "not wheel"`` leaves it out locally;
CI runs it. No network: the build runs without isolation (setuptools from this environment) and
the fresh environment sees this one's packages (torch, numpy, ...) through a ``.pth`` file that
lists only their folders, so this environment's own (editable) fuselab stays out of it.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import fuselab

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
#: The quickstart at a tiny budget: one seed, one epoch, one inner width, small splits.
TINY = ["study.seeds=[0]", "train.epochs=1", "data.options.sizes={train=256,val=64,test=64}",
        "grid.axes.d.values=[[64,8]]", "grid.axes.d.labels=[8]"]


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "FUSELAB_DATA")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _build(tmp: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """sdist and wheel (the wheel built from the sdist) of a copy of the checkout's sources."""
    try:
        import build  # noqa: F401
        import twine  # noqa: F401
    except ImportError as e:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(f"the test extra is not installed ({e}): pip install -e '.[test]'")
    src = tmp / "checkout"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        src.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.so")
    shutil.copytree(ROOT / "src", src / "src", symlinks=True, ignore=junk)
    shutil.copytree(ROOT / "examples", src / "examples", ignore=junk)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, src], tmp, env)
    (sdist,), (wheel,) = dist.glob("*.tar.gz"), dist.glob("*.whl")
    _run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel], tmp, env)
    return sdist, wheel


def _venv(tmp: Path, wheel: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A fresh environment with the wheel installed (not editable): its bin and site-packages."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        tmp, env).stdout.strip())
    # this environment's packages, as plain path entries: their .pth files (this environment's
    # editable fuselab among them) are not read, and the venv's own site-packages come first
    ours = {*site.getsitepackages(), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (purelib / "_fuselab_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel], tmp, env)
    return venv / "bin", purelib


def test_wheel_installs_and_runs_the_quickstart(tmp_path: Path) -> None:
    env = _clean_env()
    sdist, wheel = _build(tmp_path, env)
    assert wheel.name == f"fuselab-{fuselab.__version__}-py3-none-any.whl"
    assert sdist.name == f"fuselab-{fuselab.__version__}.tar.gz"
    bin_dir, purelib = _venv(tmp_path, wheel, env)
    work = tmp_path / "work"  # outside the repository: nothing can be read from its tree
    work.mkdir()
    assert not work.resolve().is_relative_to(ROOT)

    probe = ("import fuselab, importlib.metadata as m; "
             "print(fuselab.__file__); print(m.version('fuselab'))")
    where, version = _run([bin_dir / "python", "-c", probe], work, env).stdout.split()
    assert Path(where).resolve().is_relative_to(purelib.resolve()), where  # the wheel's copy
    assert version == fuselab.__version__

    listed = _run([bin_dir / "fuselab", "examples", "--format", "json"], work, env).stdout
    quick = {r["name"]: r for r in json.loads(listed)}["quickstart"]
    assert Path(quick["path"]).resolve().is_relative_to(purelib.resolve())

    sets = [arg for s in TINY for arg in ("--set", s)]
    out = _run([bin_dir / "fuselab", "study", "quickstart", *sets, "--workers", "1", "--quiet"],
               work, env).stdout
    study_dir = work / "runs" / "quickstart"
    assert f"study {Path('runs') / 'quickstart'}: 3 done, 0 failed of 3 runs" in out
    assert (study_dir / "report.html").is_file()

    shown = json.loads(_run([bin_dir / "fuselab", "show", "runs/quickstart", "--format", "json"],
                            work, env).stdout)
    assert shown["study"] == "quickstart"
    assert shown["environment"]["fuselab"] == fuselab.__version__
    runs = shown["runs"]
    assert sorted(r["variant"] for r in runs) == ["early · d=8", "late · d=8",
                                                   "pro-fusion · d=8"]
    for r in runs:
        assert r["status"] == "done" and r["seed"] == 0 and r["config"]["train"]["epochs"] == 1
        assert 0.0 <= r["metrics"]["test_accuracy"] <= 1.0
    table = _run([bin_dir / "fuselab", "show", "runs/quickstart"], work, env).stdout
    assert "3 done, 0 failed" in table and "pro-fusion · d=8" in table
