"""The two statistics claims need: a one-sided t-test at 95 % and a least-squares slope.

Seeds are few (3-10), so the t-test uses Student's t quantiles, tabulated below for one-sided
95 % (``t_{0.95, df}``, df 1-30, 40, 60, 120; larger df use the value of the largest tabulated df
not above it, which is conservative). ``tests/study/test_claims_rules.py`` checks the table
against a numerical integral of the t density.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

T95: dict[int, float] = {
    1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833,
    10: 1.812, 11: 1.796, 12: 1.782, 13: 1.771, 14: 1.761, 15: 1.753, 16: 1.746, 17: 1.740,
    18: 1.734, 19: 1.729, 20: 1.725, 21: 1.721, 22: 1.717, 23: 1.714, 24: 1.711, 25: 1.708,
    26: 1.706, 27: 1.703, 28: 1.701, 29: 1.699, 30: 1.697, 40: 1.684, 60: 1.671, 120: 1.658,
}


def t_crit(df: float) -> float:
    """One-sided 95 % quantile of Student's t with ``floor(df)`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"t_crit: degrees of freedom must be >= 1, got {df}")
    return T95[max(k for k in T95 if k <= math.floor(df))]


@dataclass(frozen=True)
class TTest:
    """``t`` statistic of ``mean(left - right) + shift`` and its degrees of freedom."""

    t: float
    df: float
    kind: str  # "paired", "Welch" or "one-sample"

    @property
    def crit(self) -> float:
        return t_crit(self.df)

    def describe(self) -> str:
        return f"{self.kind} t = {self.t:.2f}, df {self.df:.3g}, 95 % one-sided bound {self.crit:.2f}"


def _t(mean: float, se: float) -> float:
    if se > 0:
        return mean / se
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)


def t_test(left: Mapping[int, float], right: Mapping[int, float] | float,
           shift: float = 0.0) -> TTest | None:
    """Test ``mean(left) - mean(right) + shift > 0``: paired by seed when both sides have the same
    seeds, Welch's test for two different seed sets, one-sample against a constant ``right``.
    None when a side has fewer than two seeds."""
    if isinstance(right, Mapping) and set(left) == set(right):
        d = [left[s] - right[s] + shift for s in left]
        if len(d) < 2:
            return None
        return TTest(_t(statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d))),
                     len(d) - 1, "paired")
    if not isinstance(right, Mapping):
        d = [v - right + shift for v in left.values()]
        if len(d) < 2:
            return None
        return TTest(_t(statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d))),
                     len(d) - 1, "one-sample")
    lv, rv = list(left.values()), list(right.values())
    if len(lv) < 2 or len(rv) < 2:
        return None
    a, b = statistics.variance(lv) / len(lv), statistics.variance(rv) / len(rv)
    se = math.sqrt(a + b)
    # Welch-Satterthwaite degrees of freedom; equal to n_l + n_r - 2 when both variances vanish
    df = (a + b) ** 2 / (a * a / (len(lv) - 1) + b * b / (len(rv) - 1)) if se > 0 else \
        len(lv) + len(rv) - 2
    return TTest(_t(statistics.fmean(lv) - statistics.fmean(rv) + shift, se), df, "Welch")


@dataclass(frozen=True)
class Line:
    """Least-squares line ``y = intercept + slope x``; ``se`` is the slope's standard error
    (None with only two points)."""

    slope: float
    intercept: float
    se: float | None
    n: int


def fit_line(points: Sequence[tuple[float, float]]) -> Line:
    """Ordinary least squares through ``points`` (at least two distinct x)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    if len(set(xs)) < 2:
        raise ValueError(f"fit_line: needs >= 2 distinct x, got {sorted(set(xs))}")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    intercept = my - slope * mx
    se = None
    if len(points) > 2:
        ssr = sum((y - intercept - slope * x) ** 2 for x, y in points)
        se = math.sqrt(ssr / (len(points) - 2) / sxx)
    return Line(slope, intercept, se, len(points))
