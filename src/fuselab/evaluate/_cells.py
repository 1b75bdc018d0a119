"""How SNR cells are evaluated: per-modality noise streams, shared batches, factorised late fusion.

A *cell* is ``{modality: linear SNR or None}`` over every dataset modality. Noise comes from one
seeded stream per modality: modality ``m`` at SNR ``s`` is the ``m``-only noisy pass
``ds.batches(batch_size, snr={m: s}, noise_generator=Generator(seed_m))``. So

* every model and every cell sees the very same noise for ``(m, s)`` (common random numbers: a grid
  row differs only by the other modality's SNR, and difference grids compare like with like);
* a cell with ``k`` noisy modalities costs ``k`` data passes (noise + ``transform``) but still one
  model pass; the dataset's ``transform`` must act per modality (AV-MNIST's does).

Late-fusion models ``P(F(G_1(x_1), G_2(x_2)))`` (``unimodal_features`` / ``fuse`` / ``predict``)
whose unimodal features depend on their own modality only (checked on real samples) are
*factorised*: ``G_m`` runs
once per ``(m, s)`` and each cell only runs ``F`` and ``P`` on cached features, so a ``K x K`` grid
costs ``2K`` encoder passes instead of ``K^2``. Results equal the unfactorised evaluation (same
noise, same per-sample arithmetic).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from fuselab import device as D
from fuselab.data import MultimodalDataset
from fuselab.evaluate._common import (
    accumulator,
    check_output,
    eval_mode,
    model_device,
    model_modalities,
    predict,
    restrict,
    to_device,
)

Cell = Mapping[str, float | None]


def stream_seed(seed: int, ds: MultimodalDataset, modality: str) -> int:
    """Seed of modality ``modality``'s noise stream (depends on its position in ``ds``)."""
    return seed * 1_000_003 + ds.names.index(modality) + 1


def modality_batches(
    ds: MultimodalDataset, m: str, snr: float | None, batch_size: int, seed: int
) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
    """Batches of modality ``m`` alone (only its ``transform`` runs), noised from its stream."""
    gen = None if snr is None else torch.Generator().manual_seed(stream_seed(seed, ds, m))
    return ds.select([m]).batches(batch_size, snr={m: snr}, noise_generator=gen)


def noisy_batches(
    ds: MultimodalDataset, cell: Cell, batch_size: int, seed: int
) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
    """Model-ready batches of ``ds`` with each modality noised from its own stream.

    The clean modalities come from one un-noised pass, each noisy one from its own one-modality
    pass, so every modality is still transformed exactly once per batch.
    """
    clean = [m for m in ds.names if cell.get(m) is None]
    noisy = [m for m in ds.names if cell.get(m) is not None]
    streams: list[tuple[list[str], Iterator[tuple[dict[str, Tensor], Tensor]]]] = []
    if clean:
        streams.append((clean, ds.select(clean).batches(batch_size)))
    streams += [([m], modality_batches(ds, m, cell[m], batch_size, seed)) for m in noisy]
    for parts in zip(*(it for _, it in streams), strict=True):
        inputs: dict[str, Tensor] = {}
        for (names, _), (x, _) in zip(streams, parts, strict=True):
            inputs.update({m: x[m] for m in names})
        yield {m: inputs[m] for m in ds.names}, parts[0][1]


@contextlib.contextmanager
def _eval_all(models: Mapping[str, nn.Module]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for m in models.values():
            stack.enter_context(eval_mode(m))
        yield


def why_not_factorisable(model: nn.Module, ds: MultimodalDataset) -> str | None:
    """``None`` if ``model`` can be factorised on ``ds``, else the reason.

    Checked on real inputs: features of each modality must not change when the other modalities
    are shuffled across the batch (MSAF/MMTM points or Pro-Fusion feedback couple them), and
    ``predict(fuse(unimodal_features(x)))`` must reproduce ``model(x)``.
    """
    return _check_factorisable(model, ds)[0]


_PROBE_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError)


