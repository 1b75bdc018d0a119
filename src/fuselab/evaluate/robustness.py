"""Robustness areas on performance-vs-noise curves: pure functions the study runs across runs.

A *curve* is performance at ``K`` noise levels ordered clean -> noisiest, ``perf[0]`` being the
least noisy point (the original input on fuselab's SNR grids). Noise levels ``sigma_k`` must be
equally spaced; by default ``sigma_k = k / (K - 1)`` (the grid position rescaled to ``[0, 1]``,
MultiBench's convention, so areas are comparable across grid sizes).

Formulas (``s = +1`` for metrics where higher is better, ``s = -1`` for error metrics):

* ROBUSTAUC (paper 001, after Taori et al. 2020)::

      tau = s * integral (Perf(f, sigma) - Perf(b, sigma)) d sigma      (trapezoidal rule)

  the area between model ``f``'s curve and baseline ``b``'s; > 0 means more robust than ``b``.
* MultiBench relative robustness (Liang et al. 2021): the area under the model's own curve,
  ``s * integral Perf(f, sigma) d sigma`` (trapezoidal). High = accurate *and* robust.
* MultiBench effective robustness: performance beyond the baseline curve shifted to the model's
  clean performance, ``s * sum_k (Perf(f, k) - [Perf(b, k) + Perf(f, 0) - Perf(b, 0)])``: how much
  less the model degrades than the baseline, independent of their clean accuracy.

[0, 1] scaling (MultiBench ``maxmin_normalize``; paper 001 "scale the numbers to [0, 1]"): a
method's value among the methods compared, ``(v - min) / (max - min)`` over those methods, after
the sign ``s`` (so 1 = the most robust method of the comparison, 0 = the least). The scaled value
depends on which methods are compared: it ranks, it does not measure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fuselab.evaluate._common import Record, higher_is_better, record


def _values(xs: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray([float(v) for v in xs], dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{what}: a curve needs at least 2 points, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: curve values must be finite, got {list(xs)}")
    return arr


def _levels(levels: Sequence[float] | None, k: int) -> np.ndarray:
    if levels is None:
        return np.linspace(0.0, 1.0, k)
    x = _values(levels, "levels")
    if x.size != k:
        raise ValueError(f"levels: {x.size} noise levels for a curve of {k} points")
    steps = np.diff(x)
    if np.any(steps <= 0):
        raise ValueError(f"levels: noise levels must increase strictly, got {list(levels)}")
    if not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-12):
        raise ValueError(f"levels: noise levels must be equally spaced, got {list(levels)}")
    return x


def _pair(perf: Sequence[float], baseline: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    f, b = _values(perf, "perf"), _values(baseline, "baseline")
    if f.size != b.size:
        raise ValueError(f"baseline: curve has {b.size} points, the model's has {f.size}")
    return f, b


def _sign(higher: bool) -> float:
    return 1.0 if higher else -1.0


def robust_auc(
    perf: Sequence[float],
    baseline: Sequence[float],
    levels: Sequence[float] | None = None,
    *,
    higher_is_better: bool = True,
) -> float:
    """ROBUSTAUC: signed trapezoidal area between the model's and the baseline's curves."""
    f, b = _pair(perf, baseline)
    x = _levels(levels, f.size)
    return _sign(higher_is_better) * float(np.trapezoid(f - b, x))


def relative_robustness(
    perf: Sequence[float],
    levels: Sequence[float] | None = None,
    *,
    higher_is_better: bool = True,
) -> float:
    """MultiBench relative robustness: signed trapezoidal area under the model's curve."""
    f = _values(perf, "perf")
    x = _levels(levels, f.size)
    return _sign(higher_is_better) * float(np.trapezoid(f, x))


def effective_robustness(
    perf: Sequence[float], baseline: Sequence[float], *, higher_is_better: bool = True
) -> float:
    """MultiBench effective robustness: summed gain over the clean-aligned baseline curve."""
    f, b = _pair(perf, baseline)
    shifted = b + (f[0] - b[0])
    return _sign(higher_is_better) * float(np.sum(f - shifted))


def minmax_scale(values: Mapping[str, float]) -> dict[str, float]:
    """``{method: (v - min) / (max - min)}`` over ``values`` (already signed: higher = better).

    Needs at least two methods with different values (else the scale is undefined: ValueError).
    """
    arr = _values(list(values.values()), "minmax_scale")
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        raise ValueError(
            f"minmax_scale: all {arr.size} methods have the same value {lo}; the [0, 1] scale is "
            "undefined"
        )
    return {k: (float(v) - lo) / (hi - lo) for k, v in values.items()}


def _snr_order(snr: float | None) -> float:
    # Clean (None) first, then decreasing SNR = increasing noise.
    return -math.inf if snr is None else -float(snr)


def curve(records: Sequence[Record], modality: str) -> tuple[list[float | None], list[float]]:
    """``(snrs, values)`` of one modality's ``snr_curve`` records, ordered clean -> noisiest."""
    rows = [
        r for r in records if r.get("evaluation") == "snr_curve" and r.get("modality") == modality
    ]
    if not rows:
        raise ValueError(f"curve: no 'snr_curve' records for modality {modality!r}")
    metrics = {r["metric"] for r in rows}
    if len(metrics) > 1:
        raise ValueError(f"curve: modality {modality!r} mixes metrics {sorted(metrics)}")
    rows.sort(key=lambda r: _snr_order(r["snr"]))
    snrs = [r["snr"] for r in rows]
    if len(set(snrs)) != len(snrs):
        raise ValueError(f"curve: modality {modality!r} has repeated SNR points {snrs}")
    return snrs, [float(r["value"]) for r in rows]


def robustness_records(
    records: Sequence[Record],
    baseline_records: Sequence[Record],
    baseline: str,
    *,
    modalities: Sequence[str] | None = None,
) -> list[Record]:
    """Robustness of one run against a baseline run, from their ``snr_curve`` records.

    For every modality curve present in both (``"all"`` included): ``robust_auc`` and
    ``effective_robustness`` against the baseline and ``relative_robustness`` of the run alone,
    as records ``{"evaluation": "robustness", "metric", "value", "modality", "baseline"}``
    (``baseline`` is the baseline variant's name). The curves must share their SNR points.
    """
    have = {r["modality"] for r in records if r.get("evaluation") == "snr_curve"}
    base_have = {r["modality"] for r in baseline_records if r.get("evaluation") == "snr_curve"}
    names = list(modalities) if modalities is not None else sorted(have & base_have)
    if not names:
        raise ValueError(
            f"robustness_records: no snr_curve modality shared by the run {sorted(have)} "
            f"and the baseline {baseline!r} {sorted(base_have)}"
        )
    out: list[Record] = []
    for m in names:
        snrs, f = curve(records, m)
        base_snrs, b = curve(baseline_records, m)
        if snrs != base_snrs:
            raise ValueError(
                f"robustness_records: modality {m!r}: SNR points {snrs} differ from the "
                f"baseline's {base_snrs}"
            )
        metric = next(
            r["metric"]
            for r in records
            if r.get("evaluation") == "snr_curve" and r["modality"] == m
        )
        hib = higher_is_better(metric)
        cond = {"modality": m, "baseline": baseline}
        out += [
            record("robustness", "robust_auc", robust_auc(f, b, higher_is_better=hib), **cond),
            record(
                "robustness",
                "relative_robustness",
                relative_robustness(f, higher_is_better=hib),
                **cond,
            ),
            record(
                "robustness",
                "effective_robustness",
                effective_robustness(f, b, higher_is_better=hib),
                **cond,
            ),
        ]
    return out
