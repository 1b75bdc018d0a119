"""Answer decoders: ``(dec_ids (B, T), memory (B, n, d), memory_pad (B, n)) -> logits (B, T, V)``.

Both are causal (position ``t`` sees decoder inputs ``0..t``) and cross-attend to the fused
encoder tokens, ignoring padded ones.

* :class:`TorchDecoder`: token embedding + sinusoidal positions, ``nn.TransformerDecoder``
  (pre-norm), final ``LayerNorm``, linear output layer.
* :class:`T5Decoder`: a ``transformers`` T5 decoder stack (its own embedding, relative positions
  and causal mask) and LM head.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> Tensor:
    """``(length, dim)`` fixed sine/cosine position codes (Vaswani et al.), any length."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(pos * freq)
    codes[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return codes


class TorchDecoder(nn.Module):
    """``num_layers`` pre-norm ``nn.TransformerDecoderLayer`` over a ``vocab_size`` vocabulary."""

    def __init__(
        self, vocab_size: int, dim: int, num_layers: int, num_heads: int, ff_dim: int,
        dropout: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerDecoderLayer(
            dim, num_heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerDecoder(layer, num_layers)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)
        self.scale = math.sqrt(dim)

    def forward(self, dec_ids: Tensor, memory: Tensor, memory_pad: Tensor) -> Tensor:
        """``(B, T)`` ids, ``(B, n, d)`` memory, ``(B, n)`` bool -> ``(B, T, V)`` logits."""
        t = dec_ids.shape[1]
        x = self.embed(dec_ids) * self.scale + sinusoidal_positions(
            t, memory.shape[-1], memory.device
        ).to(memory.dtype)
        causal = nn.Transformer.generate_square_subsequent_mask(
            t, device=memory.device, dtype=memory.dtype
        )
        h = self.layers(
            self.dropout(x), memory, tgt_mask=causal, tgt_is_causal=True,
            memory_key_padding_mask=memory_pad,
        )  # fmt: skip
        out: Tensor = self.out(self.norm(h))
        return out


class T5Decoder(nn.Module):
    """A T5 decoder stack + LM head (``scale``: T5's ``d_model**-0.5`` for tied embeddings).

    Logits are cut to ``vocab_size``: T5 checkpoints pad their LM head (32128 rows for a
    32100-token tokenizer) and ids past the tokenizer are never targets.
    """

    def __init__(self, stack: nn.Module, lm_head: nn.Module, scale: float, vocab_size: int) -> None:
        super().__init__()
        self.stack = stack
        self.lm_head = lm_head
        self.scale = scale
        self.vocab_size = vocab_size

    def forward(self, dec_ids: Tensor, memory: Tensor, memory_pad: Tensor) -> Tensor:
        """``(B, T)`` ids, ``(B, n, d)`` memory, ``(B, n)`` bool -> ``(B, T, V)`` logits."""
        h = self.stack(
            input_ids=dec_ids,
            encoder_hidden_states=memory,
            encoder_attention_mask=(~memory_pad).long(),
            use_cache=False,
        ).last_hidden_state
        out: Tensor = self.lm_head(h * self.scale)[..., : self.vocab_size]
        return out


def greedy_decode(
    decoder: nn.Module,
    memory: Tensor,
    memory_pad: Tensor,
    max_len: int,
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int,
) -> Tensor:
    """Greedy answer ``(B, max_len)`` int64 from ``bos_id``, without it; ``pad_id`` after ``eos_id``.

    The decoder is rerun on the whole prefix each step (answers are a few tokens; no KV cache).
    """
    b = memory.shape[0]
    seq = torch.full((b, 1), bos_id, dtype=torch.long, device=memory.device)
    done = torch.zeros(b, dtype=torch.bool, device=memory.device)
    for _ in range(max_len):
        nxt = decoder(seq, memory, memory_pad)[:, -1].argmax(-1)
        nxt = nxt.masked_fill(done, pad_id)
        seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
        done |= nxt == eos_id
        if bool(done.all()):
            break
    out = seq[:, 1:]
    if out.shape[1] < max_len:
        out = torch.cat([out, out.new_full((b, max_len - out.shape[1]), pad_id)], dim=1)
    return out
