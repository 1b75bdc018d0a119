"""ROBUSTAUC and MultiBench robustness: hand-computed areas, sign flips, bad curves, records."""

from __future__ import annotations

import numpy as np
import pytest

import fuselab.evaluate as ev


def test_robust_auc_trapezoid_between_curves() -> None:
    # differences 0, .1, .2 over levels 0, .5, 1: area = .5 * (0 + .1) / 2 + .5 * (.1 + .2) / 2
    assert ev.robust_auc([1, 0.8, 0.6], [1, 0.7, 0.4]) == pytest.approx(0.1)
    assert ev.robust_auc([1, 0.8, 0.6], [1, 0.7, 0.4], [0, 2, 4]) == pytest.approx(0.4)
    assert ev.robust_auc([1, 0.7, 0.4], [1, 0.8, 0.6]) == pytest.approx(-0.1)


def test_robust_auc_sign_flipped_for_error_metrics() -> None:
    # lower MSE under noise than the baseline is *more* robust: positive area.
    assert ev.robust_auc([0.2, 0.3], [0.2, 0.5], higher_is_better=False) == pytest.approx(0.1)


def test_relative_robustness_matches_multibench_on_its_grid() -> None:
    rng = np.random.default_rng(0)
    perf = np.sort(rng.uniform(0.3, 0.9, 11))[::-1].tolist()
    # MultiBench: 11 noise levels 0, 0.1, ..., 1 and area += (p_i + p_{i+1}) * 0.1 / 2
    multibench = sum((perf[i] + perf[i + 1]) * 0.1 / 2 for i in range(10))
    assert ev.relative_robustness(perf) == pytest.approx(multibench)
    assert ev.relative_robustness(perf, higher_is_better=False) == pytest.approx(-multibench)


def test_effective_robustness_against_clean_aligned_baseline() -> None:
    # baseline shifted to the model's clean 0.9: [.9, .7, .5]; gains 0, .1, .2
    assert ev.effective_robustness([0.9, 0.8, 0.7], [0.8, 0.6, 0.4]) == pytest.approx(0.3)
    # same degradation as the baseline => 0 whatever the clean accuracies
    assert ev.effective_robustness([0.5, 0.4], [0.9, 0.8]) == pytest.approx(0.0)
    assert ev.effective_robustness([0.1, 0.2], [0.1, 0.4], higher_is_better=False) == (
        pytest.approx(0.2)
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ev.robust_auc([1, 0.5], [1, 0.5, 0.2]), "baseline"),
        (lambda: ev.robust_auc([1], [1]), "at least 2"),
        (lambda: ev.robust_auc([1, 0.5, 0.2], [1, 0.5, 0.2], [0, 1, 3]), "equally spaced"),
        (lambda: ev.relative_robustness([1, 0.5], [1, 0]), "increase"),
        (lambda: ev.relative_robustness([1, float("nan")]), "finite"),
    ],
)
def test_bad_curves(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def _curve_records(values: dict[str, list[float]], metric: str = "accuracy") -> list[dict]:
    snrs = [None, 2.0, 1.0, 0.5]
    return [
        {"evaluation": "snr_curve", "metric": metric, "value": v, "modality": m, "snr": s}
        for m, vals in values.items()
        for s, v in zip(snrs, vals, strict=True)
    ]


def test_robustness_records_from_curves() -> None:
    run = _curve_records({"audio": [0.9, 0.8, 0.7, 0.6], "all": [0.9, 0.7, 0.5, 0.3]})
    base = _curve_records({"audio": [0.8, 0.7, 0.5, 0.2], "all": [0.8, 0.6, 0.4, 0.2]})
    # shuffled order must not matter: curves are sorted clean -> noisy by SNR
    recs = ev.robustness_records(run[::-1], base, baseline="late · concat")
    assert all(set(r) == {"evaluation", "metric", "value", "modality", "baseline"} for r in recs)
    got = {(r["modality"], r["metric"]): r["value"] for r in recs}
    assert got[("audio", "robust_auc")] == pytest.approx(
        ev.robust_auc([0.9, 0.8, 0.7, 0.6], [0.8, 0.7, 0.5, 0.2])
    )
    assert got[("audio", "effective_robustness")] == pytest.approx(0.0 + 0.0 + 0.1 + 0.3)
    assert got[("all", "relative_robustness")] == pytest.approx(
        ev.relative_robustness([0.9, 0.7, 0.5, 0.3])
    )
    assert {r["baseline"] for r in recs} == {"late · concat"}


def test_robustness_records_mse_sign_and_mismatched_points() -> None:
    run = _curve_records({"audio": [0.1, 0.2, 0.3, 0.4]}, "mse")
    base = _curve_records({"audio": [0.1, 0.3, 0.5, 0.7]}, "mse")
    got = {r["metric"]: r["value"] for r in ev.robustness_records(run, base, baseline="b")}
    assert got["robust_auc"] > 0 and got["relative_robustness"] < 0
    with pytest.raises(ValueError, match="SNR points"):
        ev.robustness_records(run, base[:-1], baseline="b")
    with pytest.raises(ValueError, match="no snr_curve modality"):
        ev.robustness_records(run, [], baseline="b")


def test_minmax_scale_is_multibench_normalisation_on_hand_numbers() -> None:
    # relative robustness of three hand curves on levels 0, .5, 1: .75, .5, .6
    rel = {
        "a": ev.relative_robustness([1.0, 0.8, 0.4]),
        "b": ev.relative_robustness([0.8, 0.5, 0.2]),
        "c": ev.relative_robustness([0.9, 0.6, 0.3]),
    }
    assert [rel[k] for k in "abc"] == pytest.approx([0.75, 0.5, 0.6])
    scaled = ev.minmax_scale(rel)
    assert [scaled[k] for k in "abc"] == pytest.approx([1.0, 0.0, (0.6 - 0.5) / (0.75 - 0.5)])
    # error metrics are signed first (higher = better), so the lowest MSE area scales to 1
    mse = {"x": ev.relative_robustness([0.2, 0.4], higher_is_better=False),
           "y": ev.relative_robustness([0.3, 0.5], higher_is_better=False)}
    assert ev.minmax_scale(mse) == {"x": 1.0, "y": 0.0}
    with pytest.raises(ValueError, match="same value"):
        ev.minmax_scale({"a": 0.3, "b": 0.3})
    with pytest.raises(ValueError, match="at least 2"):
        ev.minmax_scale({"a": 0.3})
