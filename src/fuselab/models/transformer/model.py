"""The token-fusion transformer of thesis 004 ("Where to fuse" encoder + answer decoder).

Shapes: each modality ``m`` -> tokenizer -> ``(B, n_m, d)`` -> pool -> ``(B, N_m, d)`` + type
embedding; the tokens of the modalities in ``fusion_spec[i]`` are appended to the running sequence
right before encoder layer ``i``, so layer ``i`` sees ``sum(N_m for m fused at <= i)`` tokens.
``i = L`` (``num_layers``) is late fusion: those tokens are appended after the last layer and pass
through no encoder layer, only the trunk's final per-token norm. The fused ``(B, n, d)`` sequence
feeds a decoder (``(B, T, V)`` teacher-forced logits, greedy ``generate``) or a classification
head (masked mean of the tokens -> ``(B, num_outputs)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fuselab.fusion.checks import check_batch_sizes
from fuselab.models.transformer import hf
from fuselab.models.transformer.config import TokenFusionConfig
from fuselab.models.transformer.decoder import T5Decoder, TorchDecoder, greedy_decode
from fuselab.models.transformer.pooling import TokenPool
from fuselab.models.transformer.tokenizers import (
    EmbeddingTokenizer,
    LinearTokenizer,
    PatchTokenizer,
    Tokenizer,
    ViTTokenizer,
)
from fuselab.models.transformer.trunk import T5Trunk, TorchTrunk


class TokenFusionTransformer(nn.Module):
    """Token-fusion encoder with a generation decoder or a classification head.

    Build it with ``fuselab.models.build({"name": "token_fusion", ...}, input_shapes=...,
    num_outputs=...)``; the config schema is in docs/transformer.md.

    Forward: ``model(inputs, labels) -> (B, L_answer, V)`` (generation, teacher forced) or
    ``model(inputs) -> (B, num_outputs)`` (classification). ``inputs`` maps modality names to
    batches of the declared shapes; extra names are ignored.
    """

    def __init__(self, cfg: TokenFusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.task = cfg.head
        self.fusion_spec = {k: list(v) for k, v in cfg.fusion_spec.items()}
        self.pad_id, self.bos_id, self.eos_id = cfg.pad_id, cfg.bos_id, cfg.eos_id
        # read by fuselab.evaluate's missing-modality "drop" mode
        self.supports_missing_modalities = cfg.allow_missing
        t5 = None
        if cfg.trunk == "t5":
            t5_cfg = None if cfg.t5 is not None else hf.t5_config(
                vocab_size=cfg.vocab_size or 1, d_model=cfg.d_model, num_layers=cfg.num_layers,
                num_heads=cfg.num_heads, ff_dim=cfg.ff_dim, dropout=cfg.dropout,
            )  # fmt: skip
            t5 = hf.t5_encoder(cfg.t5, t5_cfg)
            self.trunk: TorchTrunk | T5Trunk = T5Trunk(t5, frozen=cfg.freeze_trunk)
            _check_t5(cfg, t5.config)
        else:
            self.trunk = TorchTrunk(
                cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.ff_dim, cfg.dropout
            )
        d = cfg.d_model
        self._cache: Any = None
        self.tokenizers = nn.ModuleDict({m: self._tokenizer(m) for m in cfg.modalities})
        self.pools = nn.ModuleDict()
        self.token_counts: dict[str, int] = {}
        for m in cfg.modalities:
            n = self._tokenizer_of(m).num_tokens
            kind = cfg.pooling.get(m, "none")
            want = cfg.pooled.get(m, n)
            if kind != "none" and not 1 <= want <= n:
                raise ValueError(
                    f"model.pooled.{m}: {want} tokens requested, but modality {m!r} has {n} "
                    f"tokens; allowed: 1 .. {n}"
                )
            self.pools[m] = TokenPool(kind, d, want, num_heads=cfg.num_heads, dropout=cfg.dropout)
            self.token_counts[m] = want
        self.type_embed = nn.Embedding(len(cfg.modalities), d) if cfg.type_embeddings else None
        if self.type_embed is not None:
            nn.init.normal_(self.type_embed.weight, std=0.02)
        self.decoder: TorchDecoder | T5Decoder | None = None
        self.classifier: nn.Linear | None = None
        if cfg.head == "generation":
            if cfg.decoder == "t5":
                dec_cfg = None if cfg.t5 is not None else hf.t5_config(
                    vocab_size=cfg.num_outputs, d_model=d, num_layers=cfg.decoder_layers,
                    num_heads=cfg.num_heads, ff_dim=cfg.ff_dim, dropout=cfg.dropout,
                )  # fmt: skip
                stack, head, scale = hf.t5_decoder(cfg.t5, dec_cfg, cfg.decoder_layers)
                rows = head.out_features
                if rows < cfg.num_outputs:
                    raise ValueError(
                        f"model.t5: the pretrained T5's LM head has {rows} tokens but the task's "
                        f"vocabulary (num_outputs) has {cfg.num_outputs}; tokenize with its tokenizer"
                    )
                self.decoder = T5Decoder(stack, head, scale, vocab_size=cfg.num_outputs)
            else:
                self.decoder = TorchDecoder(
                    cfg.num_outputs, d, cfg.decoder_layers, cfg.num_heads, cfg.ff_dim, cfg.dropout
                )
        else:
            self.classifier = nn.Linear(d, cfg.num_outputs)

    def _tokenizer(self, m: str) -> Tokenizer:
        cfg, kind, shape = self.cfg, self.cfg.tokenizers[m], self.cfg.input_shapes[m]
        pos = cfg.position_embeddings
        if kind == "embedding":
            shared = self.trunk.shared if isinstance(self.trunk, T5Trunk) else None
            vocab = cfg.vocab_size if cfg.vocab_size is not None else 1
            # T5 text positions come from its relative attention bias; absolute ones would only
            # perturb a pretrained model's inputs.
            pos = pos and shared is None
            return EmbeddingTokenizer(m, shape[0], vocab, cfg.d_model, cfg.pad_id, pos, shared)
        if kind == "patch":
            return PatchTokenizer(m, shape, cfg.patch_size[m], cfg.d_model, pos)
        if kind == "linear":
            return LinearTokenizer(m, shape, cfg.d_model, pos)
        if cfg.vit_cache is not None and self._cache is None:
            from fuselab.data.feature_cache import FeatureCache  # only needed with a cache

            self._cache = FeatureCache(cfg.vit_cache)
        vit = hf.vit_model(cfg.vit, cfg.vit_config)
        return ViTTokenizer(m, shape, vit, cfg.d_model, cfg.freeze_vit, cache=self._cache)

    def _tokenizer_of(self, m: str) -> Tokenizer:
        tok = self.tokenizers[m]
        assert isinstance(tok, Tokenizer)
        return tok

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities the model needs, in fusion order."""
        return self.cfg.modalities

    def sequence_lengths(self) -> list[int]:
        """Tokens each encoder layer processes (before padding), e.g. ``[12, 12, 28, 28]``; tokens
        fused at layer ``L`` (after the last layer) are in none of them."""
        lengths, n = [], 0
        for i in range(self.cfg.num_layers):
            n += sum(self.token_counts[m] for m in self.fusion_spec.get(i, []))
            lengths.append(n)
        return lengths

    def fusion_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters acting on tokens of more than one modality.

        Trunk layers from the first layer that holds two modalities on, the type embeddings and
        the attention pools (which exist for fusion into a shared sequence). Empty for a
        unimodal model. The decoder/classifier is the task head and is not counted, so late
        fusion (second modality at layer ``L``) counts no trunk layer.
        """
        if len(self.modalities) < 2:
            return
        first = sorted(self.fusion_spec)[1] if len(self.fusion_spec) > 1 else 0
        layers = self.trunk.layers if isinstance(self.trunk, TorchTrunk) else self.trunk.blocks
        for i in range(first, len(layers)):
            yield from layers[i].parameters()
        if self.type_embed is not None:
            yield from self.type_embed.parameters()
        for pool in self.pools.values():
            yield from pool.parameters()

    def tokens(self, inputs: Mapping[str, Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
        """Per modality: pooled, type-embedded tokens ``(B, N_m, d)`` and padding ``(B, N_m)``."""
        if not isinstance(inputs, Mapping):
            raise TypeError(
                f"token_fusion: expected a dict of named modalities {list(self.modalities)}, "
                f"got {type(inputs).__name__}"
            )
        present = [m for m in self.modalities if m in inputs]
        missing = [m for m in self.modalities if m not in inputs]
        if not present:
            raise ValueError(
                f"token_fusion: none of the model's modalities {list(self.modalities)} is in the "
                f"inputs (got {sorted(inputs)})"
            )
        if missing and not self.supports_missing_modalities:
            raise ValueError(
                f"token_fusion: missing modality {missing[0]!r} (the model needs "
                f"{list(self.modalities)}, got {sorted(inputs)}; allow_missing = true runs "
                f"without it)"
            )
        check_batch_sizes({m: inputs[m] for m in present}, "token_fusion")
        out = {}
        for i, m in enumerate(self.modalities):
            if m not in inputs:
                continue
            tok, pad = self.tokenizers[m](inputs[m])
            tok, pad = self.pools[m](tok, pad)
            if self.type_embed is not None:
                tok = tok + self.type_embed.weight[i]
            out[m] = (self.trunk.input_dropout(tok), pad)
        return out

    def encode(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Fused encoder output ``(B, n, d)`` and its padding mask ``(B, n)`` (``True`` = pad).

        Tokens fused at layer ``L`` (late fusion) are appended after the last layer, so the
        output is ``finish(cat(layers(earlier tokens), late tokens))``; ``finish`` (LayerNorm, or
        T5's RMS norm + dropout) acts per token, so late tokens meet the others only in the
        decoder's cross-attention (or the classification mean).

        With ``allow_missing``, an absent modality contributes no tokens; layers before the first
        present modality's fusion layer then have nothing to process and are skipped.
        """
        toks = self.tokens(inputs)
        self.trunk.begin()
        h: Tensor | None = None
        pad: Tensor | None = None
        # i = num_layers is "after the last layer": tokens joining there pass through no layer.
        for i in range(self.cfg.num_layers + 1):
            joining = [m for m in self.fusion_spec.get(i, []) if m in toks]
            if joining:
                parts = ([h] if h is not None else []) + [toks[m][0] for m in joining]
                masks = ([pad] if pad is not None else []) + [toks[m][1] for m in joining]
                h, pad = torch.cat(parts, dim=1), torch.cat(masks, dim=1)
            if h is not None and pad is not None and i < self.cfg.num_layers:
                h = self.trunk.layer(i, h, _attendable(pad))
        assert h is not None and pad is not None  # tokens() guarantees one present modality
        return self.trunk.finish(h), pad

    def forward(self, inputs: Mapping[str, Tensor], labels: Tensor | None = None) -> Tensor:
        """Generation: ``labels`` (B, T) -> logits (B, T, V). Classification: (B, num_outputs)."""
        memory, pad = self.encode(inputs)
        if self.classifier is not None:
            keep = (~pad).unsqueeze(-1).to(memory.dtype)
            pooled = (memory * keep).sum(1) / keep.sum(1).clamp_min(1.0)
            out: Tensor = self.classifier(pooled)
            return out
        assert self.decoder is not None
        if labels is None:
            raise TypeError(
                "token_fusion: a generation model needs labels (B, L_answer) for teacher forcing; "
                "use model.generate(inputs, max_len) to decode"
            )
        self._check_labels(labels, memory.shape[0])
        bos = labels.new_full((labels.shape[0], 1), self.bos_id)
        dec_in = torch.cat([bos, labels[:, :-1]], dim=1)
        out = self.decoder(dec_in, memory, _attendable(pad))
        return out

    @torch.no_grad()
    def generate(self, inputs: Mapping[str, Tensor], max_len: int) -> Tensor:
        """Greedy decoding: ``(B, max_len)`` int64 ids without ``bos``, ``pad`` after ``eos``."""
        if self.decoder is None:
            raise TypeError("token_fusion: generate() needs head = 'generation'")
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"token_fusion: max_len must be a positive int, got {max_len!r}")
        was_training = self.training
        self.eval()
        try:
            memory, pad = self.encode(inputs)
            return greedy_decode(
                self.decoder, memory, _attendable(pad), max_len,
                bos_id=self.bos_id, eos_id=self.eos_id, pad_id=self.pad_id,
            )  # fmt: skip
        finally:
            self.train(was_training)

    def _check_labels(self, labels: Tensor, batch: int) -> None:
        if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.dim() != 2:
            got = (
                f"{labels.dtype} {tuple(labels.shape)}"
                if isinstance(labels, Tensor)
                else type(labels).__name__
            )
            raise TypeError(
                f"token_fusion: labels must be int64 token ids (B, L_answer), got {got}"
            )
        if labels.shape[0] != batch:
            raise ValueError(
                f"token_fusion: labels have {labels.shape[0]} rows, the inputs have {batch} samples"
            )
        v = self.cfg.num_outputs
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= v):
            raise ValueError(
                f"token_fusion: label ids must lie in 0 .. {v - 1} (num_outputs), got range "
                f"{int(labels.min())} .. {int(labels.max())}"
            )


def _attendable(pad: Tensor) -> Tensor:
    """Key padding mask safe for softmax: a sample whose tokens are all padding attends to them
    (its output is ignored downstream) instead of producing NaN."""
    return pad & ~pad.all(dim=1, keepdim=True)


def _check_t5(cfg: TokenFusionConfig, t5_cfg: object) -> None:
    for key, ours in (("num_layers", cfg.num_layers), ("d_model", cfg.d_model)):
        theirs = getattr(t5_cfg, key)
        if ours != theirs:
            raise ValueError(
                f"model.{key}: the T5 trunk has {key} = {theirs}, the config says {ours}; "
                f"leave {key} out or set it to {theirs}"
            )
