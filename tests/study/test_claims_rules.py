"""Claim rules on hand-made runs and records with known answers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fuselab.study.claims import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    count_verdicts,
    evaluate_claims,
    parse_claims,
)
from fuselab.study.claims.stats import T95, fit_line, t_crit, t_test


class Study:
    """Runs and records built value by value: ``add(variant, seed, value, **conditions)``."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []

    def run(self, variant: str, seed: int, status: str = "done", **factors: Any) -> str:
        rid = f"{variant}-{seed}"
        if not any(r["run_id"] == rid for r in self.runs):
            self.runs.append({"run_id": rid, "variant": variant, "seed": seed, "status": status,
                              "factors": factors})
        return rid

    def add(self, variant: str, seed: int, value: float, evaluation: str = "test",
            metric: str = "accuracy", **cond: Any) -> None:
        rid = self.run(variant, seed)
        self.records.append({"run_id": rid, "evaluation": evaluation, "metric": metric,
                             "value": value, **cond})

    def judge(self, **claim: Any) -> Any:
        base = {"name": "c", "source": "s", "left": "a", "evaluation": "test",
                "metric": "accuracy"}
        (v,) = evaluate_claims(parse_claims([{**base, **claim}]), self.runs, self.records)
        return v


def two_sides(left: list[float], right: list[float]) -> Study:
    s = Study()
    for seed, x in enumerate(left):
        s.add("a", seed, x)
    for seed, x in enumerate(right):
        s.add("b", seed, x)
    return s


def test_mean_rules_compare_seed_means_with_tolerance() -> None:
    s = two_sides([0.80, 0.82, 0.84], [0.83, 0.83, 0.83])  # means 0.82 vs 0.83
    assert s.judge(rule="mean_ge", right="b").verdict == DOES_NOT_HOLD
    assert s.judge(rule="mean_ge", right="b", tol=0.02).verdict == HOLDS
    assert s.judge(rule="mean_gt", right="b", tol=0.0).verdict == DOES_NOT_HOLD
    assert s.judge(rule="mean_gt", right=0.8).verdict == HOLDS  # a constant (chance level)
    assert s.judge(rule="mean_gt", right=0.82).verdict == DOES_NOT_HOLD  # equal is not greater
    v = s.judge(rule="mean_ge", right="b")
    assert v.left.mean == pytest.approx(0.82) and v.left.std == pytest.approx(0.02)
    assert v.details["difference"] == pytest.approx(-0.01)
    assert "0.820 ± 0.020" in v.value


def test_significance_paired_welch_and_constant() -> None:
    # paired by seed: the difference is always +0.01, so it is significant despite the spread
    s = two_sides([0.80, 0.90, 0.70], [0.79, 0.89, 0.69])
    v = s.judge(rule="mean_gt", right="b", significant=True)
    assert v.verdict == HOLDS and v.details["test"]["kind"] == "paired"
    # the same numbers without the seed pairing: inside the spread -> inconclusive
    s = two_sides([0.80, 0.90, 0.70], [])
    for seed, x in zip((5, 6, 7), [0.79, 0.89, 0.69], strict=True):
        s.add("b", seed, x)
    v = s.judge(rule="mean_gt", right="b", significant=True)
    assert v.verdict == INCONCLUSIVE and v.details["test"]["kind"] == "Welch"
    assert "inside the seed spread" in v.reason
    # significant the wrong way -> does not hold; against a constant: one-sample test
    s = two_sides([0.50, 0.51, 0.52], [0.80, 0.81, 0.82])
    assert s.judge(rule="mean_ge", right="b", significant=True).verdict == DOES_NOT_HOLD
    v = s.judge(rule="mean_gt", right=0.4, significant=True)
    assert v.verdict == HOLDS and v.details["test"]["kind"] == "one-sample"
    # one seed per side: no spread to test against
    s = two_sides([0.9], [0.1])
    v = s.judge(rule="mean_gt", right="b", significant=True)
    assert v.verdict == INCONCLUSIVE and "needs >= 2 seeds" in v.reason
    assert s.judge(rule="mean_gt", right="b").verdict == HOLDS


