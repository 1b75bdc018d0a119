"""Concatenation fusion (early/late fusion by concatenation, optionally projected)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register


@register("concat")
class ConcatFusion(FusionOp):
    """Concatenate modalities along the feature axis, then optionally project.

    ``z = W [x_1; ...; x_M] + b`` (``project=True``) or ``z = [x_1; ...; x_M]``.

    Args:
        in_dims: ``{modality: D_m}``.
        out_dim: output width; defaults to ``sum(D_m)``. Must equal it when ``project=False``.
        project: apply a linear projection after concatenation (default: when ``out_dim`` differs
            from ``sum(D_m)``).

    Shapes:
        inputs ``{m: (B, D_m)}`` or ``{m: (B, T, D_m)}`` -> ``(B, out_dim)`` or ``(B, T, out_dim)``.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        out_dim: int | None = None,
        project: bool | None = None,
    ) -> None:
        total = sum(in_dims.values())
        out = total if out_dim is None else out_dim
        super().__init__(in_dims, out)
        if project is None:
            project = out != total
        if not project and out != total:
            raise ValueError(
                f"ConcatFusion: out_dim={out} differs from sum of in_dims={total}; "
                "set project=True to add a projection"
            )
        self.proj: nn.Module = nn.Linear(total, out) if project else nn.Identity()

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        return self.proj(torch.cat([inputs[m] for m in self.in_dims], dim=-1))
