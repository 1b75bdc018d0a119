"""Self-attention over modality tokens (one token per modality, multi-head)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.base import FusionOp
from fuselab.fusion.registry import register


def check_heads(where: str, width: int, num_heads: int, label: str = "out_dim") -> None:
    """``ValueError`` unless ``num_heads`` is a positive divisor of ``width`` (named ``label``)."""
    if not isinstance(num_heads, int) or num_heads <= 0 or width % num_heads:
        raise ValueError(
            f"{where}: num_heads must be a positive divisor of {label}={width}, got {num_heads!r}"
        )


def default_heads(width: int) -> int:
    """The largest of 4, 2, 1 dividing ``width``."""
    return next(h for h in (4, 2, 1) if width % h == 0)


@register("attention")
class AttentionFusion(FusionOp):
    """Modality tokens through one multi-head self-attention layer, mean-pooled.

    Each modality becomes a token ``t_m = W_m x_m + e_m`` (``e_m``: learned modality embedding);
    ``u = LayerNorm(t + MHA(t, t, t))`` lets every modality read every other; ``z = mean_m u_m``.
    The pooled output does not depend on the declaration order of the modalities. For the
    MulT-style variant where one modality attends to the others, see ``cross_attention``.

    Args:
        in_dims: ``{modality: D_m}``.
        out_dim: token width (``d_model``) and output width.
        num_heads: attention heads (a divisor of ``out_dim``; default the largest of 4, 2, 1).
        dropout: attention dropout.

    Shapes:
        ``{m: (B, D_m)}`` -> ``(B, out_dim)``; ``{m: (B, T, D_m)}`` -> ``(B, T, out_dim)``
        (tokens attend within each step). :meth:`attention_weights`: ``(B, M, M)``
        (``(B, T, M, M)``), averaged over heads, rows sum to 1.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        out_dim: int,
        num_heads: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_dims, out_dim)
        heads = default_heads(out_dim) if num_heads is None else num_heads
        check_heads("AttentionFusion", out_dim, heads)
        self.num_heads = heads
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in in_dims.items()})
        self.embed = nn.Parameter(torch.randn(len(in_dims), out_dim) * 0.02)
        self.attn = nn.MultiheadAttention(out_dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(out_dim)

    def tokens(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Modality tokens ``(N, M, out_dim)``, ``N = B`` (or ``B * T`` for sequences)."""
        t = torch.stack([self.proj[m](inputs[m]) for m in self.modalities], dim=-2) + self.embed
        return t.reshape(-1, len(self.modalities), self.out_dim)

    def attention_weights(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Head-averaged attention ``(B, M, M)`` (``(B, T, M, M)``): row = query modality."""
        self.check_inputs(inputs)
        t = self.tokens(inputs)
        _, w = self.attn(t, t, t, need_weights=True, average_attn_weights=True)
        lead = next(iter(inputs.values())).shape[:-1]
        return w.reshape(*lead, len(self.modalities), len(self.modalities))

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.check_inputs(inputs)
        t = self.tokens(inputs)
        u = self.norm(t + self.attn(t, t, t, need_weights=False)[0])
        lead = next(iter(inputs.values())).shape[:-1]
        return u.mean(dim=1).reshape(*lead, self.out_dim)
