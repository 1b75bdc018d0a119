"""Task metrics: classification, regression (incl. MOSI Acc-2/Acc-7/F1) and generation.

All functions take whole-split tensors and return Python floats:

* classification: ``outputs`` ``(N, C)`` logits or ``(N,)`` predicted classes, ``labels`` ``(N,)``;
  :func:`accuracy`, :func:`macro_f1` (scikit-learn's ``average="macro"``, as
  :mod:`fuselab.tasks` defines it: the mean F1 over every class present in the labels or the
  predictions).
* regression: ``preds`` and ``targets`` of equal numel; :func:`mse`, :func:`mae`, :func:`pearson_r`.
  MOSI-style sentiment in [-3, 3] as paper 002 Table 2 defines it: :func:`acc2` (labels in
  [-3, 0) negative, (0, 3] positive, zero labels excluded; prediction positive iff > 0),
  :func:`f1_binary` (support-weighted F1 of those two classes, the usual MOSI "F-score") and
  :func:`acc7` (prediction and label rounded to the nearest integer after clipping to [-3, 3]).
* generation: :func:`exact_match` of token sequences ``(N, L)`` cut at the first end token.
"""

from __future__ import annotations

import math

from torch import Tensor

from fuselab.tasks import confusion_matrix, f1_per_class, macro_f1_from_confusion


def _classes(outputs: Tensor, labels: Tensor, where: str) -> Tensor:
    preds = outputs.argmax(dim=-1) if outputs.is_floating_point() and outputs.dim() == 2 else outputs
    if preds.shape != labels.shape:
        raise ValueError(
            f"{where}: predictions of shape {tuple(preds.shape)} (from outputs "
            f"{tuple(outputs.shape)}) do not match labels of shape {tuple(labels.shape)}"
        )
    return preds.long()


def accuracy(outputs: Tensor, labels: Tensor) -> float:
    """Fraction of samples whose predicted class (argmax of ``(N, C)`` logits) equals the label."""
    preds = _classes(outputs, labels, "accuracy")
    if labels.numel() == 0:
        return math.nan
    return float((preds == labels).double().mean())


def macro_f1(outputs: Tensor, labels: Tensor, num_classes: int | None = None) -> float:
    """Unweighted mean F1 over the classes present in ``labels`` or the predictions."""
    preds = _classes(outputs, labels, "macro_f1")
    if labels.numel() == 0:
        return math.nan
    num = int(max(int(labels.max()), int(preds.max()))) + 1
    if num_classes is not None:
        num = max(num, num_classes)
    return macro_f1_from_confusion(confusion_matrix(preds, labels, num))


def _flat_pair(preds: Tensor, targets: Tensor, where: str) -> tuple[Tensor, Tensor]:
    if preds.numel() != targets.numel():
        raise ValueError(
            f"{where}: predictions of shape {tuple(preds.shape)} do not match targets of shape "
            f"{tuple(targets.shape)}"
        )
    return preds.reshape(-1).double(), targets.reshape(-1).double()


def mse(preds: Tensor, targets: Tensor) -> float:
    """Mean squared error over all elements."""
    p, t = _flat_pair(preds, targets, "mse")
    return float((p - t).pow(2).mean())


def mae(preds: Tensor, targets: Tensor) -> float:
    """Mean absolute error over all elements."""
    p, t = _flat_pair(preds, targets, "mae")
    return float((p - t).abs().mean())


def pearson_r(preds: Tensor, targets: Tensor) -> float:
    """Pearson correlation of predictions and targets (NaN when either is constant)."""
    p, t = _flat_pair(preds, targets, "pearson_r")
    pc, tc = p - p.mean(), t - t.mean()
    denom = pc.norm() * tc.norm()
    if p.numel() < 2 or float(denom) == 0.0:
        return math.nan
    return float((pc * tc).sum() / denom)


