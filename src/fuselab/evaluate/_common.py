"""Shared plumbing of the evaluations: input checks, batched prediction, task metrics, records.

Every evaluation runs a model over a :class:`~fuselab.data.MultimodalDataset` with
``ds.batches(...)`` (model-ready inputs ``{m: (B, *shape_m)}``, labels ``(B,)`` or ``(B, K)``) and
reduces the predictions to tidy records ``{"evaluation", "metric", "value", **condition}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fuselab.data import MultimodalDataset, check_has_modalities

Record = dict[str, Any]
Condition = str | int | float | None

#: metric name -> (task, higher_is_better)
METRICS: dict[str, tuple[str, bool]] = {
    "accuracy": ("classification", True),
    "macro_f1": ("classification", True),
    "mse": ("regression", False),
    "mae": ("regression", False),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "mse"}


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better (``False`` for error metrics)."""
    if metric not in METRICS:
        raise ValueError(f"metric: unknown metric {metric!r}; allowed: {sorted(METRICS)}")
    return METRICS[metric][1]


def resolve_metric(ds: MultimodalDataset, metric: str | None) -> str:
    """The metric to report on ``ds``: ``metric`` if it fits the task, else the task default."""
    if ds.task not in DEFAULT_METRIC:
        raise ValueError(
            f"{ds.name}: evaluation supports tasks {sorted(DEFAULT_METRIC)}, got task {ds.task!r}"
        )
    if metric is None:
        return DEFAULT_METRIC[ds.task]
    if metric not in METRICS:
        raise ValueError(f"metric: unknown metric {metric!r}; allowed: {sorted(METRICS)}")
    if METRICS[metric][0] != ds.task:
        allowed = sorted(k for k, (t, _) in METRICS.items() if t == ds.task)
        raise ValueError(
            f"metric: {metric!r} does not apply to a {ds.task} dataset; allowed: {allowed}"
        )
    return metric


def model_modalities(model: nn.Module, ds: MultimodalDataset) -> tuple[str, ...]:
    """``model.modalities`` (every fuselab model has it) or, for plain modules, all of ``ds``."""
    names = getattr(model, "modalities", None)
    return tuple(names) if names is not None else ds.names


def check_dataset(model: nn.Module, ds: MultimodalDataset, who: str) -> tuple[str, ...]:
    """``ValueError`` when ``ds`` lacks a modality the model needs; returns the needed names."""
    if not isinstance(ds, MultimodalDataset):
        raise TypeError(
            f"{who}: expected a fuselab.data.MultimodalDataset, got {type(ds).__name__}"
        )
    if len(ds) == 0:
        raise ValueError(f"{who}: dataset {ds.name!r} is empty")
    needed = model_modalities(model, ds)
    check_has_modalities(ds, needed, f"{who} (model {type(model).__name__})")
    return needed


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for parameterless modules)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode under ``torch.inference_mode``; restore its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def check_output(out: Tensor, labels: Tensor, ds: MultimodalDataset, who: str) -> Tensor:
    """Return ``out`` shaped like the label space; ``ValueError`` when it does not match.

    Classification: ``(B, num_classes)`` logits. Regression: ``labels``' shape, where a trailing
    singleton output ``(B, 1)`` for ``(B,)`` labels is accepted.
    """
    if not isinstance(out, Tensor):
        raise TypeError(f"{who}: the model must return a Tensor, got {type(out).__name__}")
    if ds.task == "classification":
        want = (labels.shape[0], ds.num_classes)
        if out.dim() != 2 or tuple(out.shape) != want:
            raise ValueError(
                f"{who}: model output shape {tuple(out.shape)} does not match the label space of "
                f"{ds.name!r}: expected (B, num_classes) = {want}"
            )
        return out
    if out.shape == labels.shape:
        return out
    if labels.dim() == 1 and out.dim() == 2 and out.shape == (labels.shape[0], 1):
        return out[:, 0]
    raise ValueError(
        f"{who}: model output shape {tuple(out.shape)} does not match the regression labels of "
        f"{ds.name!r}: expected {tuple(labels.shape)}"
    )


def to_device(inputs: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {m: x.to(device) for m, x in inputs.items()}


def restrict(inputs: Mapping[str, Tensor], names: tuple[str, ...]) -> dict[str, Tensor]:
    """Only the modalities the model takes (datasets may carry more)."""
    return {m: inputs[m] for m in names}


class MetricAccumulator:
    """Streams ``(output, labels)`` batches and returns one metric over all of them.

    Classification keeps a confusion matrix ``(C, C)``; regression keeps running error sums, so
    nothing per-sample is stored.
    """

    def __init__(self, metric: str, num_classes: int | None) -> None:
        self.metric = metric
        self.num_classes = int(num_classes or 0)
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.err = 0.0
        self.count = 0

    def update(self, out: Tensor, labels: Tensor) -> None:
        out, labels = out.detach().cpu(), labels.cpu()
        if self.metric in ("accuracy", "macro_f1"):
            pred = out.argmax(dim=1)
            flat = labels * self.num_classes + pred
            self.confusion += torch.bincount(flat, minlength=self.num_classes**2).view(
                self.num_classes, self.num_classes
            )
        else:
            diff = out.double() - labels.double()
            self.err += float((diff.abs() if self.metric == "mae" else diff.pow(2)).sum())
            self.count += diff.numel()

    def compute(self) -> float:
        if self.metric == "accuracy":
            total = int(self.confusion.sum())
            return float(self.confusion.diag().sum()) / total if total else float("nan")
        if self.metric == "macro_f1":
            tp = self.confusion.diag().double()
            support = self.confusion.sum(1).double()
            predicted = self.confusion.sum(0).double()
            denom = support + predicted
            f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
            present = support > 0
            return float(f1[present].mean()) if bool(present.any()) else float("nan")
        return self.err / self.count if self.count else float("nan")


def record(evaluation: str, metric: str, value: float, **condition: Condition) -> Record:
    """One tidy record, ``{"evaluation", "metric", "value", **condition}`` (architecture.md)."""
    for key, v in condition.items():
        if v is not None and not isinstance(v, str | int | float):
            raise TypeError(f"record condition {key!r} must be str/int/float/None, got {v!r}")
    return {"evaluation": evaluation, "metric": metric, "value": float(value), **condition}


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size
