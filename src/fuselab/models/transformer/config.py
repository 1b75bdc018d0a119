"""Validated config of the token-fusion transformer (schema: docs/transformer.md).

``parse_config(config, input_shapes=..., num_outputs=...)`` turns plain (TOML/dict) values into a
:class:`TokenFusionConfig`; every mistake is a ``ValueError``/``TypeError`` raised here, at build
time, naming the config key, the allowed values and what arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fuselab.models.transformer._checks import (
    TOKENIZERS,
    bool_value,
    choice,
    default_tokenizer,
    fusion_spec,
    int_value,
    modality_name,
    patch_sizes,
)

POOLINGS = ("none", "mean", "max", "attention")
TRUNKS = ("torch", "t5")
DECODERS = ("torch", "t5")
HEADS = ("generation", "classification")

_KEYS = {
    "head", "num_layers", "d_model", "num_heads", "ff_dim", "dropout", "fusion_spec", "pooling",
    "pooled", "tokenizers", "patch_size", "vocab_size", "type_embeddings", "position_embeddings",
    "trunk", "t5", "freeze_trunk", "decoder", "decoder_layers", "vit", "vit_config", "freeze_vit",
    "vit_cache", "allow_missing",
    "pad_id", "bos_id", "eos_id",
}  # fmt: skip


@dataclass
class TokenFusionConfig:
    """Resolved, validated settings; see docs/transformer.md for the meaning of each field."""

    input_shapes: dict[str, tuple[int, ...]]
    num_outputs: int
    head: str = "generation"
    num_layers: int = 4
    d_model: int = 64
    num_heads: int = 4
    ff_dim: int = 256
    dropout: float = 0.1
    fusion_spec: dict[int, list[str]] = field(default_factory=dict)
    pooling: dict[str, str] = field(default_factory=dict)
    pooled: dict[str, int] = field(default_factory=dict)
    tokenizers: dict[str, str] = field(default_factory=dict)
    patch_size: dict[str, tuple[int, int]] = field(default_factory=dict)
    vocab_size: int | None = None
    type_embeddings: bool = True
    position_embeddings: bool = True
    trunk: str = "torch"
    t5: str | None = None
    freeze_trunk: bool = False
    decoder: str = "torch"
    decoder_layers: int = 2
    vit: str | None = None
    vit_config: dict[str, Any] = field(default_factory=dict)
    freeze_vit: bool = True
    vit_cache: str | None = None
    allow_missing: bool = False
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    @property
    def modalities(self) -> tuple[str, ...]:
        """Used modalities in fusion order (by layer, then as listed)."""
        return tuple(m for layer in sorted(self.fusion_spec) for m in self.fusion_spec[layer])

    def fusion_layer(self, modality: str) -> int:
        """Encoder layer at whose input ``modality``'s tokens join the sequence."""
        for layer, names in self.fusion_spec.items():
            if modality in names:
                return layer
        raise KeyError(modality)


