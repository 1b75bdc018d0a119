"""Task metric per sample group, e.g. exact match per VQA question type (fuselab's addition to
the thesis-004 study, which reports overall accuracy only).

The synthetic VQA set stores each sample's question type in ``source_ids["question"]`` and which
types need the image in ``meta["needs_image"]`` (``{type: bool}``). Splitting the test metric by
type shows what fusion buys: text-only questions ("corners") are answerable without the image,
image-needing ones are not, so a model that ignores the image scores high on the first and near
chance on the others. ``drop=`` repeats the evaluation with modalities removed (the model must
support missing modalities), which makes that contrast direct.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fuselab.data import MultimodalDataset
from fuselab.evaluate._common import (
    Record,
    accumulator,
    check_batch_size,
    check_dataset,
    eval_mode,
    model_device,
    predict,
    record,
    resolve_metric,
    restrict,
    to_device,
)


def _groups(ds: MultimodalDataset, source: str) -> list[str]:
    ids = (ds.source_ids or {}).get(source)
    if ids is None:
        have = sorted(ds.source_ids or {})
        raise ValueError(
            f"test_by_type: dataset {ds.name!r} has no source_ids[{source!r}] to group by "
            f"(it has source_ids for {have}); pass source= one of them"
        )
    return [str(v) for v in ids]


def test_by_type(
    model: nn.Module,
    ds: MultimodalDataset,
    *,
    source: str = "question",
    drop: Sequence[str] = (),
    metric: str | None = None,
    batch_size: int = 512,
) -> list[Record]:
    """Metric of ``model`` on ``ds`` per group ``ds.source_ids[source]`` (clean inputs).

    Args:
        model: ``{m: (B, *shape_m)} -> (B, classes)``, or a generation model scored by exact match
            of ``model.generate(inputs, L) -> (B, L)`` against the ``(B, L)`` labels.
        ds: test set whose ``source_ids[source]`` holds one group label per sample (VQA: the
            question type).
        source: which ``source_ids`` entry to group by.
        drop: modalities to leave out of the input as well: one extra pass per name, with
            condition ``dropped = name`` (``"none"`` for the full input). Needs a model with
            ``supports_missing_modalities`` true (token fusion: ``allow_missing = true``).
        metric: task metric (default: ``exact_match`` / ``accuracy`` / ``mse``).

    Returns:
        ``{"evaluation": "test_by_type", "metric", "value", "question_type": group,
        "needs_image": 1 | 0 | None, "dropped": "none" | m}`` per group in order of first
        appearance; ``needs_image`` from ``meta["needs_image"]`` (``None`` when absent). The
        condition key is ``question_type`` whatever ``source`` is, so reports find it.
    """
    check_batch_size(batch_size)
    metric = resolve_metric(ds, metric)
    names = check_dataset(model, ds, "test_by_type")
    groups = _groups(ds, source)
    for m in drop:
        if m not in names:
            raise ValueError(f"drop: the model does not take modality {m!r}; it takes {list(names)}")
        if not getattr(model, "supports_missing_modalities", False):
            raise ValueError(
                f"drop: model {type(model).__name__} does not support missing modalities "
                f"(supports_missing_modalities is not true), so {m!r} cannot be dropped"
            )
    order = list(dict.fromkeys(groups))
    index = {g: torch.tensor([i for i, v in enumerate(groups) if v == g]) for g in order}
    needs = (ds.meta or {}).get("needs_image") or {}
    device = model_device(model)
    out: list[Record] = []
    for dropped in ("none", *drop):
        keep = tuple(m for m in names if m != dropped)
        for g in order:
            acc = accumulator(metric, ds)
            with eval_mode(model):
                for inputs, labels in ds.subset(index[g]).batches(batch_size):
                    x = to_device(restrict(inputs, keep), device)
                    acc.update(predict(model, x, labels, ds, "test_by_type"), labels)
            flag = needs.get(g)
            out.append(
                record(
                    "test_by_type",
                    metric,
                    acc.compute(),
                    question_type=g,
                    needs_image=None if flag is None else int(bool(flag)),
                    dropped=dropped,
                )
            )
    return out


# pytest would otherwise collect the function as a test when it is imported into a test module
test_by_type.__test__ = False  # type: ignore[attr-defined]
