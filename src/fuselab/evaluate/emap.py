"""EMAP: the empirical multimodally-additive projection of a model (Hessel & Lee 2020).

For a two-modality model ``f(a, b)`` with logits ``(C,)`` and samples ``(a_i, b_i)``, i = 1..N::

    f~(a_i, b_i) = mean_j f(a_i, b_j) + mean_j f(a_j, b_i) - mean_{j,k} f(a_j, b_k)

the best additive approximation ``f_A(a) + f_B(b) + mu`` of ``f`` on the empirical distribution
(lecture 003, "measuring non-additive interactions"). If ``f`` is additive, ``f~ = f`` exactly; if
``f`` only uses the interaction of the two modalities (an XOR), ``f~`` is constant and its accuracy
falls to chance. The accuracy gap between ``f`` and ``f~`` measures how much the model's accuracy
relies on cross-modal interactions.

The exact projection costs ``N^2`` forward passes (each pair evaluated once: its row and column
means give both marginals); ``reference=K`` estimates the expectations over ``K`` random reference
samples instead (``2 N K`` passes), which is still exact for additive models.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from fuselab import device as D
from fuselab.data import MultimodalDataset
from fuselab.evaluate._cells import check_factorisable
from fuselab.evaluate._common import (
    MetricAccumulator,
    Record,
    check_batch_size,
    check_dataset,
    check_output,
    eval_mode,
    higher_is_better,
    model_device,
    record,
    resolve_metric,
    restrict,
    to_device,
)
from fuselab.evaluate.bootstrap import check_bootstrap, paired_bootstrap


def _pair_means(
    model: Callable[[dict[str, Tensor]], Tensor],
    names: tuple[str, str],
    fixed_name: str,
    fixed: Tensor,
    ref: Tensor,
    batch_size: int,
) -> tuple[Tensor, Tensor]:
    """Row and column means of ``f[i, j] = model({fixed_name: fixed[i], other: ref[j]})``.

    Returns ``(mean_j f[i, j]: (n, C), mean_i f[i, j]: (r, C))`` in float64; with ``ref`` = every
    sample of the other modality the column means are the other modality's marginal, so the
    exact projection needs the ``N^2`` pairs only once.
    """
    other = names[1] if fixed_name == names[0] else names[0]
    n, r = fixed.shape[0], ref.shape[0]
    rows = max(1, batch_size // r)
    cols = min(r, batch_size)
    chunks: list[Tensor] = []
    col_total: Tensor | None = None
    for i0 in range(0, n, rows):
        xi = fixed[i0 : i0 + rows]
        c = xi.shape[0]
        total: Tensor | None = None
        for j0 in range(0, r, cols):
            yj = ref[j0 : j0 + cols]
            k = yj.shape[0]
            pair = {
                fixed_name: xi.repeat_interleave(k, dim=0),
                other: yj.repeat(c, *([1] * (yj.dim() - 1))),
            }
            logits = model({m: pair[m] for m in names})
            if (
                not isinstance(logits, Tensor)
                or logits.dim() not in (1, 2)
                or logits.shape[0] != c * k
            ):
                got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                raise ValueError(
                    f"emap_logits: the model must return (B, classes) for B = {c * k} pairs, "
                    f"got {got}"
                )
            grid = logits.double().reshape(c, k, -1)
            part = grid.sum(1)
            total = part if total is None else total + part
            if col_total is None:
                col_total = grid.new_zeros(r, grid.shape[-1])
            col_total[j0 : j0 + k] += grid.sum(0)
        assert total is not None
        chunks.append(total / r)
    assert col_total is not None
    return torch.cat(chunks), col_total / n


def _fused_head(model: nn.Module) -> Callable[[dict[str, Tensor]], Tensor]:
    """Logits from cached unimodal features: ``predict(fuse(features))``."""

    def head(features: dict[str, Tensor]) -> Tensor:
        return model.predict(model.fuse(features))  # type: ignore[operator]

    return head


def emap_logits(
    model: nn.Module,
    inputs: Mapping[str, Tensor],
    *,
    reference: int | None = None,
    seed: int = 0,
    batch_size: int = 4096,
    factorize: bool | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """EMAP projection of ``model``'s logits on ``inputs`` (exactly two modalities).

    Args:
        model: ``{a: (B, *shape_a), b: (B, *shape_b)} -> (B, classes)``.
        inputs: model-ready ``{a: (N, *shape_a), b: (N, *shape_b)}``.
        reference: estimate the expectations over this many random samples (``None``: all N,
            the exact projection, ``N^2`` forward passes).
        seed: seeds the choice of reference samples (as every evaluation's ``seed``).
        batch_size: pairs per forward pass.
        factorize: for late-fusion models whose unimodal features depend on their own modality
            only (checked as for :func:`snr_grid`), run each encoder once per sample and evaluate
            the ``N^2`` pairs with ``predict(fuse(...))`` on cached features (``None``: where
            possible; ``True``: required; ``False``: never). Same numbers, far cheaper.
        generator: deprecated (one release): a ``torch.Generator`` used instead of ``seed``.

    Returns:
        ``(N, classes)`` projected logits, in the model output's dtype.
    """
    if generator is not None:
        warnings.warn("emap_logits(generator=...) is deprecated; pass seed=<int>",
                      DeprecationWarning, stacklevel=2)
    else:
        generator = torch.Generator().manual_seed(seed)
    return _projection(model, inputs, reference, generator, batch_size, factorize)


def _projection(
    model: nn.Module,
    inputs: Mapping[str, Tensor],
    reference: int | None,
    generator: torch.Generator,
    batch_size: int,
    factorize: bool | None,
) -> Tensor:
    check_batch_size(batch_size)
    if not isinstance(inputs, Mapping) or len(inputs) != 2:
        got = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__
        raise ValueError(f"emap_logits: needs exactly two named modalities, got {got}")
    first, second = inputs
    names = (first, second)
    a, b = inputs[first], inputs[second]
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"emap_logits: modality {names[0]!r} has {a.shape[0]} samples, "
            f"modality {names[1]!r} has {b.shape[0]}"
        )
    n = int(a.shape[0])
    if n == 0:
        raise ValueError("emap_logits: no samples")
    if reference is not None and (not isinstance(reference, int) or reference <= 0):
        raise ValueError(f"reference must be a positive int or None, got {reference!r}")
    device = model_device(model)
    a, b = D.move_tensor(a, device), D.move_tensor(b, device)
    ref = (
        torch.arange(n)
        if reference is None or reference >= n
        else torch.randperm(n, generator=generator)[:reference]
    ).to(device)
    pairs_of: Callable[[dict[str, Tensor]], Tensor] = model
    with eval_mode(model):
        dtype = model({first: a[:1], second: b[:1]}).dtype
        if factorize is not False:
            reason, _ = check_factorisable(model, {first: a[:16], second: b[:16]})
            if reason is None:
                feats = [
                    model.unimodal_features({first: a[i : i + 512], second: b[i : i + 512]})  # type: ignore[operator]
                    for i in range(0, n, 512)
                ]
                a, b = (torch.cat([f[m] for f in feats]) for m in names)
                pairs_of = _fused_head(model)
            elif factorize:
                raise ValueError(f"emap_logits: factorize=True but the model cannot be: {reason}")
        f_a, cols = _pair_means(pairs_of, names, first, a, b[ref], batch_size)  # (N, C)
        if len(ref) == n:  # exact: the column means of the same N x N pairs are f_b
            f_b = cols
        else:
            f_b = _pair_means(pairs_of, names, second, b, a[ref], batch_size)[0]  # (N, C)
    # mean_{j,k in R} f(a_j, b_k) = mean_{j in R} f_a[j], since f_a already averages over b_R.
    mu = f_a[ref].mean(0, keepdim=True)
    return (f_a + f_b - mu).to(dtype)


def _gather(
    ds: MultimodalDataset, names: tuple[str, ...], batch_size: int
) -> tuple[dict[str, Tensor], Tensor]:
    parts: dict[str, list[Tensor]] = {m: [] for m in names}
    labels: list[Tensor] = []
    for inputs, y in ds.batches(batch_size):
        for m in names:
            parts[m].append(inputs[m])
        labels.append(y)
    return {m: torch.cat(v) for m, v in parts.items()}, torch.cat(labels)


def emap(
    model: nn.Module,
    ds: MultimodalDataset,
    *,
    max_samples: int | None = 1000,
    reference: int | str | None = "auto",
    metric: str | None = None,
    seed: int = 0,
    batch_size: int = 4096,
    factorize: bool | None = None,
    bootstrap: int = 1000,
    ci: float = 0.95,
) -> list[Record]:
    """Accuracy (or the task metric) of the model and of its EMAP projection on ``ds``.

    ``max_samples`` random test samples (``None``: all) are projected. ``reference="auto"``:
    the exact projection for factorisable late-fusion models (``max_samples`` encoder passes and
    ``max_samples ** 2`` fusion + head evaluations), else 64 reference samples
    (``2 * 64 * max_samples`` forward passes); an int or ``None`` (exact) as in
    :func:`emap_logits`.

    ``bootstrap=B`` (> 0): a paired percentile bootstrap interval of the gap at coverage ``ci``
    over ``B`` resamples of the projected test samples (with replacement; the model and its
    projection held fixed), drawn from the same seeded generator after the sample and reference
    draws (:mod:`fuselab.evaluate.bootstrap`). ``bootstrap=0``: no interval.

    Returns:
        ``{"evaluation": "emap", "metric", "value", "projection": "full" | "emap"}`` records,
        ``{"evaluation": "emap", "metric": "emap_gap", "value", "projection": None}`` where the gap
        is full minus EMAP (sign flipped for error metrics, so > 0 means interactions help), and
        with ``bootstrap > 0`` ``"emap_gap_lo"`` / ``"emap_gap_hi"`` records (``projection: None``,
        ``ci``, ``resamples``), the interval's bounds.
    """
    check_batch_size(batch_size)
    check_bootstrap(bootstrap, ci)
    if ds.task == "generation":
        # EMAP averages output scores over pairs; generated token ids cannot be averaged
        raise ValueError(
            f"emap: needs a classification or regression dataset, {ds.name!r} has task 'generation'"
        )
    metric = resolve_metric(ds, metric)
    names = check_dataset(model, ds, "emap")
    if len(names) != 2:
        raise ValueError(f"emap: needs a two-modality model, the model takes {list(names)}")
    gen = torch.Generator().manual_seed(seed)
    if max_samples is not None and max_samples < len(ds):
        ds = ds.subset(torch.randperm(len(ds), generator=gen)[:max_samples].sort().values)
    inputs, labels = _gather(ds, names, batch_size)
    device = model_device(model)
    if reference == "auto":
        probe = to_device({m: inputs[m][:16] for m in names}, device)
        exact = factorize is not False and check_factorisable(model, probe)[0] is None
        reference = None if exact else 64
    if isinstance(reference, str):
        raise ValueError(f"reference must be 'auto', a positive int or None, got {reference!r}")
    with eval_mode(model):
        full = torch.cat(
            [
                model(to_device({m: inputs[m][i : i + batch_size] for m in names}, device))
                for i in range(0, len(labels), batch_size)
            ]
        )
    full = check_output(full, labels, ds, "emap")
    proj = check_output(
        # one generator for the sample subset, the reference draw and the bootstrap
        _projection(model, restrict(inputs, names), reference, gen, batch_size, factorize),
        labels,
        ds,
        "emap",
    )
    return _records(full, proj, labels, ds, metric, bootstrap, ci, gen)


def _records(full: Tensor, proj: Tensor, labels: Tensor, ds: MultimodalDataset, metric: str,
             bootstrap: int, ci: float, gen: torch.Generator) -> list[Record]:
    """The metric of the model and of its projection, their gap and its bootstrap interval."""
    values = {}
    for name, out in (("full", full), ("emap", proj)):
        acc = MetricAccumulator(metric, ds.num_classes)
        acc.update(out, labels)
        values[name] = acc.compute()
    sign = 1.0 if higher_is_better(metric) else -1.0
    recs = [
        record("emap", metric, values["full"], projection="full"),
        record("emap", metric, values["emap"], projection="emap"),
        record("emap", "emap_gap", sign * (values["full"] - values["emap"]), projection=None),
    ]
    if bootstrap > 0:
        lo, hi = paired_bootstrap(
            full.cpu(),
            proj.cpu(),
            labels.cpu(),
            lambda: MetricAccumulator(metric, ds.num_classes),
            resamples=bootstrap,
            ci=ci,
            generator=gen,
            sign=sign,
        )
        for name, v in (("emap_gap_lo", lo), ("emap_gap_hi", hi)):
            recs.append(
                record("emap", name, v, projection=None, ci=float(ci), resamples=bootstrap)
            )
    return recs
