"""Parsers of the token-fusion config keys that no other model family has (``fusion_spec``,
patch sizes, default tokenizers); the generic checks (ints, modality names, pairs) are
:mod:`fuselab._validate`, with its ``(value, path)`` order. Each raises ``TypeError``/
``ValueError`` naming ``model.<key>``, the allowed values and what arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fuselab._validate import int_pair, modality_name

TOKENIZERS = ("embedding", "patch", "linear", "vit")


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
                f"model.fusion_spec: layer key {key!r} is not an integer; allowed: "
                f"{_layer_range(num_layers)}"
            )
        if not 0 <= layer <= num_layers:
            raise ValueError(
                f"model.fusion_spec: layer {layer} is outside the encoder (num_layers = "
                f"{num_layers}); allowed layers: {_layer_range(num_layers)}"
            )
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
            raise TypeError(
                f"model.fusion_spec[{key!r}]: expected a non-empty list of modality names, "
                f"got {names!r}"
            )
        for m in names:
            modality_name(m, f"model.fusion_spec[{key!r}]", input_shapes)
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
            f"layer needs tokens), got layers {sorted(spec)}; allowed layers: "
            f"{_layer_range(num_layers)}"
        )
    return dict(sorted(spec.items()))


def _layer_range(num_layers: int) -> str:
    """Allowed fusion layers: at the input of layer ``0 .. L-1``, or ``L`` = after the last."""
    return f"0 .. {num_layers} ({num_layers} = after the last layer)"


def patch_sizes(
    raw: Any, tokenizers: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, int]]:
    """Patch ``(height, width)`` per ``patch`` modality: one size for all, or a table."""
    per: dict[str, Any] = {}
    if isinstance(raw, Mapping):
        for m, v in raw.items():
            modality_name(m, "model.patch_size", shapes)
            per[str(m)] = v
        default: Any = 4
    else:
        default = raw
    out = {}
    for m, kind in tokenizers.items():
        if kind != "patch":
            continue
        key = f"patch_size.{m}" if m in per else "patch_size"
        ph, pw = int_pair(per.get(m, default), f"model.{key}")
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
