"""The multimodal convolutional LSTM of paper 000 (appendix A.1-A.2) with a selectable fusion layer.

* ``initial``: C-LSTM merge layer (gates from image patch, hidden state and audio frame) -> 2x2 max
  pool -> second C-LSTM layer -> 2x2 max pool -> dense ``hidden`` ReLU -> dense ``num_outputs``.
* ``second``: conv (``units``, ReLU, 2x2 max pool unless ``stream_pools = false``) on the image and
  an LSTM (``units``) on the audio frames feed one C-LSTM layer (the LSTM output is its per-step
  frame input) -> pool -> dense.
* ``visual-only`` / ``audio-only``: the ``initial`` model with the other modality's gate term
  removed (paper 000 section 5.3, occluded modality); the image is still shown at every step.
* ``fc``: see :mod:`fuselab.models.clstm.fc`.

The image is presented at every step; time steps are the spectrogram frames. ``forward`` returns
the dense head on the final layer's last state, ``step_logits`` on every step's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fuselab.models.clstm.cell import ConvLSTMCell
from fuselab.models.clstm.common import AUDIO, IMAGE, CLSTMBase, pool2


class InitialFusionCLSTM(CLSTMBase):
    """``initial`` (and the unimodal variants): two stacked C-LSTM layers.

    Shapes: ``{"image": (B, C, H, W), "audio": (B, C_a, F, T)} -> (B, num_outputs)``;
    ``step_logits -> (B, ceil(T / time_pool), num_outputs)``.
    """

    def __init__(self, fusion_layer: str = "initial", **kwargs: Any) -> None:
        self.uses = {"initial": (IMAGE, AUDIO), "visual-only": (IMAGE,),
                     "audio-only": (AUDIO,)}.get(fusion_layer, (IMAGE, AUDIO))
        super().__init__(fusion_layer, **kwargs)
        self.cell1 = ConvLSTMCell(self.image_channels, self.units, self.kernel, self.frame_dim)
        self.cell2 = ConvLSTMCell(self.units, self.units, self.kernel)
        self.make_head(self.units * self.grid4[0] * self.grid4[1])

    def fusion_modules(self) -> list[nn.Module]:
        return [self.cell1] if self.fusion_layer == "initial" else []

    def run(self, inputs: Mapping[str, Tensor], every_step: bool) -> Tensor:
        x = self.prepare(inputs)
        batch = x[self.uses[0]].shape[0]
        # Input-to-gate terms of layer 1 for every step at once: the image conv is the same at
        # every step, the audio frames go through one (B, T', D) x (D, 4u) product.
        static = self.cell1.input_gates(x[IMAGE]) if IMAGE in x else None
        frames = self.cell1.frame_gates(self.frames(x[AUDIO])) if AUDIO in x else None
        shape = (batch, 4 * self.units, *self.grid)
        h1: Tensor | None = None
        c1: Tensor | None = None
        below = []
        for t in range(self.num_steps):
            if frames is None:
                gates = static
            elif static is None:
                gates = frames[:, t].expand(shape)  # audio-only: the frame reaches every position
            else:
                gates = static + frames[:, t]
            assert gates is not None
            h1, c1 = self.cell1.step(gates, h1, c1)
            below.append(pool2(h1))  # only the pooled map is kept: 1/4 of h1's memory
        # Layer 2's input-to-gate convolution for all steps as one (T'*B)-batch convolution.
        gates2 = self.cell2.input_gates(torch.cat(below, dim=0))
        h2: Tensor | None = None
        c2: Tensor | None = None
        outs = []
        for t, g in enumerate(gates2.split(batch, dim=0)):
            h2, c2 = self.cell2.step(g, h2, c2)
            if every_step or t == self.num_steps - 1:
                outs.append(h2)
        return self.readout(outs, every_step)


class SecondFusionCLSTM(CLSTMBase):
    """``second``: separate conv and LSTM streams merged in a C-LSTM layer.

    Shapes: as :class:`InitialFusionCLSTM`.
    """

    def __init__(self, fusion_layer: str = "second", **kwargs: Any) -> None:
        super().__init__(fusion_layer, **kwargs)
        k = self.kernel
        self.conv = nn.Conv2d(self.image_channels, self.units, k, padding=k // 2)
        self.lstm = nn.LSTM(self.frame_dim, self.units, batch_first=True)
        self.cell = ConvLSTMCell(self.units, self.units, k, frame_dim=self.units)
        # the C-LSTM runs on H/2 x W/2 after the stream's pool, else (paper sizes) on H x W
        out = self.grid4 if self.stream_pools else self.grid2
        self.make_head(self.units * out[0] * out[1])

    def fusion_modules(self) -> list[nn.Module]:
        return [self.cell]

    def run(self, inputs: Mapping[str, Tensor], every_step: bool) -> Tensor:
        x = self.prepare(inputs)
        v = self.conv(x[IMAGE]).relu()
        static = self.cell.input_gates(pool2(v) if self.stream_pools else v)
        seq, _ = self.lstm(self.frames(x[AUDIO]))
        frames = self.cell.frame_gates(seq)  # (B, T', 4u, 1, 1): every step in one product
        h: Tensor | None = None
        c: Tensor | None = None
        outs = []
        for t in range(self.num_steps):
            h, c = self.cell.step(static + frames[:, t], h, c)
            if every_step or t == self.num_steps - 1:
                outs.append(h)
        return self.readout(outs, every_step)
