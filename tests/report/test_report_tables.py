"""Aggregation and tables: mean ± std over seeds, one row per variant, baselines, bad input."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from report_fakes import FAILED_ERROR, make_study

from fuselab.report import format_results_table, results_table
from fuselab.report.aggregate import fmt_stat, order_levels, summarize
from fuselab.report.context import prepare
from fuselab.report.fig_noise import difference_grids, snr_grids
from fuselab.report.tables import (
    by_type_table,
    emap_table,
    failed_table,
    missing_modality_table,
    runs_table,
)


def _by_variant(runs, metric):
    out: dict[str, list[float]] = {}
    for r in runs:
        if r["status"] == "done":
            out.setdefault(r["variant"], []).append(r["metrics"][metric])
    return out


def test_leaderboard_mean_and_sample_std_per_variant():
    _, runs, _ = make_study()
    rows = results_table(runs)
    expected = _by_variant(runs, "test_accuracy")
    done_rows = [r for r in rows if r["done"]]
    assert len(done_rows) == len(expected) == 6
    for row in done_rows:
        vals = expected[row["variant"]]
        assert row["test_accuracy"] == pytest.approx(statistics.fmean(vals), abs=1e-12)
        # Sample std (n-1): for two seeds |a - b| / sqrt(2), not numpy's default population std.
        assert row["test_accuracy_std"] == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))
        assert row["test_accuracy_std"] == pytest.approx(float(np.std(vals, ddof=1)))
        assert sorted(row["seeds"]) == [0, 1]


def test_one_row_per_variant_sorted_best_first_with_failed_counted():
    _, runs, _ = make_study()
    rows = results_table(runs)
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    assert sorted(r["variant"] for r in rows) == sorted(variants)
    accs = [r["test_accuracy"] for r in rows if r["test_accuracy"] is not None]
    assert accs == sorted(accs, reverse=True)
    tensor = next(r for r in rows if r["variant"] == "late · tensor")
    assert (tensor["runs"], tensor["done"], tensor["failed"]) == (2, 0, 1)
    assert rows[-1] is tensor  # no result: sorted last


def test_error_metric_sorts_ascending():
    runs = [
        {"run_id": f"r{i}", "status": "done", "variant": v, "seed": 0,
         "metrics": {"test_mse": mse}}
        for i, (v, mse) in enumerate([("a", 0.5), ("b", 0.1), ("c", 0.3)])
    ]
    assert [r["variant"] for r in results_table(runs)] == ["b", "c", "a"]


def test_metrics_completed_from_test_and_cost_records_run_metrics_win():
    study, runs, records = make_study()
    run = next(r for r in runs if r["status"] == "done")
    rid = run["run_id"]
    run["metrics"] = {"params": 7.0}
    data = prepare(study, runs, records)
    m = data.metrics_by_run[rid]
    test_rec = next(r for r in records if r["run_id"] == rid and r["evaluation"] == "test")
    assert m["test_accuracy"] == test_rec["value"]
    assert m["params"] == 7.0  # the run's own metrics beat the cost record (10_000 * k)


def test_failed_runs_records_are_ignored_and_listed_with_message():
    study, runs, records = make_study()
    data = prepare(study, runs, records)
    assert all(r["run_id"] != "runfailed0001" for r in data.records)
    table = failed_table(data)
    assert table is not None and len(table.rows) == 1
    assert table.rows[0][3].text == FAILED_ERROR.strip()
    assert len(runs_table(data).rows) == len(runs)


def test_single_seed_has_no_std_and_formats_without_plus_minus():
    s = summarize([0.5])
    assert s is not None and s.std is None and s.n == 1
    assert fmt_stat(s, "test_accuracy") == "0.5"
    # The std's two significant digits fix the decimals of both numbers.
    assert fmt_stat(summarize([0.5, 0.7]), "test_accuracy") == "0.60 ± 0.14"
    assert fmt_stat(summarize([0.8, 0.83]), "test_accuracy") == "0.815 ± 0.021"
    assert fmt_stat(summarize([3e5, 5e5]), "params") == "400k ± 141k"
    assert summarize([float("nan"), 1.0]).n == 1  # non-finite values are not averaged in


def test_difference_grid_is_variant_minus_baseline_and_cells_are_seed_means():
    study, runs, records = make_study()
    data = prepare(study, runs, records)
    mods, levels, grids, metric = snr_grids(data)
    assert mods == ["audio", "image"] and metric == "accuracy"
    assert levels[0][-1] is None and levels[0][:-1] == sorted(levels[0][:-1])
    assert data.baseline == "late · concat"
    diffs = difference_grids(grids, data.baseline)
    assert set(diffs) == set(grids) - {data.baseline}
    for v, d in diffs.items():
        np.testing.assert_allclose(d, grids[v] - grids[data.baseline])
    # One cell recomputed from the raw records: mean over the two seeds.
    v = "early · gated"
    ids = {r["run_id"] for r in runs if r["variant"] == v and r["status"] == "done"}
    vals = [r["value"] for r in records if r["run_id"] in ids and r["evaluation"] == "snr_grid"
            and r["snr_audio"] == 0.5 and r["snr_image"] is None]
    i, j = levels[0].index(0.5), levels[1].index(None)
    assert grids[v][i, j] == pytest.approx(statistics.fmean(vals))
    with pytest.raises(ValueError, match="baseline variant 'nope'"):
        difference_grids(grids, "nope")


def test_baseline_configured_missing_and_late_fallback():
    study, runs, records = make_study()
    study["config"]["report"] = {"baseline": "stage-1 · gated"}
    assert prepare(study, runs, records).baseline == "stage-1 · gated"
    study["config"]["report"] = {"baseline": {"depth": "early", "operator": "concat"}}
    assert prepare(study, runs, records).baseline == "early · concat"
    study["config"]["report"] = {"baseline": "decision · mmtm"}
    with pytest.raises(ValueError, match=r"report\.baseline.*decision · mmtm"):
        prepare(study, runs, records)
    study["config"].pop("report")
    no_robust = [r for r in records if r["evaluation"] != "robustness"]
    data = prepare(study, runs, no_robust)
    assert data.baseline == "late · concat" and "late-fusion" in data.baseline_note


def test_unknown_requested_metric_names_config_key():
    study, runs, records = make_study()
    study["config"]["report"] = {"metric": "bleu"}
    with pytest.raises(ValueError, match=r"report\.metric: 'bleu'.*test_accuracy"):
        prepare(study, runs, records)


def test_missing_modality_and_emap_tables():
    study, runs, records = make_study()
    data = prepare(study, runs, records)
    mm = missing_modality_table(data)
    assert mm is not None and mm.columns[1] == "full input"
    assert mm.columns.count("full input") == 1  # the same for every removal mode
    assert "without audio (mean)" in mm.columns
    row = next(r for r in mm.rows if r[0].text == "late · gated")
    accs = _by_variant(runs, "test_accuracy")["late · gated"]
    col = mm.columns.index("without audio (zero)")
    assert row[col].key == pytest.approx(statistics.fmean(a * 0.6 for a in accs))
    # Without emap_gap records the gap is recomputed as full - EMAP, per run then averaged.
    no_gap = [r for r in records if r["metric"] != "emap_gap"]
    t1 = emap_table(prepare(study, runs, no_gap))
    t2 = emap_table(data)
    assert t1 is not None and t2 is not None
    for a, b in zip(t1.rows, t2.rows, strict=True):
        assert a[3].key == pytest.approx(b[3].key)
        assert a[3].key == pytest.approx(a[1].key - a[2].key)


def test_emap_table_shows_seed_mean_bootstrap_interval():
    study, runs, records = make_study()
    assert "gap bootstrap interval (seed mean)" not in emap_table(prepare(study, runs, records)).columns
    extra = []
    for r in records:
        if r["evaluation"] == "emap" and r["metric"] == "emap_gap":
            for name, shift in (("emap_gap_lo", -0.01), ("emap_gap_hi", 0.02)):
                extra.append({**r, "metric": name, "value": r["value"] + shift, "ci": 0.95})
    data = prepare(study, runs, records + extra)
    table = emap_table(data)
    assert table is not None and table.columns[-1] == "gap bootstrap interval (seed mean)"
    for row in table.rows:
        gap = row[3].key
        assert row[-1].key == pytest.approx(gap - 0.01)
        assert row[-1].text == f"[{gap - 0.01:.3f}, {gap + 0.02:.3f}]"
    # the bounds are not mistaken for a projection's accuracy
    plain = emap_table(prepare(study, runs, records))
    for a, b in zip(plain.rows, table.rows, strict=True):
        assert [c.key for c in a] == [c.key for c in b[:-1]]


def test_level_order_depth_words_then_numbers():
    assert order_levels(["late", "decision", "stage-2", "early", "stage-1"]) == [
        "early", "stage-1", "stage-2", "late", "decision"]
    assert order_levels([64, 8, 32]) == [8, 32, 64]
    assert order_levels(["late", 2, "decision", "early", "mid+late"]) == [
        "early", 2, "mid+late", "late", "decision"]
    assert order_levels(["mean", "max", "attention"]) == ["mean", "max", "attention"]


@pytest.mark.parametrize(
    ("mutate", "exc", "match"),
    [
        (lambda s, r, rec: (s, "runs", rec), TypeError, "runs: expected a list"),
        (lambda s, r, rec: (s, [*r, {"status": "done"}], rec), ValueError, "missing key 'run_id'"),
        (lambda s, r, rec: (s, [{**r[0], "status": "ok"}], rec), ValueError,
         r"status must be one of .* got 'ok'"),
        (lambda s, r, rec: (s, r, [{"run_id": "x", "metric": "a", "value": 1}]), ValueError,
         "records\\[0\\]: missing key 'evaluation'"),
        (lambda s, r, rec: ([], r, rec), TypeError, "study: expected a dict"),
    ],
)
def test_bad_input_is_named(mutate, exc, match):
    study, runs, records = make_study()
    with pytest.raises(exc, match=match):
        prepare(*mutate(study, runs, records))


def test_format_results_table_lists_every_variant():
    _, runs, _ = make_study()
    text = format_results_table(results_table(runs))
    lines = text.splitlines()
    assert len(lines) == 2 + 7
    assert "test_accuracy" in lines[0] and "±" in lines[2]
    assert "late · tensor" in lines[-1] and "1 failed" in lines[-1]
    with pytest.raises(TypeError, match="results_table: expected"):
        results_table(42)


def _quickstart_like():
    # Paper 001 Figure 4: early / late / pro-fusion across hidden widths d, baseline "late".
    runs = []
    fams = {"early": {"depth": "early"}, "late": {"depth": "late"},
            "pro-fusion": {"depth": "late", "progressive": "context_dim=16, steps=2"}}
    for fam, factors in fams.items():
        for d in (4, 8, 16):
            for seed in (0, 1):
                acc = {"early": 0.9, "late": 0.6, "pro-fusion": 0.85}[fam] + 0.005 * d + 0.01 * seed
                runs.append({"run_id": f"{fam}{d}{seed}", "status": "done",
                             "variant": f"{fam} · d={d}", "factors": {**factors, "d": d},
                             "seed": seed, "metrics": {"test_accuracy": acc}})
    study = {"name": "qs", "config": {"study": {"baseline": "late"}}}
    return study, runs


def test_fusion_part_baseline_pairs_variants_with_the_same_axis_value():
    study, runs = _quickstart_like()
    data = prepare(study, runs, [])
    assert data.baseline == "late"
    assert data.baseline_of["pro-fusion · d=8"] == "late · d=8"
    assert data.baseline_of["early · d=16"] == "late · d=16"
    assert data.baseline_of["late · d=4"] == "late · d=4"


def test_swept_axis_lines_are_named_by_fusion_family():
    from fuselab.report.fig_design import _series, x_factors

    study, runs = _quickstart_like()
    data = prepare(study, runs, [])
    assert x_factors(data) == ["depth", "d"]
    series = _series(data, "d")
    assert set(series) == {"early", "late", "pro-fusion"}
    assert series["pro-fusion"] == {4: "pro-fusion · d=4", 8: "pro-fusion · d=8",
                                    16: "pro-fusion · d=16"}


def test_question_type_table_full_vs_dropped_image():
    study, runs, _ = make_study()
    done = [r for r in runs if r["status"] == "done"]
    records = []
    for i, run in enumerate(done):
        for qtype, needs in (("colour", 1), ("corners", 0)):
            full = 0.9 - 0.01 * i
            dropped = full * (0.3 if needs else 0.95)
            for drop, value in (("none", full), ("image", dropped)):
                records.append({"run_id": run["run_id"], "evaluation": "test_by_type",
                                "metric": "exact_match", "value": value, "question_type": qtype,
                                "needs_image": needs, "dropped": drop})
    table = by_type_table(prepare(study, runs, records))
    assert table is not None
    assert table.columns == ["variant", "colour (needs image)", "colour (needs image) · without image",
                             "corners", "corners · without image"]
    assert len(table.rows) == len({r["variant"] for r in done})
    v = table.rows[0][0].text
    vals = [0.9 - 0.01 * i for i, r in enumerate(done) if r["variant"] == v]
    col = table.columns.index("colour (needs image) · without image")
    assert table.rows[0][col].key == pytest.approx(statistics.fmean(x * 0.3 for x in vals))
    assert by_type_table(prepare(study, runs, [])) is None
