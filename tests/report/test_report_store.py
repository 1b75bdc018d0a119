"""End to end through the real results store: a small study run by ``fuselab.study.run_study``
with an in-process stand-in run function (no training), then ``build_report(study_dir)``.

The grid has a swept axis (``d``), so each variant's baseline is the late-concat variant with the
same ``d``; one fusion entry always fails, and the runner adds the cross-run robustness records.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fuselab import study
from fuselab.report import build_report, results_table

CONFIG = """
[study]
name = "report-e2e"
seeds = [0, 1]
baseline = "late · concat"

[data]
name = "none"

[model]
name = "fake"

[train]
epochs = 3

[[grid.fusion]]
depth = ["early", "late"]
op = ["concat", "gated"]

[[grid.fusion]]
label = "broken"
depth = "late"
op = "tensor"

[grid]
train_snr = [{ audio = 0.5, image = 0.25 }]

[grid.axes.d]
path = ["model.hidden"]
values = [4, 16]

[evaluate]
robustness = true
"""
SNRS = (0.25, 1.0, None)
DEPTH_BONUS = {"early": 0.1, "late": 0.0}


def _acc(task) -> float:
    depth, op = task.variant.split(" · ")[:2]
    d = task.config["model"]["hidden"]
    return 0.6 + DEPTH_BONUS[depth] + (0.02 if op == "gated" else 0.0) + 0.01 * (d == 16) \
        + 0.005 * task.seed


def fake_run(task, ckpt, report):
    from fuselab.study import RunResult

    if task.variant.startswith("broken"):
        raise RuntimeError(f"tensor fusion needs 3.2 GiB, only 1.0 GiB free (run {task.run_id})")
    acc = _acc(task)
    recs = [{"evaluation": "test", "metric": "accuracy", "value": acc, "split": "test"}]
    for epoch in range(3):
        recs.append({"evaluation": "curve", "metric": "train_loss", "value": 1.0 / (epoch + 1),
                     "epoch": epoch})
    for sa in SNRS:
        for si in SNRS:
            q = (0.5 if sa is None else sa / 2) + (0.5 if si is None else si / 2)
            recs.append({"evaluation": "snr_grid", "metric": "accuracy", "value": acc * q,
                         "snr_audio": sa, "snr_image": si})
    for mod in ("audio", "image"):
        for i, s in enumerate(SNRS):
            recs.append({"evaluation": "snr_curve", "metric": "accuracy", "modality": mod,
                         "snr": s, "value": acc - 0.1 * (2 - i)})
    recs.append({"evaluation": "cost", "metric": "params", "value": 1000.0 * task.config["model"]["hidden"]})
    return RunResult({"test_accuracy": acc, "params": 1000 * task.config["model"]["hidden"]},
                     recs, None)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    cfg = root / "study.toml"
    cfg.write_text(CONFIG)
    out = root / "study"
    summary = study.run_study(cfg, out, run_fn=fake_run, workers=0, check=False, progress=False)
    assert (summary.done, summary.failed) == (16, 4)
    return out


def test_build_report_from_a_real_store(study_dir):
    paths = build_report(study_dir)
    assert paths["html"] == study_dir / "report.html" and paths["md"] == study_dir / "report.md"
    html = paths["html"].read_text()
    store = study.open_store(study_dir, readonly=True)
    try:
        runs, records = store.runs(), store.records()
    finally:
        store.close()
    assert len(runs) == 20
    # One leaderboard row per variant (8 working + 2 broken), one runs-table row per run.
    body = re.search(r'<table id="leaderboard".*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    assert body.count("<tr>") == len({r["variant"] for r in runs}) == 10
    body = re.search(r'<table id="runs".*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    assert body.count("<tr>") == 20
    assert "tensor fusion needs 3.2 GiB" in html
    # The runner's robustness records are there and drawn; the SNR differences are per d.
    assert any(r["evaluation"] == "robustness" for r in records)
    assert 'id="robustness"' in html and "ROBUSTAUC" in html
    names = [p.name for p in sorted(paths["figures"].glob("*.png"))]
    assert any("snr_grid_difference" in n for n in names)
    assert any("accuracy_vs_d" in n for n in names) and any("accuracy_vs_depth" in n for n in names)


def test_baselines_share_the_swept_axis(study_dir):
    from fuselab.report.context import prepare

    store = study.open_store(study_dir, readonly=True)
    try:
        data = prepare(store.study(), store.runs(), store.records())
    finally:
        store.close()
    assert data.baseline == "late · concat"
    for v, b in data.baseline_of.items():
        assert b.startswith("late · concat")
        assert data.factors[v].get("d") == data.factors[b].get("d"), (v, b)
    assert data.baseline_of["early · gated · d=16"] == "late · concat · d=16"


def test_results_table_from_the_study_dir_matches_the_stored_runs(study_dir):
    rows = results_table(study_dir)
    best = rows[0]
    assert best["variant"] == "early · gated · d=16"
    # Seeds 0 and 1 differ by 0.005 in the stand-in: mean +0.0025, sample std 0.005/sqrt(2).
    assert best["test_accuracy"] == pytest.approx(0.6 + 0.1 + 0.02 + 0.01 + 0.0025)
    assert best["test_accuracy_std"] == pytest.approx(0.005 / 2 ** 0.5)
    broken = [r for r in rows if r["variant"].startswith("broken")]
    assert len(broken) == 2 and all(r["failed"] == 2 and r["done"] == 0 for r in broken)
