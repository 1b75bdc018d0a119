"""``FitResult``: what one training run reports (curve, best/last metrics, speed)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FitResult:
    """Outcome of :func:`fuselab.train.fit`.

    Attributes:
        history: one dict per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>``,
            ``lr``, ``steps``, ``samples_per_s``, ``epoch_time_s`` (and ``blend_weight_<head>``
            with gradient blending).
        best: validation metrics (un-prefixed: ``accuracy``, ``loss``, ...) of the best epoch, whose
            weights the model holds after ``fit``; plus ``epoch``.
        last: validation metrics of the last epoch; plus ``epoch``.
        metric: the monitored metric name (``TrainConfig.metric`` resolved).
        max_metric: best value of ``metric`` over the curve (the maximum, or the minimum for
            error metrics such as ``mse``/``loss``), i.e. the "maximum accuracy reached".
        last_metric: ``metric`` at the last step (end of the last epoch).
        best_epoch: 1-based epoch of ``best``.
        checkpoint_path: where the best checkpoint was written (``None``: not requested).
        train_time_s: wall time of the whole ``fit`` call.
        samples_per_s: training samples per second over the optimizer steps (evaluation excluded).
        steps: optimizer steps taken.
        stop_reason: ``"epochs"``, ``"max_steps"``, ``"early_stopping"`` or ``"callback"``.
        blend_weights: final gradient-blending weights per head (empty when off).
    """

    history: list[dict[str, Any]]
    best: dict[str, float]
    last: dict[str, float]
    metric: str
    max_metric: float
    last_metric: float
    best_epoch: int
    checkpoint_path: str | None
    train_time_s: float
    samples_per_s: float
    steps: int
    stop_reason: str
    blend_weights: dict[str, float] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        """Tidy ``curve`` records (docs/architecture.md): ``train_loss`` and ``val_<metric>``
        per epoch, ``{"evaluation": "curve", "metric": ..., "value": ..., "epoch": ...}``."""
        out = []
        for row in self.history:
            for key, value in row.items():
                if key == "train_loss" or key.startswith("val_"):
                    if isinstance(value, float) and math.isnan(value):
                        continue
                    out.append(
                        {"evaluation": "curve", "metric": key, "value": float(value), "epoch": row["epoch"]}
                    )
        return out
