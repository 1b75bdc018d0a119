"""The textbook reference and BatchNorm modules with ties, negative and zero weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def textbook(y: torch.Tensor, bn: nn.Module, k: int) -> torch.Tensor:
    pool = F.max_pool2d if y.dim() == 4 else F.max_pool1d
    return pool(F.relu(bn(y)), k, ceil_mode=True)


def make_bn(c: int, nd: int, dtype: torch.dtype, gen: torch.Generator, **kw: object) -> nn.Module:
    bn = (nn.BatchNorm2d if nd == 2 else nn.BatchNorm1d)(c, **kw).to(dtype)
    with torch.no_grad():
        if bn.weight is not None:
            bn.weight.copy_(torch.randn(c, generator=gen, dtype=dtype))
            bn.weight[0] = 0.0  # ties: the window's first element wins, as in aten
            if c > 1:
                bn.weight[1] = -bn.weight[1].abs() - 0.1  # negative: the window minimum wins
            bn.bias.copy_(torch.randn(c, generator=gen, dtype=dtype))
        if bn.running_mean is not None:
            bn.running_mean.copy_(torch.randn(c, generator=gen, dtype=dtype))
            bn.running_var.copy_(torch.rand(c, generator=gen, dtype=dtype) + 0.5)
    return bn
