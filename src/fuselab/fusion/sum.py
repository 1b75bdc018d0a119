"""Additive fusion: per-modality linear maps to a common width, summed."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register


@register("sum")
class SumFusion(FusionOp):
    """Additive fusion ``z = sum_m W_m x_m + b`` (lecture 003, "additive fusion").

    Each modality gets its own bias-free linear map to ``out_dim``; one shared bias ``b`` is added
    so the operator is exactly ``W [x_1; ...; x_M] + b`` written per modality.

    Args:
        in_dims: ``{modality: D_m}``.
        out_dim: common width of the projections and of the output.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
    """

    def __init__(self, in_dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(in_dims, out_dim)
        self.proj = nn.ModuleDict(
            {m: nn.Linear(d, out_dim, bias=False) for m, d in in_dims.items()}
        )
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        z = self.bias
        for m in self.modalities:
            z = z + self.proj[m](inputs[m])
        return z
