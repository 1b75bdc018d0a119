"""Shared plumbing of the evaluations: input checks, batched prediction, task metrics, records.

Every evaluation runs a model over a :class:`~fuselab.data.MultimodalDataset` with
``ds.batches(...)`` (model-ready inputs ``{m: (B, *shape_m)}``, labels ``(B,)`` or ``(B, K)``) and
reduces the predictions to tidy records ``{"evaluation", "metric", "value", **condition}``.
Generation models (``task = "generation"``) are scored by ``model.generate(inputs, L) -> (B, L)``
token ids against ``(B, L)`` label ids (exact match, see :func:`predict`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fuselab import device as D
from fuselab import tasks
from fuselab.data import MultimodalDataset, check_has_modalities
from fuselab.models import memory_formats, prefers_channels_last, restore_memory_formats
from fuselab.tasks import DEFAULT_METRIC, confusion_matrix, macro_f1_from_confusion

Record = dict[str, Any]
Condition = str | int | float | None

METRICS: dict[str, str] = {
    "accuracy": "classification",
    "macro_f1": "classification",
    "mse": "regression",
    "mae": "regression",
    "exact_match": "generation",
}
"""The metrics the evaluations compute (streamed by :class:`MetricAccumulator`) -> their task;
the direction of each is :func:`fuselab.tasks.higher_is_better`."""


def higher_is_better(metric: str) -> bool:
    """Whether larger values of evaluation metric ``metric`` are better
    (:func:`fuselab.tasks.higher_is_better`); ``ValueError`` for a metric no evaluation computes."""
    if metric not in METRICS:
        raise ValueError(f"metric: unknown metric {metric!r}; allowed: {sorted(METRICS)}")
    return tasks.higher_is_better(metric)


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
    if METRICS[metric] != ds.task:
        allowed = sorted(k for k, t in METRICS.items() if t == ds.task)
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
    """Put ``model`` in eval mode under ``torch.inference_mode``; restore its mode afterwards.

    A conv-stage model (:func:`fuselab.models.prefers_channels_last`) not already channels-last
    runs channels-last meanwhile (about 3x faster on the AV-MNIST LeNet; same outputs) and gets
    its layout back afterwards."""
    was_training = model.training
    formats = memory_formats(model) if prefers_channels_last(model) else None
    if formats is not None:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
        if formats is not None:
            restore_memory_formats(model, formats)


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
    """A batch on the model's device: evaluations prepare batches (noise, ``transform``) where
    the data lives, then move them (:func:`fuselab.device.move`: pinned and non-blocking from
    CPU to CUDA), so several models on different devices see the same noisy batches."""
    return D.move(inputs, device)


def restrict(inputs: Mapping[str, Tensor], names: tuple[str, ...]) -> dict[str, Tensor]:
    """Only the modalities the model takes (datasets may carry more)."""
    return {m: inputs[m] for m in names}


def is_floating(ds: MultimodalDataset, m: str) -> bool:
    """Whether modality ``m`` is stored as floats (white noise / zero / mean replacement apply);
    integer token ids (the VQA question) are not."""
    return bool(ds.modalities[m].is_floating_point())


def predict(
    model: nn.Module, x: dict[str, Tensor], labels: Tensor, ds: MultimodalDataset, who: str
) -> Tensor:
    """What a metric scores: ``model(x)`` shaped like the label space (:func:`check_output`), or
    for generation ``model.generate(x, L) -> (B, L)`` token ids, ``L = labels.shape[1]``."""
    if ds.task != "generation":
        return check_output(model(x), labels, ds, who)
    generate = getattr(model, "generate", None)
    if not callable(generate):
        raise ValueError(
            f"{who}: dataset {ds.name!r} has task 'generation' but model {type(model).__name__} "
            "has no generate(inputs, max_len) method"
        )
    ids = generate(x, int(labels.shape[1]))
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.shape[0] != labels.shape[0]:
        got = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(
            f"{who}: model.generate returned {got}; expected (B, L) token ids with "
            f"B = {labels.shape[0]}"
        )
    return ids


def exact_hits(pred: Tensor, target: Tensor, eos_id: int | None, pad_id: int | None) -> Tensor:
    """``(B,)`` bool: sequence ``b`` of ``pred (B, L_p)`` equals ``target (B, L_t)`` after both
    are cut at the first ``eos_id`` and stripped of ``pad_id`` and negative filler ids (the rule of
    ``fuselab.train``'s ``exact_match``, vectorised)."""

    def canonical(ids: Tensor, width: int) -> Tensor:
        ids = ids.long()
        keep = ids >= 0
        if pad_id is not None:
            keep &= ids != pad_id
        if eos_id is not None:
            keep &= (ids == eos_id).long().cumsum(1) == 0
        # stable sort moves the kept tokens to the front in order; the rest become -1
        order = torch.sort((~keep).long(), dim=1, stable=True).indices
        packed = torch.where(keep, ids, torch.full_like(ids, -1)).gather(1, order)
        return torch.nn.functional.pad(packed, (0, width - ids.shape[1]), value=-1)

    width = max(pred.shape[1], target.shape[1])
    return (canonical(pred.cpu(), width) == canonical(target.cpu(), width)).all(1)


def accumulator(metric: str, ds: MultimodalDataset) -> MetricAccumulator:
    """A :class:`MetricAccumulator` for ``metric`` on ``ds`` (special token ids from its meta)."""
    meta = ds.meta or {}
    return MetricAccumulator(
        metric, ds.num_classes, eos_id=meta.get("eos_id"), pad_id=meta.get("pad_id")
    )


class MetricAccumulator:
    """Streams ``(output, labels)`` batches and returns one metric over all of them.

    Classification keeps a confusion matrix ``(C, C)``; regression keeps running error sums;
    ``exact_match`` counts hits of ``(B, L)`` generated ids (:func:`exact_hits`), so nothing
    per-sample is stored.
    """

    def __init__(
        self,
        metric: str,
        num_classes: int | None,
        *,
        eos_id: int | None = None,
        pad_id: int | None = None,
    ) -> None:
        self.metric = metric
        self.num_classes = int(num_classes or 0) if metric != "exact_match" else 0
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.eos_id, self.pad_id = eos_id, pad_id
        self.err = 0.0
        self.count = 0

    def update(self, out: Tensor, labels: Tensor) -> None:
        out, labels = out.detach().cpu(), labels.cpu()
        if self.metric == "exact_match":
            self.err += float(exact_hits(out, labels, self.eos_id, self.pad_id).sum())
            self.count += int(labels.shape[0])
        elif self.metric in ("accuracy", "macro_f1"):
            self.confusion += confusion_matrix(out.argmax(dim=1), labels, self.num_classes)
        else:
            diff = out.double() - labels.double()
            self.err += float((diff.abs() if self.metric == "mae" else diff.pow(2)).sum())
            self.count += diff.numel()

    def compute(self) -> float:
        if self.metric == "accuracy":
            total = int(self.confusion.sum())
            return float(self.confusion.diag().sum()) / total if total else float("nan")
        if self.metric == "macro_f1":
            return macro_f1_from_confusion(self.confusion)
        # exact_match: err holds the hit count
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
