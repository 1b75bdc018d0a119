"""Accuracy over a grid of per-modality signal-to-noise ratios (paper 000, Figures 1-2).

A *grid* is any sequence of linear SNRs, ``None`` meaning the original (clean) input. The default
is fuselab's ten levels: the original plus 0.125 .. 2 in half-octave steps, ordered clean -> noisy::

    (None, 2, 1.414, 1, 0.707, 0.5, 0.354, 0.25, 0.177, 0.125)

so the noisy part is equally spaced in ``log2(snr)`` (what robustness areas integrate over).
Paper 000 tests on a 10 x 10 grid ("100 different audio-visual SNR regimes") whose values its text
does not list; the SNRs it names (2, 1, 0.5, 0.25, 0.125 and "Orig") are octave steps, so its
reproduction passes an octave list (``reproductions/000-early-fusion``).

Every cell is one pass of the test set through the model; noise comes from
``ds.batches(snr=..., noise_generator=...)``, vectorised per batch, with one seeded stream per
modality (see ``_cells``): every model and every cell sees the very same noise for a given
(modality, SNR), so differences between cells and between models are not blurred by different noise
draws. Same seed and batch size => same noise. Late-fusion models are factorised automatically
(``1 + 2 (K - 1)`` encoder passes for a ``K x K`` grid instead of ``K^2``), with identical
results. Record-level helpers (curves read off a grid, difference grids) are in ``grid_records``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from torch import nn

from fuselab.data import MultimodalDataset
from fuselab.evaluate._cells import evaluate_cells
from fuselab.evaluate._common import (
    Record,
    check_batch_size,
    check_dataset,
    is_floating,
    model_modalities,
    record,
    resolve_metric,
)

DEFAULT_SNRS: tuple[float | None, ...] = (
    None,
    *(2.0 ** (1 - k / 2) for k in range(9)),
)
"""fuselab's default test grid: original (``None``) + 0.125 .. 2 (half-octave steps), clean -> noisy."""

SnrGrid = Sequence[float | None]


