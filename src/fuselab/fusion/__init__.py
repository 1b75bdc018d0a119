"""Fusion operators: *how* modalities are combined.

Every operator is a small ``nn.Module`` taking named modalities (``dict[str, Tensor]``) and is
buildable by name::

    import fuselab as fl
    op = fl.fusion.build("lowrank", in_dims={"image": 64, "audio": 32}, out_dim=128, rank=4)
    z = op({"image": x_img, "audio": x_aud})   # (B, 128)
    fl.fusion.available()
"""

from fuselab.fusion.attention import AttentionFusion
from fuselab.fusion.base import FeatureMapOp, FusionOp, count_parameters
from fuselab.fusion.bilinear import BilinearFusion
from fuselab.fusion.checks import input_checks_enabled, set_input_checks
from fuselab.fusion.concat import ConcatFusion
from fuselab.fusion.cross_attention import CrossAttentionFusion
from fuselab.fusion.deepset import DeepsetFusion
from fuselab.fusion.describe import describe
from fuselab.fusion.gated import GatedFusion
from fuselab.fusion.late import LateFusion
from fuselab.fusion.lowrank import LowRankFusion
from fuselab.fusion.mcb import CompactBilinearFusion
from fuselab.fusion.mmtm import MMTM
from fuselab.fusion.msaf import MSAF, MSAFBlock
from fuselab.fusion.mult import MulTFusion
from fuselab.fusion.multiplicative import MultiplicativeFusion
from fuselab.fusion.nlgate import NLGateFusion
from fuselab.fusion.product import ProductFusion
from fuselab.fusion.registry import OPERATORS, available, build, register
from fuselab.fusion.shift import ShiftFusion
from fuselab.fusion.sum import SumFusion
from fuselab.fusion.tensor import TensorFusion

__all__ = [
    "MMTM",
    "MSAF",
    "OPERATORS",
    "AttentionFusion",
    "BilinearFusion",
    "CompactBilinearFusion",
    "ConcatFusion",
    "CrossAttentionFusion",
    "DeepsetFusion",
    "FeatureMapOp",
    "FusionOp",
    "GatedFusion",
    "LateFusion",
    "LowRankFusion",
    "MSAFBlock",
    "MulTFusion",
    "MultiplicativeFusion",
    "NLGateFusion",
    "ProductFusion",
    "ShiftFusion",
    "SumFusion",
    "TensorFusion",
    "available",
    "build",
    "count_parameters",
    "describe",
    "input_checks_enabled",
    "register",
    "set_input_checks",
]
