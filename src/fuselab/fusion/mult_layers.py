"""The transformer of MulT (Tsai et al. 2019): crossmodal or self-attention, pre-LayerNorm.

Written from the paper's section 3 and the authors' released model (the layer structure below);
no code is taken from it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fuselab.fusion.masks import safe_key_padding


def sinusoid(steps: int, width: int, like: Tensor) -> Tensor:
    """Positional table ``(steps, width)`` for positions ``1..steps``: ``[sin(p f) | cos(p f)]``.

    ``f_i = 10000^(-i / (h - 1))``, ``h = width // 2`` (the tensor2tensor layout MulT uses: sines
    then cosines, not interleaved; a zero column when ``width`` is odd). Position 0 is reserved
    for padding there, so real steps start at 1.
    """
    half = width // 2
    freq = torch.exp(
        torch.arange(half, device=like.device, dtype=like.dtype)
        * (-math.log(10000.0) / max(half - 1, 1))
    )
    pos = torch.arange(1, steps + 1, device=like.device, dtype=like.dtype)
    angles = pos[:, None] * freq[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if width % 2:
        table = torch.cat([table, table.new_zeros(steps, 1)], dim=1)
    return table


class MulTLayer(nn.Module):
    """``h += MHA(LN(h), LN(s), LN(s))``; ``h += FFN(LN(h))`` (``s = h`` for self-attention).

    As in the authors' code one LayerNorm normalises the queries and the source, the FFN is
    ``width -> 4 width -> width`` with ReLU, and the residual adds the un-normalised ``h`` (the
    paper's equations write ``LN(h)``; its code and fuselab add ``h``).

    Shapes: ``h (B, T, width)``, ``source (B, S, width)`` or ``None``, ``pad (B, S)`` bool
    (``True`` = padding) or ``None`` -> ``(B, T, width)``.
    """

    def __init__(self, width: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, num_heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, 4 * width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * width, width)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, source: Tensor | None, pad: Tensor | None) -> Tensor:
        q = self.norm_attn(h)
        kv = q if source is None else self.norm_attn(source)
        if pad is None:
            a = self.attn(q, kv, kv, need_weights=False)[0]
        else:
            mask, has_keys = safe_key_padding(pad)
            a = self.attn(q, kv, kv, key_padding_mask=mask, need_weights=False)[0]
            a = a * has_keys.to(a.dtype)[:, None, None]
        h = h + self.drop(a)
        return h + self.drop(self.ffn(self.norm_ffn(h)))


class MulTEncoder(nn.Module):
    """``LN(layers(√width · x + P))`` with the source embedded the same way (MulT's encoder).

    Shapes: ``x (B, T, width)``, ``source (B, S, width)`` or ``None`` (self-attention), ``pad``
    ``(B, S)`` (``(B, T)`` for self-attention) or ``None`` -> ``(B, T, width)``.
    """

    def __init__(self, width: int, num_heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.width = width
        self.layers = nn.ModuleList(MulTLayer(width, num_heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)

    def embed(self, x: Tensor) -> Tensor:
        return self.drop(x * math.sqrt(self.width) + sinusoid(x.shape[1], self.width, x))

    def forward(self, x: Tensor, source: Tensor | None, pad: Tensor | None) -> Tensor:
        h = self.embed(x)
        s = None if source is None else self.embed(source)
        for layer in self.layers:
            h = layer(h, s, pad)
        out: Tensor = self.norm(h)
        return out
