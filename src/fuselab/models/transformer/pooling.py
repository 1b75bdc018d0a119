"""Token pooling (thesis 004, section 1.3.3): ``(B, n, D)`` tokens -> ``(B, N, D)`` tokens.

The thesis names the three poolings and the pooled lengths; how ``n`` tokens become ``N`` is
fuselab's choice:

* ``none``: identity.
* ``mean`` / ``max``: the ``n`` tokens are split into ``N`` contiguous segments exactly as
  ``adaptive_avg_pool1d`` / ``adaptive_max_pool1d`` do (segment ``i`` covers tokens
  ``floor(i n / N) .. ceil((i + 1) n / N) - 1``); padded tokens are left out of every segment.
* ``attention``: ``N`` learned queries cross-attend to the tokens (``nn.MultiheadAttention``),
  padded tokens masked out.

Every pool returns the pooled tokens and their padding mask ``(B, N)`` (``True`` = padding: a
segment with no valid token, or a sample with no valid token at all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TokenPool(nn.Module):
    """Pool ``(B, n, D)`` tokens with padding mask ``(B, n)`` to ``(B, N, D)`` and ``(B, N)``.

    Args:
        kind: ``"none" | "mean" | "max" | "attention"``.
        dim: token width ``D``.
        num_tokens: ``N`` (ignored for ``none``).
        num_heads: heads of the attention pool.
        dropout: attention dropout of the attention pool.
    """

    def __init__(
        self, kind: str, dim: int, num_tokens: int, num_heads: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if kind not in ("none", "mean", "max", "attention"):
            raise ValueError(
                f"TokenPool: unknown pooling {kind!r}; allowed: ['none', 'mean', 'max', 'attention']"
            )
        self.kind = kind
        self.num_tokens = num_tokens
        if kind == "attention":
            self.queries = nn.Parameter(torch.randn(num_tokens, dim) * dim**-0.5)
            self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)

    def forward(self, x: Tensor, pad_mask: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (B, n, D), ``pad_mask`` (B, n) bool -> ``(B, N, D)``, ``(B, N)`` bool."""
        if self.kind == "none":
            return x, pad_mask
        valid = (~pad_mask).to(x.dtype).unsqueeze(1)  # (B, 1, n)
        if self.kind == "attention":
            return self._attention(x, pad_mask)
        n_out = self.num_tokens
        count = F.adaptive_avg_pool1d(valid, n_out)  # share of valid tokens per segment
        out_pad = count.squeeze(1) <= 0
        if self.kind == "mean":
            # mean over valid tokens = mean(x * valid) / mean(valid) over the same segment
            sums = F.adaptive_avg_pool1d(x.transpose(1, 2) * valid, n_out)
            pooled = sums / count.clamp_min(torch.finfo(x.dtype).tiny)
        else:
            filled = x.transpose(1, 2).masked_fill(pad_mask.unsqueeze(1), float("-inf"))
            pooled = F.adaptive_max_pool1d(filled, n_out)
        pooled = pooled.transpose(1, 2).masked_fill(out_pad.unsqueeze(-1), 0.0)
        return pooled, out_pad

    def _attention(self, x: Tensor, pad_mask: Tensor) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        empty = pad_mask.all(dim=1)
        # A sample with no valid token would make softmax over all -inf keys NaN: let it attend
        # to its (padding) tokens and mark every pooled token as padding instead.
        keys_mask = pad_mask & ~empty.unsqueeze(1)
        q = self.queries.unsqueeze(0).expand(b, -1, -1)
        pooled, _ = self.attn(q, x, x, key_padding_mask=keys_mask, need_weights=False)
        out_pad = empty.unsqueeze(1).expand(b, self.num_tokens)
        return pooled.masked_fill(out_pad.unsqueeze(-1), 0.0), out_pad
