"""Copy weights into a model whose layers take extra input channels (Pro-Fusion ``concat``)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def copy_widened_state(src: nn.Module, dst: nn.Module) -> None:
    """Copy every tensor of ``src`` into ``dst``; where ``dst`` is larger along one dim (a widened
    input), the leading slice receives ``src`` and the rest keeps ``dst``'s initialisation.

    ``ValueError`` naming the tensor when names differ or shapes differ otherwise.
    """
    s_state, d_state = src.state_dict(), dst.state_dict()
    if set(s_state) != set(d_state):
        diff = sorted(set(s_state) ^ set(d_state))
        raise ValueError(f"copy_widened_state: models differ in tensor {diff[0]!r}")
    for name, s in s_state.items():
        d = d_state[name]
        if s.shape == d.shape:
            d.copy_(s)
            continue
        grown = [i for i, (a, b) in enumerate(zip(s.shape, d.shape, strict=False)) if a != b]
        if s.dim() != d.dim() or len(grown) != 1 or s.shape[grown[0]] > d.shape[grown[0]]:
            raise ValueError(f"copy_widened_state: tensor {name!r} has shape {tuple(s.shape)} in "
                             f"the base and {tuple(d.shape)} in the widened model")
        d.narrow(grown[0], 0, s.shape[grown[0]]).copy_(s)