def test_t_statistic_matches_the_textbook_formula() -> None:
    left, right = {0: 1.0, 1: 2.0, 2: 4.0}, {0: 0.5, 1: 1.0, 2: 2.5}
    d = [0.5, 1.0, 1.5]  # mean 1, sd 0.5 -> t = 1 / (0.5 / sqrt 3)
    t = t_test(left, right)
    assert t is not None and t.kind == "paired" and t.df == 2
    assert t.t == pytest.approx(sum(d) / 3 / (0.5 / math.sqrt(3)))
    w = t_test({0: 1.0, 1: 3.0}, {5: 0.0, 6: 0.0, 7: 3.0})
    # Welch: (2 - 1) / sqrt(2/2 + 3/3); df = (1 + 1)^2 / (1/1 + 1/2)
    assert w is not None and w.t == pytest.approx(1 / math.sqrt(2)) and w.df == pytest.approx(4 / 1.5)
    assert t_crit(2.9) == T95[2] and t_crit(45) == T95[40] and t_crit(1e6) == T95[120]


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 30, 120])
def test_t_table_is_the_95_percent_quantile(df: int) -> None:
    # P(T > t95) = 0.05, by a fine trapezoid integral of Student's t density
    def pdf(x: float) -> float:
        c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        return math.exp(c - (df + 1) / 2 * math.log1p(x * x / df))

    t, hi, n = T95[df], 4000.0, 200_000
    # substitute x = t + u^2 to resolve the slow tail (pdf ~ x^-(df+1))
    umax = math.sqrt(hi - t)
    h = umax / n
    area = sum(pdf(t + (i * h) ** 2) * 2 * i * h for i in range(1, n)) * h
    area += pdf(t + umax**2) * umax * h  # last half-step; the tail beyond 4000 is tiny for df > 1
    assert area == pytest.approx(0.05, abs=2e-4 if df > 1 else 1e-3)


def test_cells_ge_counts_the_fraction_of_cells() -> None:
    s = Study()
    for seed in (0, 1):
        for i, snr in enumerate((0.25, 0.5, 1.0, None)):
            s.add("a", seed, 0.5 + 0.1 * i, "snr_grid", snr_x=snr)
            # b is better only in the noisiest cell
            s.add("b", seed, (0.7 if snr == 0.25 else 0.4) + 0.1 * i, "snr_grid", snr_x=snr)
    kw = {"rule": "cells_ge", "right": "b", "evaluation": "snr_grid"}
    v = s.judge(**kw, fraction=0.8)
    assert v.verdict == DOES_NOT_HOLD and v.details["fraction"] == pytest.approx(0.75)
    assert "3 of 4 cells" in v.reason and "snr_x=0.25" in v.reason
    assert s.judge(**kw, fraction=0.75).verdict == HOLDS
    assert s.judge(**kw, tol=0.2).verdict == HOLDS  # 0.5 >= 0.7 - 0.2
    # where/exclude select cells ("clean" is the un-noised input, stored as None)
    assert s.judge(**kw, exclude={"snr_x": 0.25}).details["fraction"] == 1.0
    v = s.judge(**kw, where={"snr_x": [0.25, "clean"]})
    assert len(v.details["cells"]) == 2 and v.details["fraction"] == 0.5
    # a constant right side: left >= 0.65 on the cells at 1.0 and clean
    assert s.judge(rule="cells_ge", right=0.65, evaluation="snr_grid").details["fraction"] == 0.5


def test_trend_slope_sign_significance_and_levels() -> None:
    s = Study()
    for seed in (0, 1, 2):
        for step in range(4):
            s.add("a", seed, 0.5 + 0.05 * step + 0.001 * seed, "inspect_probe",
                  "probe_accuracy", step=step)
            s.add("flat", seed, 0.5 + (0.02 if (seed + step) % 2 else -0.02), "inspect_probe",
                  "probe_accuracy", step=step)
    kw = {"rule": "trend", "evaluation": "inspect_probe", "metric": "probe_accuracy", "x": "step"}
    v = s.judge(**kw, sign="+", significant=True)
    assert v.verdict == HOLDS and v.details["slope"] == pytest.approx(0.05)
    assert s.judge(**kw, sign="-").verdict == DOES_NOT_HOLD
    v = s.judge(**kw, left="flat", sign="+", significant=True)
    assert v.verdict == INCONCLUSIVE and "2 standard errors" in v.reason
    # SNR levels with the clean input: numbers ascending, clean last (the highest SNR)
    s = Study()
    for seed in (0, 1):
        for snr, acc in ((None, 0.9), (1.0, 0.8), (0.5, 0.7)):
            s.add("a", seed, acc, "snr_curve", modality="all", snr=snr)
    v = s.judge(rule="trend", evaluation="snr_curve", x="snr", sign="+")
    assert v.verdict == HOLDS and [lv["label"] for lv in v.details["levels"]] == \
        ["0.5", "1.0", "clean"]
    v = s.judge(rule="trend", evaluation="snr_curve", x="snr", sign="+",
                order=["clean", 1.0, 0.5])
    assert v.verdict == DOES_NOT_HOLD


