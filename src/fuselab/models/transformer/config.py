"""Validated config of the token-fusion transformer (schema: docs/transformer.md).

``parse_config(config, input_shapes=..., num_outputs=...)`` turns plain (TOML/dict) values into a
:class:`TokenFusionConfig`; every mistake is a ``ValueError``/``TypeError`` raised here, at build
time, naming the config key, the allowed values and what arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

POOLINGS = ("none", "mean", "max", "attention")
TOKENIZERS = ("embedding", "patch", "linear", "vit")
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
    patch_size: int = 4
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


def _int(key: str, value: Any, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"model.{key}: expected an int, got {value!r} ({type(value).__name__})")
    if low is not None and value < low:
        raise ValueError(f"model.{key}: must be >= {low}, got {value}")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"model.{key}: expected true or false, got {value!r}")
    return value


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"model.{key}: unknown value {value!r}; allowed: {list(allowed)}")
    return str(value)


def _modality(key: str, name: Any, input_shapes: Mapping[str, tuple[int, ...]]) -> str:
    if name not in input_shapes:
        raise ValueError(
            f"model.{key}: unknown modality {name!r}; allowed (from input_shapes): "
            f"{sorted(input_shapes)}"
        )
    return str(name)


def _fusion_spec(
    raw: Any, num_layers: int, input_shapes: Mapping[str, tuple[int, ...]]
) -> dict[int, list[str]]:
    if raw is None:
        return {0: list(input_shapes)}
    if not isinstance(raw, Mapping) or not raw:
        raise TypeError(
            f"model.fusion_spec: expected a non-empty table layer -> list of modalities, "
            f"e.g. {{'0': ['question'], '2': ['image']}}, got {raw!r}"
        )
    spec: dict[int, list[str]] = {}
    seen: dict[str, int] = {}
    for key, names in raw.items():
        try:
            layer = int(key) if not isinstance(key, bool) else None
        except (TypeError, ValueError):
            layer = None
        if layer is None or str(key).strip() != str(layer):
            raise ValueError(
                f"model.fusion_spec: layer key {key!r} is not an integer; allowed: 0 .. "
                f"{num_layers - 1}"
            )
        if not 0 <= layer < num_layers:
            raise ValueError(
                f"model.fusion_spec: layer {layer} is outside the encoder (num_layers = "
                f"{num_layers}); allowed layers: 0 .. {num_layers - 1}"
            )
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
            raise TypeError(
                f"model.fusion_spec[{key!r}]: expected a non-empty list of modality names, "
                f"got {names!r}"
            )
        for m in names:
            _modality(f"fusion_spec[{key!r}]", m, input_shapes)
            if m in seen:
                raise ValueError(
                    f"model.fusion_spec: modality {m!r} is fused twice (layers {seen[m]} and "
                    f"{layer}); each modality joins the sequence once"
                )
            seen[m] = layer
        spec.setdefault(layer, []).extend(str(m) for m in names)
    if 0 not in spec:
        raise ValueError(
            f"model.fusion_spec: layer 0 must name at least one modality (the encoder's first "
            f"layer needs tokens), got layers {sorted(spec)}; allowed layers: 0 .. {num_layers - 1}"
        )
    return dict(sorted(spec.items()))


def _default_tokenizer(name: str, shape: tuple[int, ...]) -> str:
    by_rank = {1: "embedding", 2: "linear", 3: "patch"}
    if len(shape) not in by_rank:
        raise ValueError(
            f"model.tokenizers: modality {name!r} has per-sample shape {shape}; no default "
            f"tokenizer for rank {len(shape)} (allowed ranks: 1 token ids, 2 feature sequence, "
            f"3 image); name one of {list(TOKENIZERS)}"
        )
    return by_rank[len(shape)]


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
    num_layers = _int("num_layers", c.get("num_layers", 4), 1)
    d_model = _int("d_model", c.get("d_model", 64), 1)
    num_heads = _int("num_heads", c.get("num_heads", 4), 1)
    dropout = c.get("dropout", 0.1)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"model.dropout: expected a float in [0, 1), got {dropout!r}")
    cfg = TokenFusionConfig(
        input_shapes=shapes,
        num_outputs=_int("num_outputs", num_outputs, 1),
        head=_choice("head", c.get("head", "generation"), HEADS),
        num_layers=num_layers,
        d_model=d_model,
        num_heads=num_heads,
        ff_dim=_int("ff_dim", c.get("ff_dim", 4 * d_model), 1),
        dropout=float(dropout),
        fusion_spec=_fusion_spec(c.get("fusion_spec"), num_layers, shapes),
        patch_size=_int("patch_size", c.get("patch_size", 4), 1),
        type_embeddings=_bool("type_embeddings", c.get("type_embeddings", True)),
        position_embeddings=_bool("position_embeddings", c.get("position_embeddings", True)),
        trunk=_choice("trunk", c.get("trunk", "torch"), TRUNKS),
        t5=c.get("t5"),
        freeze_trunk=_bool("freeze_trunk", c.get("freeze_trunk", False)),
        decoder=_choice("decoder", c.get("decoder", "torch"), DECODERS),
        decoder_layers=_int("decoder_layers", c.get("decoder_layers", 2), 1),
        vit=c.get("vit"),
        vit_config=dict(c.get("vit_config") or {}),
        freeze_vit=_bool("freeze_vit", c.get("freeze_vit", True)),
        vit_cache=c.get("vit_cache"),
        allow_missing=_bool("allow_missing", c.get("allow_missing", False)),
        pad_id=_int("pad_id", c.get("pad_id", 0), 0),
        bos_id=_int("bos_id", c.get("bos_id", 1), 0),
        eos_id=_int("eos_id", c.get("eos_id", 2), 0),
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
        _modality("tokenizers", m, shapes)
        _choice(f"tokenizers.{m}", t, TOKENIZERS)
    cfg.tokenizers = {
        m: str(raw_tok.get(m) or _default_tokenizer(m, shapes[m])) for m in cfg.modalities
    }

    if cfg.vit_cache is not None and "vit" not in cfg.tokenizers.values():
        raise ValueError(
            "model.vit_cache: caches the outputs of a 'vit' tokenizer, but no modality uses one "
            f"(tokenizers: {cfg.tokenizers})"
        )

    raw_pool = c.get("pooling", "none")
    if isinstance(raw_pool, str):
        _choice("pooling", raw_pool, POOLINGS)
        pool_of = dict.fromkeys(cfg.modalities, raw_pool)
    elif isinstance(raw_pool, Mapping):
        pool_of = dict.fromkeys(cfg.modalities, "none")
        for m, p in raw_pool.items():
            _modality("pooling", m, shapes)
            pool_of[str(m)] = _choice(f"pooling.{m}", p, POOLINGS)
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
        _modality("pooled", m, shapes)
        cfg.pooled[str(m)] = _int(f"pooled.{m}", n, 1)
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
        cfg.vocab_size = _int("vocab_size", vocab, 1)
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
