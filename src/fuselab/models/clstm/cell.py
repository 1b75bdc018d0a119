"""The convolutional LSTM cell of paper 000 (appendix A.1, Figure 5).

LSTM gates computed by convolutions at every spatial position (shared weights, separate cell and
hidden state per position). The first (merge) layer of the multimodal C-LSTM computes its gates
from the image patch ``v``, the hidden-state patch ``h_{t-1}`` and the audio frame ``a_t``::

    [i, f, g, o] = W_v * v + W_h * h_{t-1} + W_a a_t + b        (* = 3x3 convolution)
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g)
    h_t = sigmoid(o) tanh(c_t)

The gate terms are kept separate because they change at different rates: ``W_v * v`` is computed
once per sequence for a static image, ``W_a a_t`` (a frame vector, the same at every position) for
all steps in one matrix product and broadcast as ``(B, 4H, 1, 1)``, and a stacked layer's
``W_x * x_t`` for all steps in one batched convolution once the layer below has run. Only
``W_h * h_{t-1}`` is a convolution inside the recurrent loop (and not at ``t = 0``, where ``h = 0``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvLSTMCell(nn.Module):
    """One C-LSTM layer step on a ``(B, hidden, H, W)`` state grid.

    Args:
        in_channels: channels of the map input ``x`` (``v`` or the previous layer's ``h``); 0 = none.
        hidden: units (channels of ``h`` and ``c``).
        kernel: convolution kernel (same padding).
        frame_dim: width of a per-step vector input ``a_t`` broadcast to every position; 0 = none.

    Shapes: ``input_gates(x) -> (B, 4*hidden, H, W)`` (any leading batch, e.g. ``B*T``),
    ``frame_gates(a) -> (B, 4*hidden, 1, 1)`` or ``(B, T, 4*hidden, 1, 1)`` for ``a: (B, T, frame_dim)``,
    ``step(gates_in, h, c) -> (h, c)`` with ``h, c: (B, hidden, H, W)``; ``h = c = None`` is the
    zero initial state.
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3, frame_dim: int = 0) -> None:
        super().__init__()
        if in_channels <= 0 and frame_dim <= 0:
            raise ValueError("ConvLSTMCell: needs a map input (in_channels > 0) or a frame input "
                             f"(frame_dim > 0), got in_channels={in_channels}, frame_dim={frame_dim}")
        self.hidden = hidden
        self.conv_x = nn.Conv2d(in_channels, 4 * hidden, kernel, padding=kernel // 2) if in_channels else None
        self.conv_h = nn.Conv2d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)
        self.lin_a = nn.Linear(frame_dim, 4 * hidden, bias=self.conv_x is None) if frame_dim else None

    def input_gates(self, x: Tensor) -> Tensor:
        """``W_x * x + b``: ``(B, C, H, W) -> (B, 4*hidden, H, W)``."""
        assert self.conv_x is not None
        return self.conv_x(x)

    def frame_gates(self, a: Tensor) -> Tensor:
        """``W_a a``: ``(..., frame_dim) -> (..., 4*hidden, 1, 1)``, broadcast over positions."""
        assert self.lin_a is not None
        return self.lin_a(a)[..., None, None]

    def step(self, gates_in: Tensor, h: Tensor | None, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """One time step given the input gate terms (map and/or frame, already summed).

        ``h = c = None`` is the zero state: ``W_h * 0 = 0`` and ``f * 0 = 0`` are skipped, not
        computed (the same numbers as passing zeros, one convolution fewer per sequence).
        """
        if not torch.is_grad_enabled():
            return self._step_inplace(gates_in, h, c)
        gates = gates_in if h is None else gates_in + self.conv_h(h)
        i, f, g, o = gates.chunk(4, dim=1)
        c_new = i.sigmoid() * g.tanh()
        if c is not None:
            c_new = f.sigmoid() * c + c_new
        h = o.sigmoid() * c_new.tanh()
        return h, c_new

    def _step_inplace(self, gates_in: Tensor, h: Tensor | None, c: Tensor | None
                      ) -> tuple[Tensor, Tensor]:
        """``step`` without autograd (evaluation): the same operations in the same order, done in
        place on the fresh convolution output, so a step allocates 2 maps instead of ~10."""
        # a fresh buffer either way: gates_in may be a shared (static) or an expanded tensor
        gates = (gates_in.clone(memory_format=torch.contiguous_format) if h is None
                 else self.conv_h(h).add_(gates_in))
        i, f, g, o = gates.chunk(4, dim=1)
        i.sigmoid_()
        g.tanh_()
        o.sigmoid_()
        c_new = i.mul_(g) if c is None else f.sigmoid_().mul_(c).add_(i.mul_(g))
        return o.mul_(c_new.tanh()), c_new
