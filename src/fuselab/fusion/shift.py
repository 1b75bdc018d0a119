"""Modality shifting: a primary modality displaced by a gated vector from the others (MAG)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.options import require_modalities, role_modality
from fuselab.fusion.registry import register


@register("shift")
class ShiftFusion(FusionOp):
    """Multimodal adaptation gate (Rahman et al. 2020; lecture 003 "modality-shifting fusion").

    The primary modality ``h = x_p`` is shifted by a displacement built from the others::

        g_m = ReLU(W_gm [h; x_m] + b_gm)          gate, (D_p,)
        H   = sum_{m != p} g_m * (W_m x_m) + b_H   displacement, (D_p,)
        a   = min(beta * ||h|| / ||H||, 1)         so that ||a H|| <= beta ||h||
        z   = W_o LayerNorm(h + a H) + b_o

    ``beta`` bounds how far the other modalities may move the primary one, relative to its norm.

    Args:
        in_dims: ``{modality: D_m}``, at least two.
        out_dim: output width. ``W_o`` is the identity when ``out_dim == D_p``.
        primary: the shifted modality (default: the first declared).
        beta: maximum relative size of the shift.
        norm: apply the LayerNorm (``False`` returns ``W_o(h + a H)``).
        dropout: dropout before the output map.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
        :meth:`displacement`: ``(B, D_p)``.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        out_dim: int,
        primary: str | None = None,
        beta: float = 1.0,
        norm: bool = True,
        dropout: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(in_dims, out_dim)
        require_modalities("ShiftFusion", in_dims)
        primary = role_modality("ShiftFusion", in_dims, "primary", primary, self.modalities[0])
        if beta <= 0:
            raise ValueError(f"ShiftFusion: beta must be > 0, got {beta!r}")
        self.primary = primary
        self.others = tuple(m for m in self.modalities if m != primary)
        self.beta = float(beta)
        self.eps = eps
        dp = in_dims[primary]
        self.gate = nn.ModuleDict({m: nn.Linear(dp + in_dims[m], dp) for m in self.others})
        self.value = nn.ModuleDict({m: nn.Linear(in_dims[m], dp, bias=False) for m in self.others})
        self.shift_bias = nn.Parameter(torch.zeros(dp))
        self.norm: nn.Module = nn.LayerNorm(dp) if norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out: nn.Module = nn.Identity() if out_dim == dp else nn.Linear(dp, out_dim)

    def displacement(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The scaled shift ``a * H`` added to the primary modality, ``(B, D_p)``."""
        self.check_inputs(inputs)
        h = inputs[self.primary]
        shift = self.shift_bias.to(h.dtype)
        for m in self.others:
            g = torch.relu(self.gate[m](torch.cat([h, inputs[m]], dim=-1)))
            shift = shift + g * self.value[m](inputs[m])
        ratio = (
            self.beta * h.norm(dim=-1, keepdim=True) / (shift.norm(dim=-1, keepdim=True) + self.eps)
        )
        return torch.clamp(ratio, max=1.0) * shift

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        displacement = self.displacement(inputs)  # checks the inputs first
        shifted = inputs[self.primary] + displacement
        return self.out(self.dropout(self.norm(shifted)))
