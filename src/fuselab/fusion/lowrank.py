"""Low-rank Multimodal Fusion (Liu et al. 2018): tensor fusion with a rank-r factorised weight."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register
from fuselab.fusion.tensor import TensorFusion


@register("lowrank")
class LowRankFusion(FusionOp):
    """Low-rank fusion ``z = sum_i w_i prod_m (W_m^(i)^T [x_m; 1]) + b``.

    This equals ``tensor`` fusion whose weight for output ``k`` is the rank-``r`` tensor
    ``sum_i w_i ⊗_m W_m^(i)[:, k]``, computed without ever forming the outer product. With a large
    enough rank any tensor-fusion weight is reproduced exactly (see :meth:`from_tensor`).

    Args:
        in_dims: ``{modality: D_m}``.
        out_dim: output width.
        rank: number of rank-one terms ``r``.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
        ``self.factors[m]``: ``(rank, D_m + 1, out_dim)``; ``self.fusion_weights``: ``(rank,)``.
    """

    def __init__(self, in_dims: Mapping[str, int], out_dim: int, rank: int = 4) -> None:
        super().__init__(in_dims, out_dim)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
            raise ValueError(f"LowRankFusion: rank must be a positive int, got {rank!r}")
        self.rank = rank
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, d + 1, out_dim)) for m, d in in_dims.items()}
        )
        self.fusion_weights = nn.Parameter(torch.empty(rank))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m, d in self.in_dims.items():
            nn.init.xavier_normal_(self.factors[m].view(self.rank * (d + 1), self.out_dim))
        nn.init.xavier_normal_(self.fusion_weights.view(1, self.rank))
        nn.init.zeros_(self.bias)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        lead = inputs[self.modalities[0]].shape[:-1]
        prod: Tensor | None = None
        for m in self.modalities:
            x = inputs[m].reshape(-1, self.in_dims[m])
            f = self.factors[m]  # (r, D + 1, out): rows 0..D-1 multiply x, row D multiplies the 1
            # [x; 1] f_i = x f_i[:D] + f_i[D] for all rank terms in one batched product over a
            # broadcast (stride-0) x: neither the [x; 1] concatenation nor a permuted copy of f
            # (which einsum made) is written. Measured 1.8x faster fwd+bwd at (64, 32) -> 128.
            h = torch.baddbmm(f[:, -1:, :], x.expand(self.rank, *x.shape), f[:, :-1, :])
            prod = h if prod is None else prod * h  # (r, N, out)
        assert prod is not None  # in_dims is non-empty (checked in FusionOp)
        z = (self.fusion_weights @ prod.flatten(1)).view(-1, self.out_dim) + self.bias
        return z.reshape(*lead, self.out_dim)

    @classmethod
    def from_tensor(cls, op: TensorFusion) -> LowRankFusion:
        """An exactly equivalent low-rank operator for a given ``tensor`` operator.

        The modality with the largest ``D_m + 1`` (the pivot) keeps the tensor weight's slices;
        every other modality gets one-hot factors, one rank-one term per index combination of
        the non-pivot modalities. The rank is ``prod_{m != pivot} (D_m + 1)`` (``min(D_1, D_2) + 1``
        for two modalities, the matrix rank bound), and the result matches ``op`` up to float
        rounding of the summation order.
        """
        names = list(op.modalities)
        sizes = [op.in_dims[m] + 1 for m in names]
        pivot = max(range(len(names)), key=lambda i: sizes[i])
        others = [i for i in range(len(names)) if i != pivot]
        rank = math.prod(sizes[i] for i in others)
        w = op.linear.weight
        new = cls(op.in_dims, op.out_dim, rank=rank).to(dtype=w.dtype, device=w.device)
        weight = op.linear.weight.detach().reshape(op.out_dim, *sizes)
        # (out, others..., pivot) -> (rank, pivot, out); rank index runs row-major over others.
        perm = [0, *(i + 1 for i in others), pivot + 1]
        pivot_factor = weight.permute(perm).reshape(op.out_dim, rank, sizes[pivot])
        with torch.no_grad():
            new.factors[names[pivot]].copy_(pivot_factor.permute(1, 2, 0))
            for i in others:
                new.factors[names[i]].zero_()
            for r, combo in enumerate(itertools.product(*(range(sizes[i]) for i in others))):
                for i, j in zip(others, combo, strict=True):
                    new.factors[names[i]][r, j, :] = 1.0
            new.fusion_weights.fill_(1.0)
            new.bias.copy_(op.linear.bias.detach())
        return new
