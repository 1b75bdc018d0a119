"""Memory layout of a model's 4-D tensors: take a snapshot, switch to channels-last for speed, and
give every tensor back the layout it had (``fit`` and the evaluations leave the caller's model as
they found it).

Shapes: only 4-D parameters and buffers (2-D convolution weights ``(C_out, C_in, kH, kW)``) have a
channels-last form; other tensors are never touched.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def memory_formats(model: nn.Module) -> dict[str, torch.memory_format]:
    """``{name: layout}`` of every 4-D parameter and buffer of ``model`` (the contiguous or the
    channels-last format; a tensor in neither, e.g. a strided view, is left out)."""
    out: dict[str, torch.memory_format] = {}
    for name, t in itertools.chain(model.named_parameters(), model.named_buffers()):
        if t.dim() != 4:
            continue
        if t.is_contiguous():
            out[name] = torch.contiguous_format
        elif t.is_contiguous(memory_format=torch.channels_last):
            out[name] = torch.channels_last
    return out


def restore_memory_formats(model: nn.Module, formats: dict[str, torch.memory_format]) -> None:
    """Give each tensor named in ``formats`` that layout again; parameters stay the same
    ``nn.Parameter`` objects (an optimizer holding them keeps working)."""
    params = dict(model.named_parameters())
    for name, fmt in formats.items():
        if name in params:
            p = params[name]
            if not p.is_contiguous(memory_format=fmt):
                p.data = p.data.contiguous(memory_format=fmt)
            continue
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner)
        buf = module._buffers.get(attr)
        if buf is not None and not buf.is_contiguous(memory_format=fmt):
            module._buffers[attr] = buf.contiguous(memory_format=fmt)
