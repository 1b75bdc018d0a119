"""Mean ± sample std over seeds and the way fuselab prints numbers (stdlib only).

Shared by :mod:`fuselab.report` (tables, figures) and :mod:`fuselab.study.claims` (claim
verdicts), so a value reads the same in the report, in ``fuselab show`` and in ``RESULTS.md``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of one metric over the seeds of a variant."""

    mean: float
    std: float | None
    n: int


def is_number(v: object) -> bool:
    """An int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def summarize(values: Iterable[float]) -> Stat | None:
    """Mean and sample std (``ddof=1``) of the finite ``values``; ``None`` when there are none."""
    xs = [float(v) for v in values if is_number(v) and math.isfinite(float(v))]
    if not xs:
        return None
    std = statistics.stdev(xs) if len(xs) > 1 else None
    return Stat(statistics.fmean(xs), std, len(xs))


def fmt_number(value: float | None, metric: str = "") -> str:
    """Human-readable number: k/M/G suffixes for counts and FLOPs, 4 significant digits else."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    a = abs(value)
    if any(w in metric for w in ("params", "flops")) or a >= 1e5:
        for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                return f"{value / div:.3g}{suffix}"
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"
    if float(value).is_integer() or a >= 1e3:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def fmt_stat(stat: Stat | None, metric: str = "") -> str:
    """``mean ± std`` (just the mean for a single seed, ``—`` when missing)."""
    if stat is None:
        return "—"
    if stat.std is None:
        return fmt_number(stat.mean, metric)
    if any(w in metric for w in ("params", "flops")) or abs(stat.mean) >= 1e5:
        return f"{fmt_number(stat.mean, metric)} ± {fmt_number(stat.std, metric)}"
    if abs(stat.mean) >= 1e3:
        return f"{stat.mean:,.0f} ± {stat.std:,.0f}"
    if stat.std <= 0:
        return f"{fmt_number(stat.mean, metric)} ± 0"
    # Two significant digits of the std fix the decimals of both numbers (0.808 ± 0.015).
    decimals = min(8, max(0, 1 - math.floor(math.log10(stat.std))))
    return f"{stat.mean:.{decimals}f} ± {stat.std:.{decimals}f}"
