"""The C-LSTM paper's fully-connected-layer fusion model (paper 000 appendix A.2, ``fc``).

Visual stream: two convolutions (``units``, ``kernel``, ReLU, each followed by a 2x2 max pool so
the dense input matches the C-LSTM variants' ``units x H/4 x W/4``; ``stream_pools = false``: no
pools, paper 000 A.2's sizes, ``units x H x W``); audio stream: two LSTM layers (``units``) over
the spectrogram frames, last step. The two are concatenated before the dense
layers. Late-style: ``P(F(G_image, G_audio))`` with ``F`` = concatenation, so it exposes
``unimodal_features`` / ``fuse`` / ``predict`` and works inside :class:`ProgressiveFusion`
(context injected at the inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fuselab.models.clstm.common import AUDIO, IMAGE, CLSTMBase, Inject
from fuselab.models.shapes import Shape, raw_shape


class FCFusionCLSTM(CLSTMBase):
    """``fc``: conv stream + LSTM stream concatenated before ``dense -> ReLU -> dense``.

    Shapes: ``unimodal_features -> {"image": (B, units*H/4*W/4), "audio": (B, units)}`` (``units*H*W``
    without ``stream_pools``),
    ``fuse -> (B, fused_dim)``, ``forward -> (B, num_outputs)``, ``step_logits -> (B, T', K)``
    (the LSTM stream's state at step ``t`` with the visual features).
    """

    def __init__(self, fusion_layer: str = "fc", **kwargs: Any) -> None:
        super().__init__(fusion_layer, **kwargs)
        k, u = self.kernel, self.units

        def pool() -> list[nn.Module]:
            return [nn.MaxPool2d(2, ceil_mode=True)] if self.stream_pools else []

        self.visual = nn.Sequential(
            nn.Conv2d(self.image_channels, u, k, padding=k // 2), nn.ReLU(), *pool(),
            nn.Conv2d(u, u, k, padding=k // 2), nn.ReLU(), *pool(),
        )
        self.lstm = nn.LSTM(self.frame_dim, u, num_layers=2, batch_first=True)
        grid = self.grid4 if self.stream_pools else self.grid
        self.feature_dims = {IMAGE: u * grid[0] * grid[1], AUDIO: u}
        self.fused_dim = sum(self.feature_dims.values())
        self.make_head(self.fused_dim)

    def fusion_modules(self) -> list[nn.Module]:
        return [self.fc1]

    def _streams(self, inputs: Mapping[str, Tensor], inject: Inject | None) -> tuple[Tensor, Tensor]:
        x = self.prepare(inputs, inject)
        seq, _ = self.lstm(self.frames(x[AUDIO]))
        return self.visual(x[IMAGE]).flatten(1), seq

    def unimodal_features(self, inputs: Mapping[str, Tensor], inject: Inject | None = None
                          ) -> dict[str, Tensor]:
        v, seq = self._streams(inputs, inject)
        return {IMAGE: v, AUDIO: seq[:, -1]}

    def fuse(self, features: Mapping[str, Tensor]) -> Tensor:
        return torch.cat([features[IMAGE], features[AUDIO]], dim=-1)

    def predict(self, fused: Tensor) -> Tensor:
        return self.dense(fused)

    def run(self, inputs: Mapping[str, Tensor], every_step: bool) -> Tensor:
        v, seq = self._streams(inputs, None)
        if not every_step:
            return self.dense(torch.cat([v, seq[:, -1]], dim=-1))
        v = v[:, None, :].expand(-1, seq.shape[1], -1)
        return self.dense(torch.cat([v, seq], dim=-1))

    def injection_points(self, at: str | int, key: str = "progressive.at"
                         ) -> dict[str, tuple[int, Shape]]:
        """Pro-Fusion context enters at the raw inputs only (``at = "input"`` or 0)."""
        if at not in ("input", 0):
            raise ValueError(f"{key}: the C-LSTM 'fc' model takes the context at its inputs; "
                             f"allowed: ['input', 0], got {at!r}")
        return {m: (0, raw_shape(self.input_shapes[m])) for m in self.uses}

    def widened(self, extra: Mapping[str, tuple[int, int]]) -> FCFusionCLSTM:
        """A copy whose input layers take ``k`` extra channels per modality (weights copied)."""
        from fuselab.models.widen import copy_widened_state

        new = FCFusionCLSTM(**self._args, widen=extra)
        copy_widened_state(self, new)
        return new