def _check_factorisable(model: nn.Module, ds: MultimodalDataset) -> tuple[str | None, bool]:
    """:func:`check_factorisable` on the first 16 clean samples of ``ds``."""
    names = model_modalities(model, ds)
    x, _ = next(ds.batches(min(len(ds), 16)))
    return check_factorisable(model, to_device(restrict(x, names), model_device(model)))


def check_factorisable(model: nn.Module, x: Mapping[str, Tensor]) -> tuple[str | None, bool]:
    """``(reason it cannot be factorised or None, whether features run one modality at a time)``.

    ``x``: a few model-ready samples ``{m: (n, *shape_m)}``, ``n >= 2``, on the model's device.
    "One modality at a time": ``unimodal_features`` accepts the other modalities as a single
    stub sample and still returns the full batch for the modality of interest, so a noisy pass
    of one modality runs only that modality's encoder.
    """
    for attr in ("unimodal_features", "fuse", "predict"):
        if not callable(getattr(model, attr, None)):
            return f"it has no {attr}() method", False
    x = dict(x)
    names = tuple(x)
    if next(iter(x.values())).shape[0] < 2:
        return "fewer than 2 samples to check feature independence", False

    def close(a: Tensor, b: Tensor) -> bool:
        return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)

    features: Callable[[dict[str, Tensor]], dict[str, Tensor]] = model.unimodal_features  # type: ignore[assignment]
    with eval_mode(model):
        feats = features(x)
        if not isinstance(feats, Mapping) or set(feats) != set(names):
            return "unimodal_features() does not return one tensor per model modality", False
        for m in names:
            shuffled = {k: (v if k == m else v.roll(1, 0)) for k, v in x.items()}
            if not close(features(shuffled)[m], feats[m]):
                return f"its {m!r} features depend on the other modalities", False
        if not close(model.predict(model.fuse(feats)), model(x)):  # type: ignore[operator]
            return "predict(fuse(unimodal_features(x))) differs from model(x)", False
        narrow = True
        for m in names:
            stub = {k: (v if k == m else v[:1]) for k, v in x.items()}
            try:
                narrow = narrow and close(features(stub)[m], feats[m])
            except _PROBE_ERRORS:
                narrow = False
    return None, narrow


def _factorised(
    models: Mapping[str, nn.Module],
    narrow: Mapping[str, bool],
    ds: MultimodalDataset,
    cells: Sequence[Cell],
    metric: str,
    batch_size: int,
    seed: int,
    who: str,
    bar: tqdm,
) -> dict[str, list[float]]:
    passes: list[tuple[str, float]] = []
    for cell in cells:
        for m, s in cell.items():
            if s is not None and (m, s) not in passes:
                passes.append((m, s))
    bar.total = (bar.total or 0) + 1 + len(passes)
    bar.refresh()
    needs = {name: model_modalities(model, ds) for name, model in models.items()}
    devices = {name: model_device(model) for name, model in models.items()}
    # feats[name][(m, s)] = (N, D_m) features of modality m at SNR s (s None: clean)
    feats: dict[str, dict[tuple[str, float | None], Tensor]] = {n: {} for n in models}
    stubs: dict[str, dict[str, Tensor]] = {}
    parts: dict[str, list[dict[str, Tensor]]] = {n: [] for n in models}
    ys = []
    for inputs, y in noisy_batches(ds, {}, batch_size, seed):
        ys.append(y)
        for name, model in models.items():
            x = to_device(restrict(inputs, needs[name]), devices[name])
            stubs.setdefault(name, {m: v[:1] for m, v in x.items()})
            parts[name].append(model.unimodal_features(x))  # type: ignore[operator]
    labels = torch.cat(ys)
    bar.update(1)
    for name in models:
        for m in needs[name]:
            feats[name][(m, None)] = torch.cat([p[m] for p in parts[name]])
    for m, s in passes:
        users = {name: model for name, model in models.items() if m in needs[name]}
        batches = (
            modality_batches(ds, m, s, batch_size, seed)
            if all(narrow[name] for name in users)
            else noisy_batches(ds, {m: s}, batch_size, seed)
        )
        chunks: dict[str, list[Tensor]] = {name: [] for name in users}
        for inputs, _ in batches:
            for name, model in users.items():
                xm = D.move_tensor(inputs[m], devices[name])
                if narrow[name]:
                    x = {**stubs[name], m: xm}
                else:
                    x = to_device(restrict(inputs, needs[name]), devices[name])
                chunks[name].append(model.unimodal_features(x)[m])  # type: ignore[operator]
        for name in users:
            feats[name][(m, s)] = torch.cat(chunks[name])
        bar.update(1)
    results: dict[str, list[float]] = {name: [] for name in models}
    for cell in cells:
        for name, model in models.items():
            chosen = {m: feats[name][(m, cell.get(m))] for m in needs[name]}
            acc = accumulator(metric, ds)
            for i in range(0, len(labels), batch_size):
                chunk = {m: f[i : i + batch_size] for m, f in chosen.items()}
                out = model.predict(model.fuse(chunk))  # type: ignore[operator]
                y = labels[i : i + batch_size]
                acc.update(check_output(out, y, ds, f"{who} (model {name!r})"), y)
            results[name].append(acc.compute())
    return results