def test_trend_across_a_grid_factor() -> None:
    s = Study()
    for d, acc in ((8, 0.5), (32, 0.7), (128, 0.8)):
        s.run(f"late · d={d}", 0, d=d)
        s.add(f"late · d={d}", 0, acc)
    left = ["late · d=128", "late · d=8", "late · d=32"]  # numeric factor: any order
    v = s.judge(rule="trend", left=left, x="factor:d", sign="+")
    assert v.verdict == HOLDS and [lv["x"] for lv in v.details["levels"]] == [8, 32, 128]
    # on x = d the line is a poor fit (|slope| = 1.73 SE); on the level index it is better
    v = s.judge(rule="trend", left=left, x="factor:d", sign="+", significant=True)
    assert v.verdict == INCONCLUSIVE and v.details["slope"] == pytest.approx(0.5 / 240)
    v = s.judge(rule="trend", left=left, x="factor:d", sign="+", significant=True,
                order=[8, 32, 128])
    assert v.verdict == HOLDS and v.details["slope"] == pytest.approx(0.15)
    assert fit_line([(0, 1), (1, 3), (2, 5)]).slope == pytest.approx(2.0)
    line = fit_line([(0, 0), (1, 1), (2, 0), (3, 1)])  # slope 0.2, residuals known
    assert line.slope == pytest.approx(0.2) and line.se == pytest.approx(math.sqrt(0.8 / 2 / 5))


def test_too_few_runs_and_missing_records_are_inconclusive() -> None:
    s = two_sides([0.9, 0.9, 0.9], [0.1])
    s.run("b", 1, status="failed")
    v = s.judge(rule="mean_gt", right="b", min_seeds=3)
    assert v.verdict == INCONCLUSIVE and "too few runs" in v.reason and "'b'" in v.reason
    assert s.judge(rule="mean_gt", right="b", min_seeds=1).verdict == HOLDS
    v = s.judge(rule="mean_gt", right="b", metric="macro_f1")
    assert v.verdict == INCONCLUSIVE and "0 finished run(s)" in v.reason
    # a diverged (NaN) record does not count as a value
    s.add("b", 2, math.nan)
    assert "1 finished run(s)" in s.judge(rule="mean_gt", right="b", min_seeds=2).reason


def test_equals_and_between() -> None:
    s = Study()
    for seed in (0, 1):
        s.add("a", seed, 1_000_000.0, "cost", "params")
        s.add("a", seed, 0.02 * (seed + 1), "emap", "emap_gap")
        s.add("b", seed, 0.01 * (seed + 1), "emap", "emap_gap")
    kw = {"evaluation": "cost", "metric": "params"}
    assert s.judge(rule="equals", value=1_000_000, **kw).verdict == HOLDS
    assert s.judge(rule="equals", value=1_000_100, **kw).verdict == DOES_NOT_HOLD
    assert s.judge(rule="equals", value=1_000_100, rel_tol=1e-3, **kw).verdict == HOLDS
    kw = {"evaluation": "emap", "metric": "emap_gap"}
    assert s.judge(rule="between", min=-0.01, max=0.01, **kw).verdict == DOES_NOT_HOLD  # 0.03
    v = s.judge(rule="between", min=-0.05, max=0.05, **kw)
    assert v.verdict == HOLDS and v.left.mean == pytest.approx(0.03)
    v = s.judge(rule="between", right="b", max=0.01, **kw)  # paired differences 0.01, 0.02
    assert v.verdict == DOES_NOT_HOLD and v.details["quantity"] == pytest.approx(0.015)
    assert s.judge(rule="between", right="b", min=0.01, **kw).verdict == HOLDS


def test_verdict_counts_and_json_form() -> None:
    s = two_sides([0.9, 0.8], [0.1, 0.2])
    claims = parse_claims([
        {"name": n, "source": "s", "left": "a", "right": r, "evaluation": "test",
         "metric": "accuracy", "rule": "mean_gt", "min_seeds": k}
        for n, r, k in (("x", "b", 1), ("y", "b", 1), ("z", 0.95, 1), ("w", "b", 5))])
    verdicts = evaluate_claims(claims, s.runs, s.records)
    assert count_verdicts(verdicts) == "2 hold, 1 does not hold, 1 inconclusive"
    assert count_verdicts(verdicts[:1]) == "1 holds"
    d = verdicts[0].to_dict()
    assert d["verdict"] == HOLDS and d["left_stat"]["n"] == 2
    assert d["details"]["left_seeds"] == {"0": 0.9, "1": 0.8}