def check_snr_value(v: object, what: str) -> float | None:
    """``None`` (original) or a finite positive linear SNR as float; ``ValueError`` otherwise."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"{what}: expected a float SNR or None, got {v!r}")
    if not math.isfinite(v) or v <= 0:
        raise ValueError(
            f"{what}: SNRs must be finite positive linear power ratios (None = original), got {v!r}"
        )
    return float(v)


def check_noisable(ds: MultimodalDataset, m: str, what: str) -> None:
    """``ValueError`` when modality ``m`` of ``ds`` holds integers (token ids): white noise at a
    linear SNR is defined for floating-point signals only."""
    if not is_floating(ds, m):
        floating = [k for k in ds.names if is_floating(ds, k)]
        raise ValueError(
            f"{what}: modality {m!r} of {ds.name!r} holds {ds.modalities[m].dtype} token ids; "
            f"white noise applies to floating-point modalities only: {floating}"
        )


def check_grid(snrs: SnrGrid, what: str = "snrs") -> tuple[float | None, ...]:
    """Validate a grid: non-empty, every value ``None`` or a finite positive float, no repeats."""
    if isinstance(snrs, str | bytes) or not isinstance(snrs, Sequence):
        raise TypeError(
            f"{what}: expected a sequence of linear SNRs (None = original), got {snrs!r}"
        )
    if len(snrs) == 0:
        raise ValueError(f"{what}: the SNR grid is empty")
    out = [check_snr_value(v, f"{what}[{i}]") for i, v in enumerate(snrs)]
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated SNR values in {list(snrs)}")
    return tuple(out)


def _grid_modalities(
    model: nn.Module, ds: MultimodalDataset, modalities: Sequence[str] | None, n: int | None
) -> tuple[str, ...]:
    needed = model_modalities(model, ds)
    # token ids (int) cannot take white noise: the default noises the floating modalities only
    noisable = [m for m in needed if m in ds.names and is_floating(ds, m)]
    names = tuple(modalities) if modalities is not None else tuple(noisable)
    for m in names:
        if m not in ds.names:
            raise ValueError(
                f"modalities: dataset {ds.name!r} has no modality {m!r}; available: {list(ds.names)}"
            )
        if m not in needed:
            raise ValueError(
                f"modalities: the model does not take modality {m!r}; it takes {list(needed)}"
            )
        check_noisable(ds, m, "modalities")
    if not names:
        raise ValueError(
            f"modalities: the model's modalities {list(needed)} hold no floating-point input to "
            "add white noise to (integer token ids cannot be noised)"
        )
    if n is not None and len(names) != n:
        raise ValueError(
            f"modalities: an SNR grid noises exactly {n} modalities, got {list(names)} "
            f"(floating modalities of the model: {noisable}); pass modalities=(a, b)"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"modalities: repeated names in {list(names)}")
    return names


def _full_snr(
    ds: MultimodalDataset, partial: Mapping[str, float | None]
) -> dict[str, float | None]:
    return {m: partial.get(m) for m in ds.names}


def snr_grids(
    models: Mapping[str, nn.Module],
    ds: MultimodalDataset,
    snrs: SnrGrid | Mapping[str, SnrGrid] = DEFAULT_SNRS,
    *,
    modalities: Sequence[str] | None = None,
    metric: str | None = None,
    batch_size: int = 512,
    seed: int = 0,
    factorize: bool | None = None,
    progress: bool = False,
) -> dict[str, list[Record]]:
    """SNR grid of several models at once; every model sees identical noisy batches.

    Args:
        models: ``{name: model}``; each takes ``{m: (B, *shape_m)}`` and returns ``(B, classes)``.
        ds: test set; must hold every modality the models need.
        snrs: one grid for both noised modalities, or ``{modality: grid}``.
        modalities: the two noised modalities (default: the models' two modalities).
        metric: ``accuracy`` (classification default), ``macro_f1``, ``mse`` (regression
            default), ``mae``.
        batch_size: evaluation batch size (noise is drawn per batch: keep it fixed to compare).
        seed: seeds the noise of every cell.
        factorize: evaluate late-fusion models from cached unimodal features (``None``: for
            every model where that is exact, checked on the data; ``False``: never; ``True``:
            required, ``ValueError`` naming the reason otherwise).
        progress: show a progress bar over the test-set passes.

    Returns:
        ``{name: records}``, one record per cell: ``{"evaluation": "snr_grid", "metric": metric,
        "value": v, "snr_<a>": snr_a, "snr_<b>": snr_b}`` (``None`` = original).
    """
    if not models:
        raise ValueError("snr_grids: models is empty")
    check_batch_size(batch_size)
    metric = resolve_metric(ds, metric)
    first = next(iter(models.values()))
    for name, model in models.items():
        check_dataset(model, ds, f"snr_grid (model {name!r})")
    names = _grid_modalities(first, ds, modalities, 2)
    for model in models.values():
        _grid_modalities(model, ds, names, 2)
    grids = _per_modality_grids(snrs, names)
    pairs = list(itertools.product(*(grids[m] for m in names)))
    cells = [_full_snr(ds, dict(zip(names, p, strict=True))) for p in pairs]
    values = evaluate_cells(
        models,
        ds,
        cells,
        metric,
        batch_size=batch_size,
        seed=seed,
        who="snr_grid",
        factorize=factorize,
        progress=progress,
    )
    return {
        name: [
            record("snr_grid", metric, v, **{f"snr_{m}": s for m, s in zip(names, p, strict=True)})
            for p, v in zip(pairs, vals, strict=True)
        ]
        for name, vals in values.items()
    }


def snr_grid(
    model: nn.Module,
    ds: MultimodalDataset,
    snrs: SnrGrid | Mapping[str, SnrGrid] = DEFAULT_SNRS,
    *,
    modalities: Sequence[str] | None = None,
    metric: str | None = None,
    batch_size: int = 512,
    seed: int = 0,
    factorize: bool | None = None,
    progress: bool = False,
) -> list[Record]:
    """Metric of ``model`` in every ``(snr_a, snr_b)`` cell of the grid (see :func:`snr_grids`)."""
    return snr_grids(
        {"model": model},
        ds,
        snrs,
        modalities=modalities,
        metric=metric,
        batch_size=batch_size,
        seed=seed,
        factorize=factorize,
        progress=progress,
    )["model"]


def _per_modality_grids(
    snrs: SnrGrid | Mapping[str, SnrGrid], names: Sequence[str]
) -> dict[str, tuple[float | None, ...]]:
    if isinstance(snrs, Mapping):
        for m in names:
            if m not in snrs:
                raise ValueError(f"snrs: no grid given for modality {m!r}; got {sorted(snrs)}")
        return {m: check_grid(snrs[m], f"snrs[{m!r}]") for m in names}
    grid = check_grid(snrs)
    return {m: grid for m in names}


def snr_curves(
    model: nn.Module,
    ds: MultimodalDataset,
    snrs: SnrGrid = DEFAULT_SNRS,
    *,
    modalities: Sequence[str] | None = None,
    include_all: bool = True,
    metric: str | None = None,
    batch_size: int = 512,
    seed: int = 0,
    factorize: bool | None = None,
    progress: bool = False,
) -> list[Record]:
    """Metric vs SNR with one modality noised at a time (others original), and all together.

    Returns records ``{"evaluation": "snr_curve", "metric", "value", "modality": m | "all",
    "snr": s}`` in grid order, per modality. With the same ``seed`` and ``batch_size`` the values
    equal the matching cells of :func:`snr_grid` (same noise draws).
    """
    check_batch_size(batch_size)
    metric = resolve_metric(ds, metric)
    check_dataset(model, ds, "snr_curves")
    names = _grid_modalities(model, ds, modalities, None)
    grid = check_grid(snrs)
    curves: list[tuple[str, float | None, dict[str, float | None]]] = []
    for m in names:
        curves += [(m, s, _full_snr(ds, {m: s})) for s in grid]
    if include_all and len(names) > 1:
        curves += [("all", s, _full_snr(ds, dict.fromkeys(names, s))) for s in grid]
    vals = evaluate_cells(
        {"model": model},
        ds,
        [c for _, _, c in curves],
        metric,
        batch_size=batch_size,
        seed=seed,
        who="snr_curves",
        factorize=factorize,
        progress=progress,
    )["model"]
    return [
        record("snr_curve", metric, v, modality=m, snr=s)
        for (m, s, _), v in zip(curves, vals, strict=True)
    ]
