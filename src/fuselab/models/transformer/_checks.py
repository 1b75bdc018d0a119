"""Validators of single config keys for :mod:`fuselab.models.transformer.config`.

Each raises ``TypeError``/``ValueError`` naming ``model.<key>``, the allowed values and what
arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOKENIZERS = ("embedding", "patch", "linear", "vit")


def int_value(key: str, value: Any, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"model.{key}: expected an int, got {value!r} ({type(value).__name__})")
    if low is not None and value < low:
        raise ValueError(f"model.{key}: must be >= {low}, got {value}")
    return value


def bool_value(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"model.{key}: expected true or false, got {value!r}")
    return value


def choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"model.{key}: unknown value {value!r}; allowed: {list(allowed)}")
    return str(value)


def modality_name(key: str, name: Any, input_shapes: Mapping[str, tuple[int, ...]]) -> str:
    if name not in input_shapes:
        raise ValueError(
            f"model.{key}: unknown modality {name!r}; allowed (from input_shapes): "
            f"{sorted(input_shapes)}"
        )
    return str(name)


def fusion_spec(
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
            modality_name(f"fusion_spec[{key!r}]", m, input_shapes)
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


def patch_pair(key: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int_value(key, value[0], 1), int_value(key, value[1], 1)
    if isinstance(value, int) and not isinstance(value, bool):
        p = int_value(key, value, 1)
        return p, p
    raise TypeError(f"model.{key}: expected an int or a [height, width] pair, got {value!r}")


def patch_sizes(
    raw: Any, tokenizers: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, int]]:
    """Patch ``(height, width)`` per ``patch`` modality: one size for all, or a table."""
    per: dict[str, Any] = {}
    if isinstance(raw, Mapping):
        for m, v in raw.items():
            modality_name("patch_size", m, shapes)
            per[str(m)] = v
        default: Any = 4
    else:
        default = raw
    out = {}
    for m, kind in tokenizers.items():
        if kind != "patch":
            continue
        key = f"patch_size.{m}" if m in per else "patch_size"
        ph, pw = patch_pair(key, per.get(m, default))
        h, w = shapes[m][1], shapes[m][2]
        if h % ph or w % pw:
            raise ValueError(
                f"model.{key}: patch ({ph}, {pw}) must divide the height and width of modality "
                f"{m!r} (shape {shapes[m]}); allowed: divisors of {h} and of {w}"
            )
        out[m] = (ph, pw)
    return out


def default_tokenizer(name: str, shape: tuple[int, ...]) -> str:
    by_rank = {1: "embedding", 2: "linear", 3: "patch"}
    if len(shape) not in by_rank:
        raise ValueError(
            f"model.tokenizers: modality {name!r} has per-sample shape {shape}; no default "
            f"tokenizer for rank {len(shape)} (allowed ranks: 1 token ids, 2 feature sequence, "
            f"3 image); name one of {list(TOKENIZERS)}"
        )
    return by_rank[len(shape)]
