"""Gradient blending (Wang, Tran & Feiszli 2020; lecture 003 "optimization challenges").

A late-style model gets one linear head per modality on ``model.unimodal_features(inputs)``
(``{m: (B, D_m)} -> (B, num_outputs)``) trained alongside its own multimodal output. Every head
``k`` (each modality and ``"multimodal"``) is scored on a training subset and on held-out data at
two checkpoints ``N`` and ``N + n``::

    O_N   = L_holdout(N) - L_train(N)                 overfitting
    dG_k  = L_holdout(N) - L_holdout(N + n)           generalization gained
    dO_k  = O_{N+n} - O_N                             overfitting gained
    OGR_k = |dO_k / dG_k|                             overfitting-to-generalization ratio
    w_k   ∝ max(dG_k, 0) / dO_k ** 2                  (paper eq. 6, normalised to sum to 1)

and training minimises the blended loss ``sum_k w_k * L_k``: a head that overfits more than it
generalizes gets a small weight, so its modality's encoder is pushed less towards memorising.

Where the losses come from (``TrainConfig.grad_blend_estimate``): ``"joint"`` measures the heads of
the model being trained (they share its encoders); ``"separate"`` (Wang et al.'s protocol, as in
MultiBench's ``gb_estimate``) measures one copy per head, each trained on that head's loss alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from fuselab.data import MultimodalDataset

MULTIMODAL = "multimodal"
#: Floor on ``dO ** 2`` so a head that did not overfit at all gets a large, finite weight.
EPS = 1e-8

LossFn = Callable[[Tensor, Tensor], Tensor]
Forward = Callable[[dict[str, Tensor]], Tensor]


def check_blendable(model: nn.Module) -> dict[str, int]:
    """``feature_dims`` of a model that supports gradient blending, else a ``TypeError``."""
    dims = getattr(model, "feature_dims", None)
    if not callable(getattr(model, "unimodal_features", None)) or not isinstance(dims, Mapping):
        raise TypeError(
            f"grad_blend needs a late-fusion-style model exposing unimodal_features(inputs) and "
            f"feature_dims; {type(model).__name__} has "
            f"unimodal_features={callable(getattr(model, 'unimodal_features', None))}, "
            f"feature_dims={type(dims).__name__}. Set grad_blend = 'off' for this model."
        )
    if MULTIMODAL in dims:
        raise ValueError(f"grad_blend: modality name {MULTIMODAL!r} is reserved for the fused head")
    return {str(m): int(d) for m, d in dims.items()}


def ogr(before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Overfitting-to-generalization ratio per head from ``{k: (train_loss, holdout_loss)}``."""
    out = {}
    for k, (t0, v0) in before.items():
        t1, v1 = after[k]
        d_g = v0 - v1
        d_o = (v1 - t1) - (v0 - t0)
        out[k] = abs(d_o / d_g) if d_g != 0 else math.inf
    return out


def blend_weights(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, float] | None:
    """Normalised weights ``w_k ∝ max(dG_k, 0) / dO_k**2`` (see module doc); ``None`` when no
    head generalized better at ``after`` than at ``before`` (the caller keeps its weights)."""
    if set(before) != set(after):
        raise ValueError(f"blend_weights: heads differ: {sorted(before)} vs {sorted(after)}")
    raw = {}
    for k, (t0, v0) in before.items():
        t1, v1 = after[k]
        d_g = v0 - v1
        d_o = (v1 - t1) - (v0 - t0)
        raw[k] = max(d_g, 0.0) / max(d_o * d_o, EPS) if math.isfinite(d_g + d_o) else 0.0
    total = sum(raw.values())
    if total <= 0 or not math.isfinite(total):
        return None
    return {k: v / total for k, v in raw.items()}


