"""Linear probes on Pro-Fusion's unimodal representations per unroll step (paper 001, Figure 13).

``model.step_features(inputs)`` returns one ``{m: (B, D_m)}`` per unroll step. For every step and
modality a multinomial logistic regression (standardised features, L2 penalty, full-batch L-BFGS,
deterministic) is fitted on training-set features and scored on test-set features. Rising accuracy
with the step means each unimodal representation absorbs information from the other modalities.
"""

from __future__ import annotations

import warnings

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


def _features(
    model: nn.Module, ds: MultimodalDataset, names: tuple[str, ...], batch_size: int
) -> tuple[list[dict[str, Tensor]], Tensor]:
    """Per step ``{m: (N, D_m)}`` on the CPU, and the labels ``(N,)``."""
    device = model_device(model)
    steps: list[dict[str, list[Tensor]]] = []
    labels = []
    with eval_mode(model):
        for inputs, y in ds.batches(batch_size):
            feats = model.step_features(to_device(restrict(inputs, names), device))  # type: ignore[operator]
            if not isinstance(feats, list | tuple) or not feats:
                raise TypeError(
                    "linear_probes: step_features must return a non-empty list of "
                    f"{{modality: (B, D)}} dicts, got {type(feats).__name__}"
                )
            if not steps:
                steps = [{m: [] for m in f} for f in feats]
            for k, f in enumerate(feats):
                for m, v in f.items():
                    if v.dim() != 2 or v.shape[0] != y.shape[0]:
                        raise ValueError(
                            f"linear_probes: step {k + 1} modality {m!r}: expected features "
                            f"(B, D) with B = {y.shape[0]}, got {tuple(v.shape)}"
                        )
                    steps[k][m].append(v.detach().float().cpu())
            labels.append(y)
    return [{m: torch.cat(v) for m, v in s.items()} for s in steps], torch.cat(labels)


def fit_probe(
    x: Tensor, y: Tensor, classes: int, *, l2: float = 1e-3, max_iter: int = 100
) -> nn.Linear:
    """Multinomial logistic regression on standardised ``x (N, D)``; the scaler is folded in."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    lin = nn.Linear(x.shape[1], classes)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(lin(z), y) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():  # fold standardisation: W (x - m) / s + b
        w = lin.weight / std
        lin.bias.sub_((w * mean).sum(1))
        lin.weight.copy_(w)
    return lin


def linear_probes(
    model: nn.Module,
    ds: MultimodalDataset,
    *legacy: MultimodalDataset,
    train: MultimodalDataset | None = None,
    max_train: int | None = 2000,
    max_test: int | None = 2000,
    batch_size: int = 256,
    seed: int = 0,
    max_iter: int = 100,
) -> list[Record]:
    """Probe accuracy of each unimodal representation at each unroll step (``max_iter``:
    L-BFGS iterations per probe).

    Same argument order as every evaluation: ``linear_probes(model, test, train=train)``; the
    probes are fitted on ``train`` and scored on ``ds``. The old order ``(model, train, test)``
    still works for one release, with a ``DeprecationWarning``.

    Returns ``{"evaluation": "inspect_probe", "metric": "probe_accuracy", "value", "step",
    "modality"}`` records, ``step`` counting unroll iterations from 1 (paper 001 Figure 13).
    """
    test = ds
    if legacy:
        if len(legacy) > 1 or train is not None:
            raise TypeError("linear_probes(model, test, *, train=...): too many datasets given")
        warnings.warn("linear_probes(model, train, test) is deprecated; call "
                      "linear_probes(model, test, train=train)", DeprecationWarning, stacklevel=2)
        train, test = ds, legacy[0]
    if train is None:
        raise TypeError("linear_probes: needs train=<MultimodalDataset> (the split the probes "
                        "are fitted on)")
    check_batch_size(batch_size)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"linear_probes: max_iter must be an integer >= 1, got {max_iter!r}")
    names = check_dataset(model, train, "linear_probes (train)")
    check_dataset(model, test, "linear_probes (test)")
    if not callable(getattr(model, "step_features", None)):
        raise TypeError(
            f"linear_probes: model {type(model).__name__} has no step_features(inputs) method "
            "(ProgressiveFusion has it)"
        )
    for split in (train, test):
        if split.task != "classification":
            raise ValueError(f"linear_probes: needs classification data, {split.name!r} is {split.task}")
    gen = torch.Generator().manual_seed(seed)

    def cap(split: MultimodalDataset, n: int | None) -> MultimodalDataset:
        if n is None or n >= len(split):
            return split
        return split.subset(torch.randperm(len(split), generator=gen)[:n].sort().values)

    classes = int(max(train.num_classes or 0, test.num_classes or 0))
    tr_feats, tr_y = _features(model, cap(train, max_train), names, batch_size)
    te_feats, te_y = _features(model, cap(test, max_test), names, batch_size)
    out = []
    for k, (tr, te) in enumerate(zip(tr_feats, te_feats, strict=True)):
        for m in tr:
            probe = fit_probe(tr[m], tr_y, classes, max_iter=max_iter)
            with torch.no_grad():
                acc = float((probe(te[m]).argmax(1) == te_y).double().mean())
            out.append(record("inspect_probe", "probe_accuracy", acc, step=k + 1, modality=m))
    return out
