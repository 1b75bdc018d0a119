"""`fuselab study --set/--overrides`, `fuselab show --claims` and `fuselab report --results-md`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import fuselab.study
from fuselab.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent / "study"))

from claims_fakes import claims_run, write_claims_study


@pytest.fixture
def fake_study_fn(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fuselab study` with the stand-in run function (no training, no up-front check)."""
    real = fuselab.study.run_study
    monkeypatch.setattr(fuselab.study, "run_study",
                        lambda *a, **k: real(*a, run_fn=claims_run, check=False, **k))


def test_study_with_overrides_then_show_and_results(
        tmp_path: Path, fake_study_fn: None, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_claims_study(tmp_path / "c.toml")
    smoke = tmp_path / "smoke.toml"
    smoke.write_text('"model.acc" = 0.2\n')
    out = tmp_path / "s"
    # --set wins over the smoke file: weak = 0.95 beats strong = 0.9
    assert main(["study", str(cfg), "--out", str(out), "--workers", "0", "--quiet",
                 "--overrides", str(smoke), "--set", "model.acc=0.95"]) == 0
    printed = capsys.readouterr().out
    assert "claims: 1 holds, 1 does not hold" in printed and "report: " in printed

    assert main(["show", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "command: fuselab study" in printed and "--set model.acc=0.95" in printed
    assert "overrides: model.acc = 0.95" in printed and "wall time:" in printed
    assert "claims: 1 holds, 1 does not hold (details: --claims)" in printed

    assert main(["show", str(out), "--claims", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["verdict"] for c in data["claims"]] == ["does not hold", "holds"]
    assert data["claims"][0]["paper"] == 0.3 and data["claims"][0]["left_stat"]["n"] == 3

    assert main(["show", str(out), "--claims", "--format", "markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| # | claim | source | paper | fuselab | verdict |"
    assert len(table) == 4 and "| weak beats strong | constructed (false) | weak >= strong |" \
        in table[3] and "holds: mean 0.96 >= 0.91" in table[3]

    assert main(["show", str(out), "--claims"]) == 0
    assert "1. [does not hold] strong beats weak" in capsys.readouterr().out
    assert main(["show", str(out), "--format", "markdown"]) == 2
    assert "add --claims" in capsys.readouterr().err

    results = tmp_path / "repro" / "RESULTS.md"
    assert main(["report", str(out), "--results-md", str(results)]) == 0
    assert "results: " in capsys.readouterr().out
    text = results.read_text()
    assert text.startswith("# Results: claims-fake") and "- Command: `fuselab study" in text
    assert "| 1 | strong beats weak | constructed (true) | 0.3 |" in text
    figs = sorted(p.name for p in results.parent.glob("*.png"))
    assert figs == ["claim1-strong-beats-weak.png", "claim2-weak-beats-strong.png"]
    assert "](claim1-strong-beats-weak.png)" in text
    assert main(["report", str(out), "--results-md", str(results)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["report", str(out), "--results-md", str(results), "--force",
                 "--figures-dir", str(tmp_path / "figs")]) == 0
    assert "](../figs/claim1-strong-beats-weak.png)" in results.read_text()
    only = tmp_path / "only" / "RESULTS.md"
    assert main(["report", str(out), "--results-md", str(only), "--claim-figures", "2"]) == 0
    assert sorted(p.name for p in only.parent.glob("*.png")) == ["claim2-weak-beats-strong.png"]
    assert "](claim2-weak-beats-strong.png)" in only.read_text()
    for bad in ("3", "0,1", "two"):
        assert main(["report", str(out), "--results-md", str(only), "--force",
                     "--claim-figures", bad]) == 2
        assert "expected claim numbers" in capsys.readouterr().err
    assert main(["report", str(out), "--claim-figures", "1"]) == 2
    assert "need --results-md" in capsys.readouterr().err


def test_bad_overrides_are_config_errors(tmp_path: Path, fake_study_fn: None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_claims_study(tmp_path / "c.toml")
    assert main(["study", str(cfg), "--out", str(tmp_path / "s"), "--set", "trian.epochs=1"]) == 2
    assert "trian.epochs: no top-level table 'trian'" in capsys.readouterr().err
    assert main(["study", str(cfg), "--out", str(tmp_path / "s"), "--overrides",
                 str(tmp_path / "nope.toml")]) == 2
    assert "overrides file not found" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_show_claims_without_claims(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fake_runs import ok_run, write_fake

    fuselab.study.run_study(write_fake(tmp_path / "f.toml"), tmp_path / "s", run_fn=ok_run,
                            check=False, workers=0, progress=False)
    assert main(["show", str(tmp_path / "s"), "--claims", "--format", "markdown"]) == 0
    assert "declares no claims" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "s"), "--claims", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["claims"] == []
