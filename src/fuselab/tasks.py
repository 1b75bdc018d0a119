"""Task rules, defined once: each task's metrics, default metric and loss, metric direction and
macro-F1. ``fuselab.train``, ``fuselab.evaluate`` and ``fuselab.report`` all read them from here
(this module imports nothing of fuselab, and torch only inside the functions that compute, so the
report and the CLI read the rules without loading torch).

* Tasks: ``"classification"`` (``(B, C)`` logits, ``(B,)`` class labels), ``"regression"``
  (``(B, K)`` or ``(B,)`` predictions and targets) and ``"generation"`` (``(B, L, V)`` logits,
  ``(B, L)`` token ids).
* Direction: a metric is minimised when its name contains one of :data:`LOWER_IS_BETTER` (so
  ``val_loss``, ``test_mse``, ``latency_ms_b1``, ``peak_memory_mb`` are minimised) and
  maximised otherwise (``accuracy``, ``macro_f1``, ``throughput``, ...).
* Macro-F1 is scikit-learn's ``f1_score(average="macro")``: the unweighted mean of the per-class
  ``F1 = 2 TP / (2 TP + FP + FN)`` over every class present in the labels *or* the predictions
  (a class that is predicted but never a label counts, with F1 = 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

LossFn = Callable[["Tensor", "Tensor"], "Tensor"]

TASKS = ("classification", "regression", "generation")
#: Metrics each task reports besides ``loss``.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "regression": ("mse", "mae", "pearson_r", "acc2", "acc7", "f1"),
    "generation": ("exact_match",),
}
#: The metric a task is judged by when none is named (``TrainConfig(metric="auto")``, evaluations).
DEFAULT_METRIC = {"classification": "accuracy", "regression": "mse", "generation": "exact_match"}
#: Words that make a metric name "smaller is better" (errors, losses and costs).
LOWER_IS_BETTER = ("loss", "mse", "mae", "latency", "params", "flops", "memory", "duration", "error")


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better (see :data:`LOWER_IS_BETTER`)."""
    name = metric.lower()
    return any(word in name for word in LOWER_IS_BETTER)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (``accuracy``: yes; ``loss``, ``mse``: no)."""
    return not lower_is_better(metric)


def check_task(task: str, where: str) -> str:
    """``task`` when it is one of :data:`TASKS`, else a ``ValueError`` naming ``where``."""
    if task not in TASKS:
        raise ValueError(f"{where}: unknown task {task!r}; allowed: {list(TASKS)}")
    return task


def task_loss(task: str, regression_loss: str = "mse", pad_id: int | None = None) -> LossFn:
    """The training loss of ``task``: cross-entropy (classification; generation over every
    position, ignoring ``pad_id``), or MSE / L1 (``regression_loss``) on predictions reshaped
    like the targets."""
    import torch.nn.functional as F

    check_task(task, "task_loss")
    if task == "classification":
        return F.cross_entropy
    if task == "generation":
        ignore = -100 if pad_id is None else int(pad_id)

        def seq_ce(logits: Tensor, labels: Tensor) -> Tensor:
            return F.cross_entropy(logits.flatten(0, -2), labels.reshape(-1), ignore_index=ignore)

        return seq_ce
    if regression_loss not in ("mse", "l1"):
        raise ValueError(f"task_loss: regression_loss must be 'mse' or 'l1', got {regression_loss!r}")
    reg = F.mse_loss if regression_loss == "mse" else F.l1_loss

    def regression(preds: Tensor, labels: Tensor) -> Tensor:
        return reg(preds.reshape(labels.shape), labels.to(preds.dtype))

    return regression


def confusion_matrix(preds: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(C, C)`` int64 counts, ``[label, prediction]``, of ``(N,)`` class indices in ``[0, C)``."""
    import torch

    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def f1_per_class(confusion: Tensor) -> tuple[Tensor, Tensor]:
    """``(F1, present)`` per class of a ``(C, C)`` confusion matrix ``[label, prediction]``:
    ``F1 = 2 TP / (support + predicted)``; ``present`` marks classes in the labels or the
    predictions (the others have no F1: 0 / 0)."""
    import torch

    c = confusion.double()
    tp = c.diagonal()
    denom = c.sum(dim=1) + c.sum(dim=0)
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return f1, denom > 0


def macro_f1_from_confusion(confusion: Tensor) -> float:
    """scikit-learn's macro-F1 of a confusion matrix: mean F1 over the classes present in the
    labels or the predictions; NaN when it counts no sample."""
    f1, present = f1_per_class(confusion)
    return float(f1[present].mean()) if bool(present.any()) else math.nan
