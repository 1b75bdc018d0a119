"""MSAF attention inspection (paper 002, Figures 6-7).

Every MSAF module inside a model (a :class:`fuselab.fusion.FeatureMapOp` exposing
``attention(inputs) -> {m: (B, n_blocks_m, block_channel)}``, the per-block recalibration factors)
is found by walking ``model.named_modules()``. A forward pre-hook captures the module's input
``{m: (B, C_m, *spatial_m)}`` during an ordinary forward pass and calls ``attention`` on it; the
factors are summed over each modality's blocks and channels (paper 002: "sum the attention values
for the blocks of the same modality") and averaged over the test samples of each class. Sequence
MSAF modules with ``q`` segments return ``(B, q, n_blocks_m, block_channel)``; their factors are
averaged over the segments first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fuselab.data import MultimodalDataset
from fuselab.evaluate._common import (
    Record,
    check_batch_size,
    check_dataset,
    eval_mode,
    model_device,
    record,
    restrict,
    to_device,
)
from fuselab.fusion import FeatureMapOp


def find_attention_modules(model: nn.Module) -> dict[str, FeatureMapOp]:
    """``{qualified name: module}`` of every feature-map fusion module with an ``attention``."""
    return {
        name or type(model).__name__: m
        for name, m in model.named_modules()
        if isinstance(m, FeatureMapOp) and callable(getattr(m, "attention", None))
    }


def msaf_attention(
    model: nn.Module, ds: MultimodalDataset, *, batch_size: int = 256
) -> list[Record]:
    """Per-class mean of each MSAF module's attention summed per modality.

    Returns ``{"evaluation": "inspect_msaf", "metric": "attention", "value", "modality",
    "class", "module"}`` records (``class`` an int label, ``module`` the module's qualified
    name); classes absent from ``ds`` get no record. ``ValueError`` if the model has no MSAF.
    """
    check_batch_size(batch_size)
    names = check_dataset(model, ds, "msaf_attention")
    if ds.task != "classification":
        raise ValueError(f"msaf_attention: needs a classification dataset, got task {ds.task!r}")
    modules = find_attention_modules(model)
    if not modules:
        raise ValueError(
            f"msaf_attention: model {type(model).__name__} has no MSAF module "
            "(a fuselab.fusion.FeatureMapOp with an attention() method)"
        )
    classes = int(ds.num_classes or 0)
    sums: dict[tuple[str, str], Tensor] = {}
    counts = torch.zeros(classes, dtype=torch.float64)
    current: dict[str, Tensor] = {}

    def hook_for(qual: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            inputs = args[0] if args else next(iter(kwargs.values()))
            att = module.attention(inputs)  # type: ignore[operator]
            if not isinstance(att, Mapping):
                raise TypeError(
                    f"msaf_attention: {qual}.attention() must return a dict of tensors, "
                    f"got {type(att).__name__}"
                )
            labels = current["labels"]
            for m, a in att.items():
                a = a.detach().double()
                if a.dim() == 4:  # sequence MSAF: (B, q segments, blocks, C) -> mean over segments
                    a = a.mean(1)
                per_sample = a.reshape(a.shape[0], -1).sum(1).cpu()
                key = (qual, m)
                if key not in sums:
                    sums[key] = torch.zeros(classes, dtype=torch.float64)
                sums[key].index_add_(0, labels, per_sample)

        return hook

    handles = [
        mod.register_forward_pre_hook(hook_for(q), with_kwargs=True) for q, mod in modules.items()
    ]
    device = model_device(model)
    try:
        with eval_mode(model):
            for inputs, labels in ds.batches(batch_size):
                current["labels"] = labels.cpu()
                counts.index_add_(0, current["labels"], torch.ones(labels.shape[0]).double())
                model(to_device(restrict(inputs, names), device))
    finally:
        for h in handles:
            h.remove()
    out = []
    for (qual, m), total in sums.items():
        for c in range(classes):
            if counts[c] > 0:
                value = float(total[c] / counts[c])
                out.append(
                    record(
                        "inspect_msaf", "attention", value, modality=m, module=qual, **{"class": c}
                    )
                )
    return out
