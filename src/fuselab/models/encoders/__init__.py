"""Staged modality encoders, registered by type name (see :mod:`fuselab.models.encoders.base`)."""

from fuselab.models.encoders import attention, cnn, sequence  # noqa: F401  (register the types)
from fuselab.models.encoders.base import (
    ENCODERS,
    PRESETS,
    Stage,
    StagedEncoder,
    StageSpec,
    available,
    build_encoder,
    encoder_stage_names,
    register,
    register_encoder,
    resolve_encoder_config,
)

__all__ = [
    "ENCODERS",
    "PRESETS",
    "Stage",
    "StageSpec",
    "StagedEncoder",
    "available",
    "build_encoder",
    "encoder_stage_names",
    "register",
    "register_encoder",
    "resolve_encoder_config",
]
