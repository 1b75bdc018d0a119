"""Missing modalities and unimodal ablation (paper 000 section 5.3).

Each modality the model takes is removed in turn, three ways, on model-ready inputs
``{m: (B, *shape_m)}``:

* ``zero``: the modality's input is all zeros (paper 000: "setting one input to zero");
* ``mean``: it is replaced by the training set's per-element mean input ``(*shape_m)``;
* ``drop``: the model is called without it, only where the model supports that (its
  ``supports_missing_modalities`` attribute is true, or, when absent, a first call without the
  modality succeeds; otherwise no ``drop`` record is produced).

``zero`` and ``mean`` apply to floating-point modalities only: an integer token-id modality (the
VQA question) has no "zero signal" (id 0 is a token, often padding) nor a mean, so it gets only a
``drop`` record (no ``zero`` / ``mean`` record, by rule). Generation models are scored by exact
match of ``model.generate`` (``metric="exact_match"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from fuselab.data import MultimodalDataset
from fuselab.evaluate._cells import noisy_batches
from fuselab.evaluate._common import (
    Record,
    accumulator,
    check_batch_size,
    check_dataset,
    eval_mode,
    is_floating,
    model_device,
    predict,
    record,
    resolve_metric,
    restrict,
    to_device,
)
from fuselab.evaluate.snr import check_noisable, check_snr_value

MODES = ("zero", "mean", "drop")
"""How a removed modality is replaced: zeros, its training mean, or dropped from the input."""


def training_means(
    train: MultimodalDataset,
    modalities: Sequence[str],
    *,
    batch_size: int = 512,
    max_samples: int | None = None,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Per-element mean of each modality's clean model-ready input over ``train``: ``(*shape_m)``.

    ``max_samples``: average over that many random training samples only (a mean needs far fewer
    than a 56k-pair split, whose every batch would otherwise be featurised).
    """
    if max_samples is not None and max_samples < len(train):
        gen = torch.Generator().manual_seed(seed)
        train = train.subset(torch.randperm(len(train), generator=gen)[:max_samples].sort().values)
    sums: dict[str, Tensor] = {}
    n = 0
    for inputs, _ in train.select(list(modalities)).batches(batch_size):
        for m in modalities:
            s = inputs[m].double().sum(0)
            sums[m] = s if m not in sums else sums[m] + s
        n += next(iter(inputs.values())).shape[0]
    if n == 0:
        raise ValueError(f"missing_modalities: training set {train.name!r} is empty")
    return {m: (s / n).float() for m, s in sums.items()}


def _supports_drop(model: nn.Module, ds: MultimodalDataset, names: tuple[str, ...], m: str) -> bool:
    flag = getattr(model, "supports_missing_modalities", None)
    if flag is not None:
        return bool(flag)
    inputs, labels = next(ds.batches(2))
    x = {k: v for k, v in restrict(inputs, names).items() if k != m}
    try:
        with eval_mode(model):
            predict(model, to_device(x, model_device(model)), labels, ds, "missing_modalities")
    except (KeyError, ValueError, TypeError, RuntimeError):
        return False
    return True


def missing_modalities(
    model: nn.Module,
    ds: MultimodalDataset,
    *,
    train: MultimodalDataset | None = None,
    means: Mapping[str, Tensor] | None = None,
    modes: Sequence[str] = MODES,
    snr: Mapping[str, float | None] | None = None,
    metric: str | None = None,
    batch_size: int = 512,
    seed: int = 0,
    mean_samples: int | None = 5000,
) -> list[Record]:
    """Task metric with each modality zeroed / mean-replaced / dropped, plus the full input.

    Args:
        model: takes ``{m: (B, *shape_m)}`` for ``m`` in ``model.modalities``.
        ds: test set.
        train: training set for the ``mean`` mode (or pass precomputed ``means``).
        means: ``{m: (*shape_m)}`` replacement inputs for the ``mean`` mode.
        mean_samples: the training mean is taken over this many random training samples
            (``None``: all).
        modes: any of ``zero``, ``mean``, ``drop``.
        snr: optional test noise on the inputs before removal (paper 000 tests its unimodal
            models across SNRs), seeded by ``seed`` exactly as in :func:`snr_grid`.

    Returns:
        ``{"evaluation": "missing_modality", "metric", "value", "modality", "mode"}`` records;
        the full input is ``modality="none", mode="none"``.
    """
    check_batch_size(batch_size)
    metric = resolve_metric(ds, metric)
    names = check_dataset(model, ds, "missing_modalities")
    floating = tuple(m for m in names if is_floating(ds, m))
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"modes: unknown mode {mode!r}; allowed: {list(MODES)}")
    if "mean" in modes and means is None:
        if train is None:
            raise ValueError("missing_modalities: mode 'mean' needs train= (or means=)")
        check_dataset(model, train, "missing_modalities (train)")
        means = training_means(
            train, floating, batch_size=batch_size, max_samples=mean_samples, seed=seed
        )
    if means is not None and "mean" in modes:
        _check_means(means, ds, floating)
    if snr is not None:
        _check_snr(snr, ds)
    device = model_device(model)

    def run(edit: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None) -> float:
        acc = accumulator(metric, ds)
        with eval_mode(model):
            for inputs, labels in noisy_batches(ds, snr or {}, batch_size, seed):
                x = restrict(inputs, names)
                x = edit(x) if edit is not None else x
                out = predict(model, to_device(x, device), labels, ds, "missing_modalities")
                acc.update(out, labels)
        return acc.compute()

    out = [record("missing_modality", metric, run(None), modality="none", mode="none")]
    for m in names:
        for mode in modes:
            edit: Callable[[dict[str, Tensor]], dict[str, Tensor]]
            if mode in ("zero", "mean") and m not in floating:
                continue  # token ids: only "drop" (module docstring)
            if mode == "zero":
                edit = _replace(m, None)
            elif mode == "mean":
                assert means is not None
                edit = _replace(m, means[m])
            else:
                if not _supports_drop(model, ds, names, m):
                    continue
                edit = _drop(m)
            out.append(record("missing_modality", metric, run(edit), modality=m, mode=mode))
    return out


def _check_means(means: Mapping[str, Tensor], ds: MultimodalDataset,
                 floating: Sequence[str]) -> None:
    for m in floating:
        if m not in means:
            raise ValueError(f"means: no mean input for modality {m!r}")
        if tuple(means[m].shape) != ds.shapes[m]:
            raise ValueError(
                f"means[{m!r}]: expected shape {ds.shapes[m]}, got {tuple(means[m].shape)}"
            )


def _check_snr(snr: Mapping[str, float | None], ds: MultimodalDataset) -> None:
    for m, v in snr.items():
        if m not in ds.names:
            raise ValueError(f"snr: dataset {ds.name!r} has no modality {m!r}; "
                             f"available: {list(ds.names)}")
        if check_snr_value(v, f"snr[{m!r}]") is not None:
            check_noisable(ds, m, f"snr[{m!r}]")


def _replace(m: str, value: Tensor | None) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    def edit(x: dict[str, Tensor]) -> dict[str, Tensor]:
        y = dict(x)
        y[m] = torch.zeros_like(x[m]) if value is None else value.to(x[m]).expand_as(x[m]).clone()
        return y

    return edit


def _drop(m: str) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    def edit(x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v for k, v in x.items() if k != m}

    return edit