def _direct(
    models: Mapping[str, nn.Module],
    ds: MultimodalDataset,
    cells: Sequence[Cell],
    metric: str,
    batch_size: int,
    seed: int,
    who: str,
    bar: tqdm,
) -> dict[str, list[float]]:
    bar.total = (bar.total or 0) + len(cells)
    bar.refresh()
    results: dict[str, list[float]] = {name: [] for name in models}
    needs = {name: model_modalities(model, ds) for name, model in models.items()}
    devices = {name: model_device(model) for name, model in models.items()}
    for cell in cells:
        accs = {name: accumulator(metric, ds) for name in models}
        for inputs, labels in noisy_batches(ds, cell, batch_size, seed):
            for name, model in models.items():
                x = to_device(restrict(inputs, needs[name]), devices[name])
                out = predict(model, x, labels, ds, f"{who} (model {name!r})")
                accs[name].update(out, labels)
        for name in models:
            results[name].append(accs[name].compute())
        bar.update(1)
    return results


def evaluate_cells(
    models: Mapping[str, nn.Module],
    ds: MultimodalDataset,
    cells: Sequence[Cell],
    metric: str,
    *,
    batch_size: int,
    seed: int,
    who: str,
    factorize: bool | None = None,
    progress: bool = False,
) -> dict[str, list[float]]:
    """Metric of every model in every cell (``factorize``: None = where possible, True, False).

    ``progress`` shows a tqdm bar over the test-set passes (cells, or feature passes).
    """
    fast: dict[str, nn.Module] = {}
    slow: dict[str, nn.Module] = {}
    narrow: dict[str, bool] = {}
    reason: str | None
    for name, model in models.items():
        if factorize is False:
            reason, narrow[name] = "factorize=False", False
        else:
            reason, narrow[name] = _check_factorisable(model, ds)
        if factorize is True and reason is not None:
            raise ValueError(
                f"{who}: factorize=True but model {name!r} cannot be factorised: {reason}"
            )
        (fast if reason is None else slow)[name] = model
    results: dict[str, list[float]] = {}
    with _eval_all(models), tqdm(desc=who, unit="pass", disable=not progress, leave=False) as bar:
        if fast:
            results.update(_factorised(fast, narrow, ds, cells, metric, batch_size, seed, who, bar))
        if slow:
            results.update(_direct(slow, ds, cells, metric, batch_size, seed, who, bar))
    return {name: results[name] for name in models}