def _nonzero_binary(preds: Tensor, targets: Tensor, where: str) -> tuple[Tensor, Tensor]:
    p, t = _flat_pair(preds, targets, where)
    keep = t != 0
    return (p[keep] > 0).long(), (t[keep] > 0).long()


def acc2(preds: Tensor, targets: Tensor) -> float:
    """Binary sentiment accuracy on non-zero labels (negative < 0 < positive)."""
    p, t = _nonzero_binary(preds, targets, "acc2")
    return float((p == t).double().mean()) if t.numel() else math.nan


def f1_binary(preds: Tensor, targets: Tensor) -> float:
    """Support-weighted F1 of the negative/positive classes on non-zero labels (MOSI F-score)."""
    p, t = _nonzero_binary(preds, targets, "f1")
    if t.numel() == 0:
        return math.nan
    confusion = confusion_matrix(p, t, 2)
    f1, _ = f1_per_class(confusion)
    support = confusion.sum(dim=1).double()
    return float((f1 * support).sum() / support.sum())


def acc7(preds: Tensor, targets: Tensor) -> float:
    """7-class sentiment accuracy: both rounded to the nearest integer in [-3, 3]."""
    p, t = _flat_pair(preds, targets, "acc7")
    if t.numel() == 0:
        return math.nan
    return float((p.clamp(-3, 3).round() == t.clamp(-3, 3).round()).double().mean())


def _cut(seq: Tensor, eos_id: int | None, pad_id: int | None) -> list[int]:
    tokens = seq.tolist()
    if eos_id is not None and eos_id in tokens:
        tokens = tokens[: tokens.index(eos_id)]
    # Negative ids never name a token: they are padding added when batches are concatenated.
    return [x for x in tokens if x != pad_id and x >= 0]


def exact_match(
    pred_ids: Tensor, target_ids: Tensor, *, eos_id: int | None = None, pad_id: int | None = None
) -> float:
    """Fraction of sequences ``(N, L)`` equal to their target after cutting at ``eos_id`` and
    dropping ``pad_id`` and negative filler ids (so padding and generation length do not matter)."""
    if pred_ids.dim() != 2 or target_ids.dim() != 2 or pred_ids.shape[0] != target_ids.shape[0]:
        raise ValueError(
            f"exact_match: expected (N, L) token ids for both, got predictions "
            f"{tuple(pred_ids.shape)} and targets {tuple(target_ids.shape)}"
        )
    n = target_ids.shape[0]
    if n == 0:
        return math.nan
    hits = sum(
        _cut(p, eos_id, pad_id) == _cut(t, eos_id, pad_id)
        for p, t in zip(pred_ids, target_ids, strict=True)
    )
    return hits / n


def classification_metrics(outputs: Tensor, labels: Tensor) -> dict[str, float]:
    """``accuracy`` and ``macro_f1`` of ``(N, C)`` logits against ``(N,)`` labels."""
    return {"accuracy": accuracy(outputs, labels), "macro_f1": macro_f1(outputs, labels)}


def regression_metrics(preds: Tensor, targets: Tensor, *, mosi: bool | None = None) -> dict[str, float]:
    """``mse``, ``mae``, ``pearson_r``; plus ``acc2``, ``acc7``, ``f1`` for MOSI-style labels.

    ``mosi=None`` adds the sentiment metrics when the targets are one score per sample
    (``(N,)`` or ``(N, 1)``) and every one lies in [-3, 3].
    """
    out = {"mse": mse(preds, targets), "mae": mae(preds, targets), "pearson_r": pearson_r(preds, targets)}
    if mosi is None:
        one_score = targets.dim() == 1 or (targets.dim() == 2 and targets.shape[1] == 1)
        mosi = one_score and targets.numel() > 0 and bool((targets.abs() <= 3).all())
    if mosi:
        out.update(acc2=acc2(preds, targets), acc7=acc7(preds, targets), f1=f1_binary(preds, targets))
    return out
