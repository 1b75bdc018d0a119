"""Paired bootstrap interval of a metric difference between two outputs on the same test samples.

Given outputs ``a`` and ``b`` of two predictors for the same ``N`` samples with labels ``y``, the
difference ``d = s * (metric(a, y) - metric(b, y))`` is recomputed on ``resamples`` bootstrap
samples (``N`` sample indices drawn uniformly with replacement, the same indices for both
outputs, so the pairing is kept), and the percentile interval ``[q_(1-ci)/2, q_(1+ci)/2]`` of those
differences is returned (Efron's percentile bootstrap). It describes the variation that comes from
the choice of test samples only; the predictors are held fixed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fuselab.evaluate._common import MetricAccumulator


def _metric(make: Callable[[], MetricAccumulator], out: Tensor, labels: Tensor) -> float:
    acc = make()
    acc.update(out, labels)
    return acc.compute()


def check_bootstrap(resamples: int, ci: float) -> None:
    """``resamples`` a non-negative int (0: no interval), ``ci`` in ``(0, 1)``."""
    if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 0:
        raise ValueError(f"bootstrap must be a non-negative int (0: no interval), got {resamples!r}")
    if not isinstance(ci, float | int) or isinstance(ci, bool) or not 0.0 < float(ci) < 1.0:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")


def paired_bootstrap(
    a: Tensor,
    b: Tensor,
    labels: Tensor,
    make: Callable[[], MetricAccumulator],
    *,
    resamples: int,
    ci: float,
    generator: torch.Generator,
    sign: float = 1.0,
) -> tuple[float, float]:
    """Percentile interval of ``sign * (metric(a) - metric(b))`` over paired resamples.

    Args:
        a, b: ``(N, ...)`` outputs for the same samples (e.g. ``(N, classes)`` logits).
        labels: ``(N, ...)`` targets.
        make: builds a fresh metric accumulator.
        resamples: number of bootstrap samples (>= 1).
        ci: coverage, e.g. ``0.95``.
        generator: seeds the resampling.
        sign: ``-1`` for error metrics, so that the difference is "a better than b".

    Returns:
        ``(lo, hi)``.
    """
    check_bootstrap(resamples, ci)
    if resamples == 0:
        raise ValueError("paired_bootstrap: resamples must be >= 1")
    n = int(labels.shape[0])
    if a.shape[0] != n or b.shape[0] != n:
        raise ValueError(
            f"paired_bootstrap: outputs have {a.shape[0]} and {b.shape[0]} rows, labels {n}"
        )
    diffs = torch.empty(resamples, dtype=torch.float64)
    for k in range(resamples):
        idx = torch.randint(n, (n,), generator=generator)
        diffs[k] = sign * (
            _metric(make, a[idx], labels[idx]) - _metric(make, b[idx], labels[idx])
        )
    q = torch.tensor([(1.0 - ci) / 2.0, (1.0 + ci) / 2.0], dtype=torch.float64)
    lo, hi = torch.quantile(diffs, q).tolist()
    return float(lo), float(hi)
