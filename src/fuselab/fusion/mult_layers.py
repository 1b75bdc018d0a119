"""The transformer of MulT (Tsai et al. 2019): crossmodal or self-attention, pre-LayerNorm.

Written from the paper's section 3 and the authors' released model (the layer structure below);
no code is taken from it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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

    def _attention(self, q_in: Tensor, kv_in: Tensor | None, pad: Tensor | None) -> Tensor:
        """Multi-head attention with ``self.attn``'s parameters, batch-first throughout.

        Written out (scores, softmax, weighted sum) rather than calling ``self.attn``: its
        batch-first wrapper transposes to time-first and back, and the fused CPU attention
        kernel it dispatches to measured slower than the explicit products at MulT's sizes
        (head width 6, tens of steps); the authors' model used the explicit form too.
        """
        a = self.attn
        b, t, w = q_in.shape
        heads = a.num_heads
        weight, bias = a.in_proj_weight, a.in_proj_bias

        def split(x: Tensor, n: int) -> list[Tensor]:  # (B, S, n·w) -> n × (B, H, S, w / H)
            return list(x.view(b, x.shape[1], n, heads, w // heads).permute(2, 0, 3, 1, 4))

        if kv_in is None:  # self-attention: one product for queries, keys and values
            q, k, v = split(F.linear(q_in, weight, bias), 3)
        else:
            (q,) = split(F.linear(q_in, weight[:w], bias[:w]), 1)
            k, v = split(F.linear(kv_in, weight[w:], bias[w:]), 2)
        scores = (q * (w // heads) ** -0.5) @ k.transpose(-1, -2)  # (B, H, T, S)
        has_keys = None
        if pad is not None:
            mask, has_keys = safe_key_padding(pad)
            scores = scores.masked_fill(mask[:, None, None, :], float("-inf"))
        weights = F.dropout(torch.softmax(scores, dim=-1), a.dropout, self.training)
        out = a.out_proj((weights @ v).transpose(1, 2).reshape(b, t, w))
        if has_keys is not None:
            out = out * has_keys.to(out.dtype)[:, None, None]
        return out

    def forward(self, h: Tensor, source: Tensor | None, pad: Tensor | None) -> Tensor:
        q = self.norm_attn(h)
        kv = None if source is None else self.norm_attn(source)
        h = h + self.drop(self._attention(q, kv, pad))
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
