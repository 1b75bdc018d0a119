"""The ``"token_fusion"`` model family factory registered in ``fuselab.models.MODELS``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fuselab.models.registry import register
from fuselab.models.transformer.config import parse_config
from fuselab.models.transformer.model import TokenFusionTransformer


@register("token_fusion")
def build_token_fusion(
    config: Mapping[str, Any],
    *,
    input_shapes: Mapping[str, tuple[int, ...]],
    num_outputs: int,
) -> TokenFusionTransformer:
    """Validate ``config`` (docs/transformer.md) and build the model; errors name the key."""
    raw = dict(config)
    raw.pop("name", None)
    if raw.get("t5") is not None and raw.get("trunk", "t5") == "t5":
        raw.setdefault("trunk", "t5")
        _fill_from_pretrained_t5(raw)
    cfg = parse_config(raw, input_shapes=input_shapes, num_outputs=num_outputs)
    return TokenFusionTransformer(cfg)


def _fill_from_pretrained_t5(raw: dict[str, Any]) -> None:
    # The trunk's sizes are fixed by the checkpoint; reading only its config.json keeps the
    # validation of fusion_spec (against num_layers) at build time without loading weights twice.
    from transformers import T5Config

    try:
        t5 = T5Config.from_pretrained(raw["t5"])
    except (OSError, ValueError) as err:
        raise ValueError(f"model.t5: could not read a T5 config from {raw['t5']!r}: {err}") from err
    raw.setdefault("num_layers", t5.num_layers)
    raw.setdefault("d_model", t5.d_model)
    raw.setdefault("num_heads", t5.num_heads)
    raw.setdefault("ff_dim", t5.d_ff)
