"""Encoder trunks run one layer at a time, so tokens can join the sequence between layers.

Both trunks map ``(B, n, d)`` hidden states and a ``(B, n)`` padding mask (``True`` = padding) to
``(B, n, d)`` per layer; ``n`` may grow from one layer to the next.

* :class:`TorchTrunk`: ``L`` pre-norm ``nn.TransformerEncoderLayer`` + a final ``LayerNorm``.
* :class:`T5Trunk`: the blocks of a ``transformers.T5EncoderModel``. T5 has no absolute positions;
  its relative position bias (held by block 0, shared by all blocks) is recomputed for the current
  sequence length whenever tokens have joined.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class TorchTrunk(nn.Module):
    """``num_layers`` pre-norm transformer encoder layers of width ``dim``."""

    def __init__(
        self, dim: int, num_layers: int, num_heads: int, ff_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, num_heads, ff_dim, dropout, activation="gelu", batch_first=True,
                norm_first=True,
            )
            for _ in range(num_layers)
        )  # fmt: skip
        self.norm = nn.LayerNorm(dim)
        self.input_dropout = nn.Identity()

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def begin(self) -> None:
        """Start of a forward pass (nothing cached)."""

    def layer(self, i: int, h: Tensor, pad_mask: Tensor) -> Tensor:
        """Layer ``i``: ``(B, n, d)`` -> ``(B, n, d)``."""
        out: Tensor = self.layers[i](h, src_key_padding_mask=pad_mask)
        return out

    def finish(self, h: Tensor) -> Tensor:
        return self.norm(h)


class T5Trunk(nn.Module):
    """The blocks, final norm and dropout of a ``T5EncoderModel`` (whose ``shared`` embedding
    tokenizes int modalities)."""

    def __init__(self, t5: Any, frozen: bool) -> None:
        super().__init__()
        self.blocks: Any = t5.encoder.block
        self.final_norm: Any = t5.encoder.final_layer_norm
        self.input_dropout: Any = t5.encoder.dropout
        self.shared: nn.Embedding = t5.shared
        self.config = t5.config
        if frozen:
            for m in (self.blocks, self.final_norm, self.shared):
                m.requires_grad_(False)
        self._bias: dict[int, Tensor] = {}

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def begin(self) -> None:
        """Start of a forward pass: forget position biases of the previous pass."""
        self._bias = {}

    def layer(self, i: int, h: Tensor, pad_mask: Tensor) -> Tensor:
        """Block ``i`` with the relative position bias and padding mask for ``n = h.shape[1]``."""
        n = h.shape[1]
        if n not in self._bias:
            attn = self.blocks[0].layer[0].SelfAttention
            self._bias[n] = attn.compute_bias(n, n, device=h.device)
        neg = torch.finfo(h.dtype).min
        mask = torch.zeros(pad_mask.shape, dtype=h.dtype, device=h.device)
        mask = mask.masked_fill(pad_mask, neg)[:, None, None, :]
        out: Tensor = self.blocks[i](h, attention_mask=mask, position_bias=self._bias[n])[0]
        return out

    def finish(self, h: Tensor) -> Tensor:
        out: Tensor = self.input_dropout(self.final_norm(h))
        return out
