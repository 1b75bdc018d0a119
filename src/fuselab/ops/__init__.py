"""Fused autograd ops for the hot paths of fuselab models (see :mod:`fuselab.ops.bn_relu_pool`)."""

from fuselab.ops.bn_relu_pool import bn_relu_maxpool
from fuselab.ops.native import library as native_library

__all__ = ["bn_relu_maxpool", "native_library"]
