"""Validated config of the token-fusion transformer (schema: docs/transformer.md).

``parse_config(config, input_shapes=..., num_outputs=...)`` turns plain (TOML/dict) values into a
:class:`TokenFusionConfig`; every mistake is a ``ValueError``/``TypeError`` raised here, at build
time, naming the config key, the allowed values and what arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fuselab._validate import (
    choice,
    flag,
    fraction,
    known_keys,
    modality_name,
    pos_int,
    rename_deprecated,
)
from fuselab.models.transformer.keys import (
    TOKENIZERS,
    default_tokenizer,
    fusion_spec,
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
        """Encoder layer at whose input ``modality``'s tokens join the sequence (``num_layers``:
        after the last layer)."""
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
    # the vocabulary of every fuselab transformer: num_layers / num_heads (old spellings warn)
    config = rename_deprecated(config, {"layers": "num_layers", "heads": "num_heads"}, "model")
    known_keys(config, _KEYS | {"name"}, "model")
    if not input_shapes:
        raise ValueError("token_fusion: input_shapes must name at least one modality")
    shapes = {str(m): tuple(int(s) for s in v) for m, v in input_shapes.items()}
    c = dict(config)
    cfg = _scalars(c, shapes, num_outputs)
    cfg.tokenizers = _tokenizers(c.get("tokenizers") or {}, cfg, shapes)
    cfg.patch_size = patch_sizes(c.get("patch_size", 4), cfg.tokenizers, shapes)
    cfg.pooling, cfg.pooled = _pooling(c.get("pooling", "none"), c.get("pooled"), cfg, shapes)
    cfg.vocab_size = _vocab_size(c.get("vocab_size"), cfg)
    _check_special_ids(cfg)
    return cfg


def _int(c: Mapping[str, Any], key: str, default: int, minimum: int = 1) -> int:
    return pos_int(c.get(key, default), f"model.{key}", minimum)


def _path(c: Mapping[str, Any], key: str) -> str | None:
    value = c.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"model.{key}: expected a local path or hub name (str), got {value!r}")
    return value


def _scalars(
    c: Mapping[str, Any], shapes: dict[str, tuple[int, ...]], num_outputs: int
) -> TokenFusionConfig:
    """Every key that does not depend on another modality-level key (sizes, switches, paths)."""
    num_layers, d_model, num_heads = (
        _int(c, "num_layers", 4), _int(c, "d_model", 64), _int(c, "num_heads", 4)
    )  # fmt: skip
    if d_model % num_heads:
        raise ValueError(
            f"model.num_heads: must divide d_model = {d_model}, got num_heads = {num_heads}"
        )
    t5 = _path(c, "t5")
    cfg = TokenFusionConfig(
        input_shapes=shapes,
        num_outputs=pos_int(num_outputs, "num_outputs"),
        head=choice(c.get("head", "generation"), "model.head", HEADS),
        num_layers=num_layers, d_model=d_model, num_heads=num_heads,
        ff_dim=_int(c, "ff_dim", 4 * d_model),
        dropout=fraction(c.get("dropout", 0.1), "model.dropout"),
        fusion_spec=fusion_spec(c.get("fusion_spec"), num_layers, shapes),
        type_embeddings=flag(c.get("type_embeddings", True), "model.type_embeddings"),
        position_embeddings=flag(c.get("position_embeddings", True), "model.position_embeddings"),
        trunk=choice(c.get("trunk", "torch"), "model.trunk", TRUNKS),
        t5=t5,
        freeze_trunk=flag(c.get("freeze_trunk", False), "model.freeze_trunk"),
        decoder=choice(c.get("decoder", "torch" if t5 is None else "t5"), "model.decoder", DECODERS),
        decoder_layers=_int(c, "decoder_layers", 2),
        vit=_path(c, "vit"),
        vit_config=dict(c.get("vit_config") or {}),
        freeze_vit=flag(c.get("freeze_vit", True), "model.freeze_vit"),
        vit_cache=_path(c, "vit_cache"),
        allow_missing=flag(c.get("allow_missing", False), "model.allow_missing"),
        pad_id=_int(c, "pad_id", 0, 0), bos_id=_int(c, "bos_id", 1, 0), eos_id=_int(c, "eos_id", 2, 0),
    )  # fmt: skip
    if cfg.t5 is not None and cfg.trunk != "t5":
        raise ValueError(f"model.t5: a pretrained T5 needs trunk = 't5', got trunk = {cfg.trunk!r}")
    return cfg


_RANKS = {"embedding": (1,), "patch": (3,), "linear": (1, 2), "vit": (3,)}


def _tokenizers(
    raw: Mapping[str, Any], cfg: TokenFusionConfig, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, str]:
    """Tokenizer per used modality: as named, else the default for its input rank."""
    for m, t in raw.items():
        modality_name(m, "model.tokenizers", shapes)
        choice(t, f"model.tokenizers.{m}", TOKENIZERS)
    out = {m: str(raw.get(m) or default_tokenizer(m, shapes[m])) for m in cfg.modalities}
    if cfg.vit_cache is not None and "vit" not in out.values():
        raise ValueError(
            "model.vit_cache: caches the outputs of a 'vit' tokenizer, but no modality uses one "
            f"(tokenizers: {out})"
        )
    for m, kind in out.items():
        if len(shapes[m]) not in _RANKS[kind]:
            raise ValueError(
                f"model.tokenizers.{m}: tokenizer {kind!r} needs per-sample rank {_RANKS[kind]}, "
                f"but modality {m!r} has shape {shapes[m]}"
            )
    return out


def _pooling(
    raw_pool: Any, raw_pooled: Any, cfg: TokenFusionConfig, shapes: Mapping[str, tuple[int, ...]]
) -> tuple[dict[str, str], dict[str, int]]:
    """``(pooling per used modality, pooled token count per pooled modality)``.

    A global pooling string applies only to the modalities given a length in ``pooled``.
    """
    if isinstance(raw_pool, str):
        choice(raw_pool, "model.pooling", POOLINGS)
        pool_of = dict.fromkeys(cfg.modalities, raw_pool)
    elif isinstance(raw_pool, Mapping):
        pool_of = dict.fromkeys(cfg.modalities, "none")
        for m, p in raw_pool.items():
            modality_name(m, "model.pooling", shapes)
            pool_of[str(m)] = choice(p, f"model.pooling.{m}", POOLINGS)
    else:
        raise TypeError(
            f"model.pooling: expected one of {list(POOLINGS)} or a table modality -> pooling, "
            f"got {raw_pool!r}"
        )
    raw_pooled = raw_pooled or {}
    if not isinstance(raw_pooled, Mapping):
        raise TypeError(
            f"model.pooled: expected a table modality -> token count, got {raw_pooled!r}"
        )
    pooled = {
        modality_name(m, "model.pooled", shapes): pos_int(n, f"model.pooled.{m}")
        for m, n in raw_pooled.items()
    }
    pooling = {
        m: (p if isinstance(raw_pool, Mapping) or m in pooled else "none")
        for m, p in pool_of.items()
    }
    for m, p in pooling.items():
        if p != "none" and m not in pooled:
            raise ValueError(
                f"model.pooled: modality {m!r} uses pooling {p!r} but has no token count; "
                f"add pooled.{m} = N (1 <= N <= its token count)"
            )
    for m, n in pooled.items():
        if pooling.get(m) == "none":
            raise ValueError(
                f"model.pooling: pooled.{m} = {n} is given but modality {m!r} has "
                f"pooling 'none'; allowed poolings: {list(POOLINGS[1:])}"
            )
    return pooling, pooled


def _vocab_size(raw: Any, cfg: TokenFusionConfig) -> int | None:
    """Vocabulary of ``embedding`` tokenizers (generation: the output vocabulary by default)."""
    if raw is not None:
        return pos_int(raw, "model.vocab_size")
    if cfg.head == "generation":
        return cfg.num_outputs
    needs = [m for m, t in cfg.tokenizers.items() if t == "embedding"]
    if needs and (cfg.trunk != "t5" or cfg.t5 is None):
        raise ValueError(
            f"model.vocab_size: modality {needs[0]!r} uses an 'embedding' tokenizer; with "
            f"head = 'classification' its vocabulary size must be given (int >= 1)"
        )
    return None


def _check_special_ids(cfg: TokenFusionConfig) -> None:
    if cfg.head != "generation":
        return
    for key in ("pad_id", "bos_id", "eos_id"):
        if getattr(cfg, key) >= cfg.num_outputs:
            raise ValueError(
                f"model.{key}: {getattr(cfg, key)} is outside the vocabulary "
                f"(num_outputs = {cfg.num_outputs}); allowed: 0 .. {cfg.num_outputs - 1}"
            )
