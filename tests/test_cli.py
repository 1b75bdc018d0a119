"""The `fuselab` command: ops, study, show, report and their error messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fuselab.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent / "study"))


def test_ops_still_lists_operators(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops", "--dims", "a=4,b=6", "--out-dim", "8"]) == 0
    out = capsys.readouterr().out
    assert "concat" in out and "operators; parameters at in_dims=(a=4, b=6)" in out


def test_missing_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "s")]) == 2
    assert "study config not found" in capsys.readouterr().err


def test_config_error_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\n[data]\nname = "lattice"\n[model]\nname = "staged"\n'
                   '[[grid.fusion]]\nop = "concat"\n[[grid.fusion]]\ndepht = "late"\n')
    assert main(["study", str(bad), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "grid.fusion[1].depht: unknown key" in err and "did you mean 'depth'" in err


def test_show_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fake_runs import ok_run, write_fake

    from fuselab.study import run_study

    cfg = write_fake(tmp_path / "fake.toml",
                     extra='\n[[grid.fusion]]\nlabel = "bad"\ntrain = { nan = true }\n')
    run_study(cfg, tmp_path / "s", run_fn=ok_run, check=False, workers=0, progress=False)
    assert main(["show", str(tmp_path / "s"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)  # strict JSON: NaN metrics became null
    assert data["study"] == "fake" and len(data["runs"]) == 6
    run = data["runs"][0]
    assert set(run) >= {"run_id", "status", "config", "metrics"}
    assert run["metrics"]["nan_metric"] is None
    assert main(["show", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "4 done, 2 failed" in out and "loss became nan" in out
    assert main(["show", str(tmp_path / "none")]) == 2
    assert "no results database" in capsys.readouterr().err
