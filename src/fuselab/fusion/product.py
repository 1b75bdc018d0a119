"""Multiplicative fusion: elementwise product of per-modality projections."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register


@register("product")
class ProductFusion(FusionOp):
    """Multiplicative fusion ``z = prod_m (W_m x_m + b_m)`` (elementwise, lecture 003).

    Args:
        in_dims: ``{modality: D_m}``.
        out_dim: common width of the projections and of the output.
        project: map every modality to ``out_dim`` first (default). With ``project=False`` every
            ``D_m`` must equal ``out_dim`` and the raw inputs are multiplied.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
    """

    def __init__(self, in_dims: Mapping[str, int], out_dim: int, project: bool = True) -> None:
        super().__init__(in_dims, out_dim)
        if not project:
            wrong = {m: d for m, d in in_dims.items() if d != out_dim}
            if wrong:
                name, d = next(iter(wrong.items()))
                raise ValueError(
                    f"ProductFusion: project=False needs in_dims[{name!r}] == out_dim={out_dim}, "
                    f"got {d}"
                )
        self.proj = nn.ModuleDict(
            {m: nn.Linear(d, out_dim) if project else nn.Identity() for m, d in in_dims.items()}
        )

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        names = self.modalities
        z = self.proj[names[0]](inputs[names[0]])
        for m in names[1:]:
            z = z * self.proj[m](inputs[m])
        return z