def parse_config(
    config: Mapping[str, Any],
    *,
    input_shapes: Mapping[str, tuple[int, ...]],
    num_outputs: int,
) -> TokenFusionConfig:
    """Validate plain config values (``name`` already removed) against ``input_shapes``."""
    unknown = sorted(set(config) - _KEYS - {"name"})
    if unknown:
        raise ValueError(
            f"model: unknown key {unknown[0]!r} for model family 'token_fusion'; allowed: "
            f"{sorted(_KEYS)}"
        )
    if not input_shapes:
        raise ValueError("token_fusion: input_shapes must name at least one modality")
    shapes = {str(m): tuple(int(s) for s in v) for m, v in input_shapes.items()}
    c = dict(config)
    num_layers = int_value("num_layers", c.get("num_layers", 4), 1)
    d_model = int_value("d_model", c.get("d_model", 64), 1)
    num_heads = int_value("num_heads", c.get("num_heads", 4), 1)
    dropout = c.get("dropout", 0.1)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"model.dropout: expected a float in [0, 1), got {dropout!r}")
    cfg = TokenFusionConfig(
        input_shapes=shapes,
        num_outputs=int_value("num_outputs", num_outputs, 1),
        head=choice("head", c.get("head", "generation"), HEADS),
        num_layers=num_layers,
        d_model=d_model,
        num_heads=num_heads,
        ff_dim=int_value("ff_dim", c.get("ff_dim", 4 * d_model), 1),
        dropout=float(dropout),
        fusion_spec=fusion_spec(c.get("fusion_spec"), num_layers, shapes),
        type_embeddings=bool_value("type_embeddings", c.get("type_embeddings", True)),
        position_embeddings=bool_value("position_embeddings", c.get("position_embeddings", True)),
        trunk=choice("trunk", c.get("trunk", "torch"), TRUNKS),
        t5=c.get("t5"),
        freeze_trunk=bool_value("freeze_trunk", c.get("freeze_trunk", False)),
        decoder=choice(
            "decoder", c.get("decoder", "t5" if c.get("t5") is not None else "torch"), DECODERS
        ),
        decoder_layers=int_value("decoder_layers", c.get("decoder_layers", 2), 1),
        vit=c.get("vit"),
        vit_config=dict(c.get("vit_config") or {}),
        freeze_vit=bool_value("freeze_vit", c.get("freeze_vit", True)),
        vit_cache=c.get("vit_cache"),
        allow_missing=bool_value("allow_missing", c.get("allow_missing", False)),
        pad_id=int_value("pad_id", c.get("pad_id", 0), 0),
        bos_id=int_value("bos_id", c.get("bos_id", 1), 0),
        eos_id=int_value("eos_id", c.get("eos_id", 2), 0),
    )
    if d_model % num_heads:
        raise ValueError(
            f"model.num_heads: must divide d_model = {d_model}, got num_heads = {num_heads}"
        )
    for key in ("t5", "vit", "vit_cache"):
        value = getattr(cfg, key)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"model.{key}: expected a local path or hub name (str), got {value!r}")
    if cfg.t5 is not None and cfg.trunk != "t5":
        raise ValueError(f"model.t5: a pretrained T5 needs trunk = 't5', got trunk = {cfg.trunk!r}")

    raw_tok = c.get("tokenizers") or {}
    for m, t in raw_tok.items():
        modality_name("tokenizers", m, shapes)
        choice(f"tokenizers.{m}", t, TOKENIZERS)
    cfg.tokenizers = {
        m: str(raw_tok.get(m) or default_tokenizer(m, shapes[m])) for m in cfg.modalities
    }

    if cfg.vit_cache is not None and "vit" not in cfg.tokenizers.values():
        raise ValueError(
            "model.vit_cache: caches the outputs of a 'vit' tokenizer, but no modality uses one "
            f"(tokenizers: {cfg.tokenizers})"
        )

    for m, kind in cfg.tokenizers.items():
        ranks = {"embedding": (1,), "patch": (3,), "linear": (1, 2), "vit": (3,)}[kind]
        if len(shapes[m]) not in ranks:
            raise ValueError(
                f"model.tokenizers.{m}: tokenizer {kind!r} needs per-sample rank {ranks}, but "
                f"modality {m!r} has shape {shapes[m]}"
            )
    cfg.patch_size = patch_sizes(c.get("patch_size", 4), cfg.tokenizers, shapes)

    raw_pool = c.get("pooling", "none")
    if isinstance(raw_pool, str):
        choice("pooling", raw_pool, POOLINGS)
        pool_of = dict.fromkeys(cfg.modalities, raw_pool)
    elif isinstance(raw_pool, Mapping):
        pool_of = dict.fromkeys(cfg.modalities, "none")
        for m, p in raw_pool.items():
            modality_name("pooling", m, shapes)
            pool_of[str(m)] = choice(f"pooling.{m}", p, POOLINGS)
    else:
        raise TypeError(
            f"model.pooling: expected one of {list(POOLINGS)} or a table modality -> pooling, "
            f"got {raw_pool!r}"
        )
    raw_pooled = c.get("pooled") or {}
    if not isinstance(raw_pooled, Mapping):
        raise TypeError(
            f"model.pooled: expected a table modality -> token count, got {raw_pooled!r}"
        )
    for m, n in raw_pooled.items():
        modality_name("pooled", m, shapes)
        cfg.pooled[str(m)] = int_value(f"pooled.{m}", n, 1)
    # A global pooling string applies only to the modalities given a length in `pooled`.
    cfg.pooling = {
        m: (p if isinstance(raw_pool, Mapping) or m in cfg.pooled else "none")
        for m, p in pool_of.items()
    }
    for m, p in cfg.pooling.items():
        if p != "none" and m not in cfg.pooled:
            raise ValueError(
                f"model.pooled: modality {m!r} uses pooling {p!r} but has no token count; "
                f"add pooled.{m} = N (1 <= N <= its token count)"
            )
    for m in cfg.pooled:
        if m in cfg.pooling and cfg.pooling[m] == "none":
            raise ValueError(
                f"model.pooling: pooled.{m} = {cfg.pooled[m]} is given but modality {m!r} has "
                f"pooling 'none'; allowed poolings: {list(POOLINGS[1:])}"
            )

    vocab = c.get("vocab_size")
    if vocab is not None:
        cfg.vocab_size = int_value("vocab_size", vocab, 1)
    elif cfg.head == "generation":
        cfg.vocab_size = cfg.num_outputs
    needs_vocab = [m for m, t in cfg.tokenizers.items() if t == "embedding"]
    if needs_vocab and cfg.vocab_size is None and (cfg.trunk != "t5" or cfg.t5 is None):
        raise ValueError(
            f"model.vocab_size: modality {needs_vocab[0]!r} uses an 'embedding' tokenizer; with "
            f"head = 'classification' its vocabulary size must be given (int >= 1)"
        )
    if cfg.head == "generation":
        for key in ("pad_id", "bos_id", "eos_id"):
            if getattr(cfg, key) >= cfg.num_outputs:
                raise ValueError(
                    f"model.{key}: {getattr(cfg, key)} is outside the vocabulary "
                    f"(num_outputs = {cfg.num_outputs}); allowed: 0 .. {cfg.num_outputs - 1}"
                )
    return cfg
