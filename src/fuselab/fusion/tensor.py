"""Tensor Fusion Network (Zadeh et al. 2017): outer product of ``[x_m, 1]``, flattened, linear."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.multilinear import multilinear
from fuselab.fusion.registry import register


def append_one(x: Tensor) -> Tensor:
    """``(..., D)`` -> ``(..., D + 1)`` with a trailing constant 1 (keeps unimodal terms)."""
    return torch.cat([x, x.new_ones((*x.shape[:-1], 1))], dim=-1)


@register("tensor")
class TensorFusion(FusionOp):
    """Tensor fusion ``z = W vec([x_1; 1] ⊗ ... ⊗ [x_M; 1]) + b``.

    The appended 1 keeps every lower-order interaction (unimodal and bimodal terms) in the
    tensor. ``W`` has ``out_dim * prod_m (D_m + 1)`` entries, so this grows quickly; ``lowrank``
    is the factorised version. The product ``W vec(...)`` is computed by
    :func:`~fuselab.fusion.multilinear.multilinear` without forming the full outer product when a
    partial contraction writes less (e.g. at ``(512, 512) -> 128``).

    Args:
        in_dims: ``{modality: D_m}``; the order fixes the flattening order of the tensor.
        out_dim: output width.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
        ``self.linear.weight``: ``(out_dim, prod_m (D_m + 1))``.
    """

    def __init__(self, in_dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(in_dims, out_dim)
        self.tensor_dim = math.prod(d + 1 for d in in_dims.values())
        self.linear = nn.Linear(self.tensor_dim, out_dim)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        sizes = [d + 1 for d in self.in_dims.values()]
        weight = self.linear.weight.view(self.out_dim, *sizes)
        xs = [append_one(inputs[m]) for m in self.modalities]
        return multilinear(xs, weight, self.linear.bias)
