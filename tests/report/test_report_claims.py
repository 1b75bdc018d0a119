"""The report's Claims and Environment sections on the fake study."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from report_fakes import make_study

from fuselab.report import render
from fuselab.report.claims import study_verdicts

CLAIMS = [
    {"name": "early beats late", "source": "paper 000 Tab. 2", "paper": 0.05,
     "left": "early · concat", "right": "late · concat", "evaluation": "test",
     "metric": "accuracy", "rule": "mean_gt"},
    {"name": "late beats early", "source": "nowhere", "left": "late · concat",
     "right": "early · concat", "evaluation": "test", "metric": "accuracy", "rule": "mean_ge"},
    {"name": "early >= late on the SNR grid", "source": "paper 000 Fig. 1",
     "left": "early · concat", "right": "late · concat", "evaluation": "snr_grid",
     "metric": "accuracy", "rule": "cells_ge", "fraction": 0.8},
    {"name": "probes improve with steps", "source": "paper 001 Fig. 13", "left": "early · gated",
     "evaluation": "inspect_probe", "metric": "probe_accuracy", "rule": "trend", "x": "step",
     "sign": "+", "where": {"modality": "audio"}},
    {"name": "needs three seeds", "source": "x", "left": "early · gated", "right": 0.5,
     "evaluation": "test", "metric": "accuracy", "rule": "mean_gt", "min_seeds": 3},
]
ENV = {"host": "box", "platform": "Linux", "cpu": "Xeon", "cpu_count": 2, "cpus_available": 2,
       "torch": "2.5.1", "torch_build": "cpu", "device": "cpu", "fuselab": "0.1.0",
       "python": "3.11.7", "command": "fuselab study x.toml", "started_at": "2026-01-01T00:00:00",
       "finished_at": "2026-01-01T00:41:03", "wall_s": 2463.0, "total_wall_s": 2463.0,
       "invocations": 1}


def _study():
    study, runs, records = make_study()
    study = {**study, "config": {**study["config"], "claims": copy.deepcopy(CLAIMS)},
             "environment": ENV}
    return study, runs, records


def test_verdicts_of_the_fake_study() -> None:
    got = [(v.verdict, v.claim.name) for v in study_verdicts(*_study())]
    assert [g[0] for g in got] == ["holds", "does not hold", "holds", "holds", "inconclusive"]


@pytest.fixture(scope="module")
def claims_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return render(*_study(), tmp_path_factory.mktemp("claims-report"), strict=True)


def test_claims_section_has_a_row_and_a_figure_per_claim(claims_report: dict[str, Path]) -> None:
    md = claims_report["md"].read_text()
    assert "[Claims](#claims)" in md.splitlines()[4]  # second entry of the contents line
    section = md.split("## Claims", 1)[1].split("\n## ", 1)[0]
    assert "(3 hold, 1 does not hold, 1 inconclusive)" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(CLAIMS)
    assert rows[1].startswith("| 1 | early beats late | paper 000 Tab. 2 | 0.05 |")
    assert "| holds |" in rows[1] and "test / accuracy (Leaderboard)" in rows[1]
    assert "snr_grid / accuracy (Accuracy over the SNR grid)" in rows[3]
    # one figure per claim that compared something (the inconclusive one compared nothing)
    figs = [line for line in section.splitlines() if line.startswith("![Claim")]
    assert [f.split("(")[-1].rstrip(")") for f in figs] == \
        [f"figures/0{i}_claim_{i}.png" for i in range(1, 5)]
    for i in range(1, 5):
        assert (claims_report["figures"] / f"0{i}_claim_{i}.png").stat().st_size > 5_000
    html = claims_report["html"].read_text()
    assert html.count('class="verdict-holds"') == 3
    assert html.count('class="verdict-does-not-hold"') == 1
    assert 'class="verdict-inconclusive"' in html


def test_environment_section(claims_report: dict[str, Path]) -> None:
    md = claims_report["md"].read_text()
    env = md.split("## Environment", 1)[1]
    assert "| command | fuselab study x.toml |" in env
    assert "41 min 3 s (last invocation)" in env and "torch 2.5.1 (cpu)" in env


def test_a_stored_claim_the_schema_rejects_is_a_warning(tmp_path: Path) -> None:
    study, runs, records = _study()
    study["config"]["claims"][0]["rule"] = "mean_greater"
    tests_only = [r for r in records if r["evaluation"] == "test"]  # a quick render
    md = render(study, runs, tests_only, tmp_path)["md"].read_text()
    assert "## Claims" not in md and "claims_section: ConfigError: claims[0].rule" in md
    assert "## Leaderboard" in md
