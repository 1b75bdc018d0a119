"""MulT-style cross-modal attention: a target modality attends to the other modalities."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fuselab.fusion.attention import check_heads, default_heads
from fuselab.fusion.base import FusionOp
from fuselab.fusion.masks import Masks, check_masks, padding_of, safe_key_padding
from fuselab.fusion.options import require_modalities, role_modality
from fuselab.fusion.registry import register


@register("cross_attention")
class CrossAttentionFusion(FusionOp):
    """One crossmodal transformer block (Tsai et al. 2019, MulT): target queries, sources answer.

    ``q = W_t x_t``; keys/values are the source tokens ``k = W_s x_s + e_s`` of every other
    modality, concatenated along time. With pre-LayerNorm residual blocks::

        h = q + MHA(LN(q), LN(k), LN(k))
        z = h + FFN(LN(h))

    Sequences may differ in length between modalities: each target step attends to all source
    steps of all sources. No positional encoding is added (give the encoders one if order
    matters), so permuting source steps leaves the output unchanged. With vector inputs every
    modality is one token: with a single source its attention weight is exactly 1, so the block
    reduces to ``q + V(x_s)`` followed by the FFN; attention is meaningful with sequences or
    with two or more sources.

    Args:
        in_dims: ``{modality: D_m}``, at least two modalities.
        out_dim: model width and output width.
        target: the querying modality (default: the first declared).
        num_heads: attention heads (a divisor of ``out_dim``; default the largest of 4, 2, 1).
        ffn_mult: hidden width of the FFN as a multiple of ``out_dim``.
        dropout: attention dropout.

    Shapes:
        vectors ``{m: (B, D_m)}`` -> ``(B, out_dim)``; sequences ``{m: (B, T_m, D_m)}`` ->
        ``(B, T_target, out_dim)``. ``masks``: optional ``{m: (B, T_m)}`` bool, ``True`` =
        padding (see ``fusion.masks``): padded source steps get no attention, padded target
        steps output 0. :meth:`attention_weights`: ``(B, T_target, sum_s T_s)``
        (``(B, 1, S)`` for vectors), head-averaged, rows sum to 1.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        out_dim: int,
        target: str | None = None,
        num_heads: int | None = None,
        ffn_mult: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_dims, out_dim)
        require_modalities("CrossAttentionFusion", in_dims)
        target = role_modality(
            "CrossAttentionFusion", in_dims, "target", target, self.modalities[0]
        )
        heads = default_heads(out_dim) if num_heads is None else num_heads
        check_heads("CrossAttentionFusion", out_dim, heads)
        self.target = target
        self.sources = tuple(m for m in self.modalities if m != target)
        self.num_heads = heads
        self.proj = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in in_dims.items()})
        self.embed = nn.Parameter(torch.randn(len(self.sources), out_dim) * 0.02)
        self.norm_q = nn.LayerNorm(out_dim)
        self.norm_kv = nn.LayerNorm(out_dim)
        self.attn = nn.MultiheadAttention(out_dim, heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(out_dim)
        self.ffn = nn.Sequential(
            nn.Linear(out_dim, ffn_mult * out_dim),
            nn.GELU(),
            nn.Linear(ffn_mult * out_dim, out_dim),
        )

    def _tokens(
        self, inputs: Mapping[str, Tensor], masks: Masks | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Queries ``(B, T_t, d)``, source tokens ``(B, S, d)``, source padding ``(B, S)`` or
        ``None`` (no source has a mask)."""
        self.check_inputs(inputs, same_length=False)
        check_masks(masks, inputs, "CrossAttentionFusion")
        vector = inputs[self.target].dim() == 2

        def seq(x: Tensor) -> Tensor:
            return x.unsqueeze(1) if vector else x

        q = self.proj[self.target](seq(inputs[self.target]))
        kv = torch.cat(
            [self.proj[s](seq(inputs[s])) + self.embed[i] for i, s in enumerate(self.sources)],
            dim=1,
        )
        if masks is None or not any(s in masks for s in self.sources):
            return q, kv, None
        pad = torch.cat([padding_of(masks, s, seq(inputs[s])) for s in self.sources], dim=1)
        return q, kv, pad

    def _attend(self, q: Tensor, kv: Tensor, pad: Tensor | None, weights: bool) -> Tensor:
        k = self.norm_kv(kv)
        if pad is None:
            out = self.attn(self.norm_q(q), k, k, need_weights=weights)
            return out[1] if weights else out[0]
        mask, has_keys = safe_key_padding(pad)
        out = self.attn(self.norm_q(q), k, k, key_padding_mask=mask, need_weights=weights)
        return (out[1] if weights else out[0]) * has_keys.to(q.dtype)[:, None, None]

    def attention_weights(self, inputs: Mapping[str, Tensor], masks: Masks | None = None) -> Tensor:
        """Head-averaged weights ``(B, T_target, sum_s T_s)`` of target steps over source steps
        (rows of samples whose sources are all padding are 0)."""
        q, kv, pad = self._tokens(inputs, masks)
        return self._attend(q, kv, pad, weights=True)

    def forward(self, inputs: Mapping[str, Tensor], masks: Masks | None = None) -> Tensor:
        q, kv, pad = self._tokens(inputs, masks)
        h = q + self._attend(q, kv, pad, weights=False)
        z = h + self.ffn(self.norm_ffn(h))
        if inputs[self.target].dim() == 2:
            return z.squeeze(1)
        if masks is not None and self.target in masks:
            z = z * (~masks[self.target]).unsqueeze(-1).to(z.dtype)
        return z