class GradientBlender(nn.Module):
    """Unimodal linear heads plus the per-head loss weights of gradient blending.

    Args:
        feature_dims: ``{modality: D_m}`` of ``model.unimodal_features``.
        num_outputs: width of the model output (classes, or regression targets).

    ``weights`` start uniform over ``("multimodal", *modalities)``.
    """

    def __init__(self, feature_dims: Mapping[str, int], num_outputs: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_outputs) for m, d in feature_dims.items()})
        names = [MULTIMODAL, *feature_dims]
        self.weights: dict[str, float] = {k: 1.0 / len(names) for k in names}
        #: Set when ``model.predict(model.fuse(features))`` equals ``model(inputs)``: the fused
        #: output then reuses the unimodal features instead of running the encoders again.
        self.shared_forward = False

    def head_outputs(
        self,
        model: nn.Module,
        forward: Forward,
        inputs: dict[str, Tensor],
        heads: tuple[str, ...] | None = None,
    ) -> dict[str, Tensor]:
        """``{"multimodal": forward(inputs), m: head_m(features_m)}``, each ``(B, num_outputs)``;
        only the ``heads`` named (default: all)."""
        want = set(self.weights) if heads is None else set(heads)
        out: dict[str, Tensor] = {}
        if want == {MULTIMODAL}:
            return {MULTIMODAL: forward(inputs)}
        feats = model.unimodal_features(inputs)  # type: ignore[operator]
        if MULTIMODAL in want:
            if self.shared_forward:
                out[MULTIMODAL] = model.predict(model.fuse(feats))  # type: ignore[operator]
            else:
                out[MULTIMODAL] = forward(inputs)
        for m, head in self.heads.items():
            if m not in want:
                continue
            if m not in feats:
                raise ValueError(
                    f"grad_blend: unimodal_features returned {sorted(feats)}, missing modality {m!r}"
                )
            out[m] = head(feats[m].flatten(1))
        return out

    def losses(
        self,
        model: nn.Module,
        forward: Forward,
        inputs: dict[str, Tensor],
        labels: Tensor,
        loss_fn: LossFn,
        heads: tuple[str, ...] | None = None,
    ) -> dict[str, Tensor]:
        """Per-head losses (scalars) of the ``heads`` named (default: all)."""
        outs = self.head_outputs(model, forward, inputs, heads)
        return {k: loss_fn(o, labels) for k, o in outs.items()}

    def blend(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``sum_k w_k * L_k``."""
        return torch.stack([self.weights[k] * v for k, v in losses.items()]).sum()

    @torch.no_grad()
    def measure(
        self,
        model: nn.Module,
        forward: Forward,
        batches: Iterable[tuple[dict[str, Tensor], Tensor]],
        loss_fn: LossFn,
        heads: tuple[str, ...] | None = None,
    ) -> dict[str, float]:
        """Mean loss of the ``heads`` named (default: all) over ``batches`` (eval mode)."""
        was = model.training, self.training
        model.eval()
        self.eval()
        sums: dict[str, float] = {}
        count = 0
        try:
            for x, y in batches:
                n = int(y.shape[0])
                for k, v in self.losses(model, forward, x, y, loss_fn, heads).items():
                    sums[k] = sums.get(k, 0.0) + float(v) * n
                count += n
        finally:
            model.train(was[0])
            self.train(was[1])
        if count == 0:
            raise ValueError("grad_blend: the held-out set is empty; raise grad_blend_holdout")
        return {k: v / count for k, v in sums.items()}


def split_holdout(
    data: MultimodalDataset, fraction: float, seed: int
) -> tuple[MultimodalDataset, MultimodalDataset, MultimodalDataset]:
    """``(train_rest, holdout, train_probe)``: a seeded random ``fraction`` of ``data`` held out,
    and an equally large probe of the remaining training samples to measure training loss on."""
    n = len(data)
    n_hold = max(1, round(n * fraction))
    if n_hold >= n:
        raise ValueError(
            f"train config 'grad_blend_holdout': holding out {fraction} of {n} training samples "
            f"leaves none to train on"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    rest, hold = perm[n_hold:], perm[:n_hold]
    return data.subset(rest), data.subset(hold), data.subset(rest[:n_hold])
