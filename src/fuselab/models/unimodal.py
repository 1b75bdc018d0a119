"""Unimodal variants of a model config, for ablations (paper 000 section 5.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fuselab._validate import choice


def unimodal_config(config: Mapping[str, Any], keep: str, mode: str = "remove") -> dict[str, Any]:
    """A copy of a ``staged`` config using only modality ``keep``.

    ``mode="remove"`` removes the other branches; ``"mask"`` keeps them (same parameters) and feeds
    them zeros. ``ValueError`` naming ``keep`` and the allowed modalities when it is not an encoder.
    """
    if config.get("name") != "staged":
        raise ValueError(f"unimodal_config: model.name must be 'staged', got {config.get('name')!r}; "
                         "for the C-LSTM use fusion_layer = 'visual-only' / 'audio-only'")
    encoders = config.get("encoders", {})
    if keep not in encoders:
        raise ValueError(f"unimodal_config: keep={keep!r} is not an encoder; allowed: "
                         f"{list(encoders)}")
    choice(mode, "unimodal_config.mode", ("remove", "mask"))
    out = dict(config)
    out["drop"] = [m for m in encoders if m != keep]
    out["drop_mode"] = mode
    return out
