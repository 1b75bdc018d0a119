"""Config factories of the ``staged`` and ``clstm`` model families (``docs/models.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from fuselab._validate import known_keys
from fuselab.models.clstm import build_clstm
from fuselab.models.progressive import wrap_progressive
from fuselab.models.registry import register
from fuselab.models.staged import build_staged

STAGED_KEYS = ("encoders", "fusion", "head", "drop", "drop_mode", "progressive")


@register("staged")
def staged(
    config: Mapping[str, Any], *, input_shapes: Mapping[str, tuple[int, ...]], num_outputs: int
) -> nn.Module:
    """Staged encoders + fusion plan + head, optionally wrapped by Progressive Fusion."""
    known_keys(config, STAGED_KEYS, "model")
    for req in ("encoders", "fusion"):
        if req not in config:
            raise ValueError(f"model: the 'staged' family needs key {req!r} (see docs/models.md)")
    model: nn.Module = build_staged(
        config["encoders"],
        config["fusion"],
        input_shapes=input_shapes,
        num_outputs=num_outputs,
        head=config.get("head"),
        drop=list(config.get("drop", [])),
        drop_mode=config.get("drop_mode", "remove"),
    )
    if "progressive" in config:
        model = wrap_progressive(model, config["progressive"])
    return model


@register("clstm")
def clstm(
    config: Mapping[str, Any], *, input_shapes: Mapping[str, tuple[int, ...]], num_outputs: int
) -> nn.Module:
    """The paper-000 multimodal C-LSTM with a selectable fusion layer."""
    return build_clstm(config, input_shapes=input_shapes, num_outputs=num_outputs)
