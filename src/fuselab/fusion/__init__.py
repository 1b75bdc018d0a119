"""Fusion operators: *how* modalities are combined.

Every operator is a small ``nn.Module`` taking named modalities (``dict[str, Tensor]``) and is
buildable by name::

    import fuselab as fl
    op = fl.fusion.build("lowrank", in_dims={"image": 64, "audio": 32}, out_dim=128, rank=4)
    z = op({"image": x_img, "audio": x_aud})   # (B, 128)
    fl.fusion.available()
"""

from fuselab.fusion.base import FeatureMapOp, FusionOp, count_parameters
from fuselab.fusion.concat import ConcatFusion
from fuselab.fusion.describe import describe
from fuselab.fusion.registry import OPERATORS, available, build, register

__all__ = [
    "OPERATORS",
    "ConcatFusion",
    "FeatureMapOp",
    "FusionOp",
    "available",
    "build",
    "count_parameters",
    "describe",
    "register",
]
