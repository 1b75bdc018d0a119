"""The multimodal convolutional LSTM of paper 000 (``name = "clstm"``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from fuselab._validate import choice, known_keys
from fuselab.models.clstm.cell import ConvLSTMCell
from fuselab.models.clstm.common import CLSTM_KEYS, FUSION_LAYERS, CLSTMBase
from fuselab.models.clstm.fc import FCFusionCLSTM
from fuselab.models.clstm.model import InitialFusionCLSTM, SecondFusionCLSTM

VARIANTS: dict[str, type[CLSTMBase]] = {
    "initial": InitialFusionCLSTM,
    "second": SecondFusionCLSTM,
    "fc": FCFusionCLSTM,
    "visual-only": InitialFusionCLSTM,
    "audio-only": InitialFusionCLSTM,
}
"""C-LSTM class per ``fusion_layer`` value (the unimodal variants use the initial-fusion model)."""


def build_clstm(
    config: Mapping[str, Any], *, input_shapes: Mapping[str, tuple[int, ...]], num_outputs: int
) -> nn.Module:
    """Build a C-LSTM variant from a ``clstm`` config table (without ``name``)."""
    from fuselab.models.progressive import wrap_progressive

    known_keys(config, CLSTM_KEYS, "model")
    layer = choice(config.get("fusion_layer", "initial"), "model.fusion_layer", FUSION_LAYERS)
    kwargs = {k: v for k, v in config.items() if k not in ("fusion_layer", "progressive")}
    model: nn.Module = VARIANTS[layer](layer, input_shapes=input_shapes, num_outputs=num_outputs,
                                       **kwargs)
    if "progressive" in config:
        if layer != "fc":
            raise ValueError(f"model.progressive: Progressive Fusion needs a late-style model; "
                             f"allowed with fusion_layer ['fc'], got {layer!r}")
        model = wrap_progressive(model, config["progressive"])
    return model


__all__ = [
    "VARIANTS",
    "CLSTMBase",
    "ConvLSTMCell",
    "FCFusionCLSTM",
    "InitialFusionCLSTM",
    "SecondFusionCLSTM",
    "build_clstm",
]
