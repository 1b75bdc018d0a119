"""Models: *where* modalities meet — staged encoders + fusion plans, C-LSTM, token fusion, Pro-Fusion.

    model = fuselab.models.build({"name": "staged", ...}, input_shapes=ds.shapes, num_outputs=10)

Config schema: ``docs/models.md`` (``staged``, ``clstm``) and ``docs/transformer.md``.
"""

from fuselab.models import families, transformer  # noqa: F401  (register the families)
from fuselab.models.encoders import ENCODERS, PRESETS, StagedEncoder, build_encoder
from fuselab.models.encoders.cnn import prefers_channels_last, set_fused
from fuselab.models.layout import memory_formats, restore_memory_formats
from fuselab.models.progressive import ProgressiveFusion
from fuselab.models.registry import MODELS, available, build, register, register_model
from fuselab.models.staged import LateStagedModel, StagedModel, build_staged
from fuselab.models.unimodal import unimodal_config

__all__ = [
    "ENCODERS",
    "MODELS",
    "PRESETS",
    "LateStagedModel",
    "ProgressiveFusion",
    "StagedEncoder",
    "StagedModel",
    "available",
    "build",
    "build_encoder",
    "build_staged",
    "memory_formats",
    "prefers_channels_last",
    "register",
    "register_model",
    "restore_memory_formats",
    "set_fused",
    "unimodal_config",
]
