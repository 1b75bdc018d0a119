"""Gated fusion: modalities weighted by sigmoid gates computed from all modalities."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register

LEVELS = ("modality", "feature")


@register("gated")
class GatedFusion(FusionOp):
    """Gated fusion ``z = sum_m g_m(x) * h_m`` with ``h_m = W_m x_m + b_m`` (lecture 003).

    The gates ``g = sigmoid(W_g [x_1; ...; x_M] + b_g)`` see every modality, so one modality can
    switch another off. ``level="modality"`` gives one scalar gate per modality and sample;
    ``level="feature"`` gives one gate per modality and output feature.

    Args:
        in_dims: ``{modality: D_m}``.
        out_dim: common width of ``h_m`` and of the output.
        level: ``"modality"`` (default) or ``"feature"``.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``.
        :meth:`gates`: ``{m: (B, 1)}`` (modality level) or ``{m: (B, out_dim)}`` (feature level).
    """

    def __init__(self, in_dims: Mapping[str, int], out_dim: int, level: str = "modality") -> None:
        super().__init__(in_dims, out_dim)
        if level not in LEVELS:
            raise ValueError(f"GatedFusion: level must be one of {LEVELS}, got {level!r}")
        self.level = level
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in in_dims.items()})
        self.gate_width = 1 if level == "modality" else out_dim
        self.gate = nn.Linear(sum(in_dims.values()), len(in_dims) * self.gate_width)

    def _gates(self, inputs: Mapping[str, Tensor]) -> Tensor:
        joint = torch.cat([inputs[m] for m in self.modalities], dim=-1)
        g = torch.sigmoid(self.gate(joint))
        return g.unflatten(-1, (len(self.modalities), self.gate_width))  # (..., M, width)

    def gates(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The gate values in (0, 1) per modality: ``{m: (B, 1)}`` or ``{m: (B, out_dim)}``."""
        self.check_inputs(inputs)
        g = self._gates(inputs)
        return {m: g[..., i, :] for i, m in enumerate(self.modalities)}

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        g = self._gates(inputs)
        z = g[..., 0, :] * self.proj[self.modalities[0]](inputs[self.modalities[0]])
        for i, m in enumerate(self.modalities[1:], start=1):
            z = z + g[..., i, :] * self.proj[m](inputs[m])
        return z
