"""Multimodal Transfer Module (Joze et al. 2020): squeeze-and-excitation across modalities."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.base import FeatureMapOp
from fuselab.fusion.registry import register


@register("mmtm")
class MMTM(FeatureMapOp):
    """MMTM: squeeze every modality, excite every modality from the joint squeeze.

    ::

        S_m = GAP(x_m)                               (B, C_m)
        Z   = ReLU(W_Z [S_1; ...; S_M] + b_Z)        (B, C_Z)
        x̃_m = scale * sigmoid(W_m Z + b_m) ⊙ x_m     per channel, constant over space/time

    ``scale=2`` is the paper's ``2 σ(E)`` (so a zero excitation is the identity; the authors'
    released code gates with ``σ(E)`` alone, i.e. ``scale=1``);
    ``C_Z = int(2 * sum_m C_m / reduction)`` follows the authors' code, which is also what the
    MSAF paper's parameter/FLOP comparison (Figure 5) uses.

    Args:
        in_channels: ``{m: C_m}``.
        reduction: ``r`` in ``C_Z``.
        hidden: override ``C_Z``.
        scale: multiplier of the sigmoid gates.

    Shapes:
        ``{m: (B, C_m, *spatial_m)}`` (any number >= 1 of spatial/time dims, may differ between
        modalities) -> the same shapes. :meth:`gates`: ``{m: (B, C_m)}``.
    """

    def __init__(
        self,
        in_channels: Mapping[str, int],
        reduction: int = 4,
        hidden: int | None = None,
        scale: float = 2.0,
    ) -> None:
        super().__init__(in_channels)
        total = sum(self.in_channels.values())
        if hidden is None:
            if not isinstance(reduction, int) or reduction <= 0:
                raise ValueError(f"MMTM: reduction must be a positive int, got {reduction!r}")
            hidden = int(2 * total / reduction)
        if not isinstance(hidden, int) or hidden <= 0:
            raise ValueError(
                f"MMTM: hidden (C_Z) must be a positive int, got {hidden!r} "
                f"(sum of in_channels={total}, reduction={reduction})"
            )
        self.reduction = reduction
        self.hidden = hidden
        self.scale = float(scale)
        self.squeeze = nn.Linear(total, hidden)
        self.excite = nn.ModuleDict({m: nn.Linear(hidden, c) for m, c in self.in_channels.items()})

    def _gates(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        s = torch.cat([inputs[m].flatten(2).mean(dim=-1) for m in self.in_channels], dim=-1)
        z = torch.relu(self.squeeze(s))
        return {m: self.scale * torch.sigmoid(self.excite[m](z)) for m in self.in_channels}

    def gates(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-channel factors ``{m: (B, C_m)}`` in ``(0, scale)``."""
        self.check_inputs(inputs)
        return self._gates(inputs)

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        self.check_inputs(inputs)
        gates = self._gates(inputs)
        out = {}
        for m in self.in_channels:
            x = inputs[m]
            out[m] = x * gates[m].reshape(*gates[m].shape, *([1] * (x.dim() - 2)))
        return out
