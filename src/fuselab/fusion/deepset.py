"""Deep-set fusion (TorchMultimodal ``DeepsetFusionModule``): pool over modalities, then an MLP."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register

POOLS = ("sum", "mean", "max", "attention")
NORMALIZE = ("feature", "modality", "none")


@register("deepset")
class DeepsetFusion(FusionOp):
    """``z = ρ(pool_m φ_m(x_m))``, invariant to the order of the modalities (Zaheer et al. 2017).

    ``φ_m`` projects modality ``m`` to the common ``width``; ``normalize`` then L2-normalises
    every projection over its features (``feature``, TorchMultimodal's default), or each feature
    over the modalities (``modality``), or not (``none``); ``pool`` is a sum, mean or elementwise
    max over modalities, or an attention pool ``Σ_m a_m p_m`` with ``a = softmax_m(wᵀ tanh(A p_m +
    a_0) + w_0)`` (TorchMultimodal's ``apply_attention`` followed by a sum); ``ρ`` is an MLP
    ``width -> hidden -> out_dim`` with ReLU. TorchMultimodal multiplies by the attention weights
    *before* its feature-wise L2 normalisation, which divides the (positive) weights out again;
    here they weight the normalised projections, so the attention pool is not a plain sum. Where TorchMultimodal takes any MLP, fuselab fixes one hidden
    layer (``hidden``, default ``width``); it projects every modality (TorchMultimodal skips the
    projections when all widths agree unless ``use_auto_mapping``).

    Args:
        in_dims: ``{modality: D_m}``, any number of modalities.
        out_dim: output width.
        width: common projection width (default: the smallest ``D_m``, as TorchMultimodal's
            ``use_auto_mapping``).
        pool: ``sum``, ``mean``, ``max`` or ``attention``.
        normalize: ``feature``, ``modality`` or ``none``.
        hidden: width of the MLP's hidden layer (default: ``width``).

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
        :meth:`weights` (attention pool): ``(B, M)`` (``(B, T, M)``), rows sum to 1.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        out_dim: int,
        width: int | None = None,
        pool: str = "sum",
        normalize: str = "feature",
        hidden: int | None = None,
    ) -> None:
        super().__init__(in_dims, out_dim)
        if pool not in POOLS:
            raise ValueError(f"DeepsetFusion: pool must be one of {POOLS}, got {pool!r}")
        if normalize not in NORMALIZE:
            raise ValueError(
                f"DeepsetFusion: normalize must be one of {NORMALIZE}, got {normalize!r}"
            )
        width = min(in_dims.values()) if width is None else width
        hidden = width if hidden is None else hidden
        for name, value in (("width", width), ("hidden", hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"DeepsetFusion: {name} must be a positive int, got {value!r}")
        self.width, self.pool, self.normalize = width, pool, normalize
        self.proj = nn.ModuleDict({m: nn.Linear(d, width) for m, d in in_dims.items()})
        self.score: nn.Module | None = None
        if pool == "attention":
            # TorchMultimodal's default attention width: half the projection width.
            self.score = nn.Sequential(
                nn.Linear(width, max(width // 2, 1)), nn.Tanh(), nn.Linear(max(width // 2, 1), 1)
            )
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def _stacked(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Normalised projections ``(..., M, width)``; ``M`` in sorted-name order."""
        self.check_inputs(inputs)
        p = torch.stack([self.proj[m](inputs[m]) for m in sorted(self.in_dims)], dim=-2)
        if self.normalize == "feature":
            return F.normalize(p, dim=-1)
        if self.normalize == "modality":
            return F.normalize(p, dim=-2)
        return p

    def _attention(self, p: Tensor) -> Tensor:
        assert self.score is not None
        return torch.softmax(self.score(p), dim=-2)  # (..., M, 1)

    def weights(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Attention-pool weights ``(..., M)``, modalities in sorted-name order."""
        if self.score is None:
            raise ValueError(f"DeepsetFusion: weights() needs pool='attention', got {self.pool!r}")
        return self._attention(self._stacked(inputs)).squeeze(-1)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        p = self._stacked(inputs)
        if self.pool == "sum":
            pooled = p.sum(dim=-2)
        elif self.pool == "mean":
            pooled = p.mean(dim=-2)
        elif self.pool == "max":
            pooled = p.amax(dim=-2)
        else:
            pooled = (self._attention(p) * p).sum(dim=-2)
        return self.mlp(pooled)
