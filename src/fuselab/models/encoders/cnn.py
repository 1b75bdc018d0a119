"""LeNet-style convolutional encoders: ``lenet`` (2-D, images / spectrograms) and ``conv1d``.

Stage ``conv{i}``: convolution (``kernels[i]``, same padding, no bias as BatchNorm follows) ->
BatchNorm -> ReLU -> max-pool ``pool`` (ceil mode, so short spectrograms never shrink to zero).
Width of stage ``i`` is ``widths[i]`` or ``channels * 2**i`` (paper 001: doubled each layer).

Shapes: ``(B, C, H, W)`` -> ``(B, w_i, ceil(H / pool**i), ceil(W / pool**i))`` after stage ``i``.

BatchNorm -> ReLU -> max-pool runs as one fused op (:func:`fuselab.ops.bn_relu_maxpool`: same
outputs, gradients and running statistics, a fraction of the memory traffic) on CPU tensors,
unless ``stage.fused = False`` (see :func:`set_fused`) or the model is being traced by
``torch.compile``, which fuses the textbook composition itself. On other devices (CUDA, meta)
the stage runs the textbook aten modules (cuDNN's BatchNorm on a GPU).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from fuselab._validate import flag, int_list, pos_int
from fuselab.models.encoders.base import Stage, StageSpec, register
from fuselab.models.shapes import Shape
from fuselab.ops import bn_relu_maxpool


class ConvStage(Stage):
    """conv -> (BatchNorm) -> ReLU -> max-pool on ``(B, C, *spatial)``, 1-D or 2-D."""

    #: Run BatchNorm -> ReLU -> max-pool as one fused op (when the stage has all three).
    fused: bool = True

    def __init__(
        self,
        in_shape: Shape,
        width: int,
        kernel: int,
        pool: int,
        batchnorm: bool,
        where: str,
        nd: int,
    ) -> None:
        super().__init__()
        if in_shape.kind == "vec" and len(in_shape.dims) == 1:
            in_shape = Shape("map", (1, in_shape.dims[0]))
        if in_shape.kind != "map":
            raise ValueError(f"{where}: expects a channel-first map, got {in_shape}")
        if len(in_shape.extent) != nd:
            want = "(C, L)" if nd == 1 else "(C, H, W)"
            raise ValueError(f"{where}: expects a {want} input, got {in_shape}")
        conv = nn.Conv1d if nd == 1 else nn.Conv2d
        bn = nn.BatchNorm1d if nd == 1 else nn.BatchNorm2d
        mp = nn.MaxPool1d if nd == 1 else nn.MaxPool2d
        self.in_shape = in_shape
        self.conv = conv(in_shape.channels, width, kernel, padding=kernel // 2, bias=not batchnorm)
        self.norm: nn.Module = bn(width) if batchnorm else nn.Identity()
        self.act = nn.ReLU()
        self.pool: nn.Module = mp(pool, ceil_mode=True) if pool > 1 else nn.Identity()
        self.pool_size = pool
        # same padding keeps the size for odd kernels; even kernels grow it by one
        conv_size = [s + 2 * (kernel // 2) - kernel + 1 for s in in_shape.extent]
        out = [math.ceil((s - pool) / pool) + 1 if pool > 1 else s for s in conv_size]
        self.out_shape = Shape("map", (width, *out))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # (B, L) signal: one channel
            x = x.unsqueeze(1)
        y = self.conv(x)
        if (self.fused and self.pool_size > 1 and isinstance(self.norm, _BatchNorm)
                and y.device.type == "cpu" and not torch.compiler.is_compiling()):
            return bn_relu_maxpool(y, self.norm, self.pool_size)
        return self.pool(self.act(self.norm(y)))


def prefers_channels_last(model: nn.Module) -> bool:
    """Whether ``model`` has 2-D convolutions and all of them sit in :class:`ConvStage` s: then
    channels-last is safe (no stage ``.view`` s a map) and fastest (oneDNN's convolutions and the
    fused op's kernels). Used by ``TrainConfig(channels_last="auto")`` and the evaluations."""
    stage_convs = {id(m.conv) for m in model.modules() if isinstance(m, ConvStage)}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return bool(convs) and all(id(c) in stage_convs for c in convs)


def set_fused(model: nn.Module, fused: bool) -> nn.Module:
    """Switch every :class:`ConvStage` in ``model`` to the fused (``True``) or the textbook
    (``False``) BatchNorm -> ReLU -> max-pool; returns ``model``. Parameters are unchanged."""
    for m in model.modules():
        if isinstance(m, ConvStage):
            m.fused = fused
    return model


def _conv_plan(cfg: dict[str, Any], where: str, nd: int) -> list[StageSpec]:
    kernels = int_list(cfg["kernels"], f"{where}.kernels")
    if "widths" in cfg:
        widths = int_list(cfg["widths"], f"{where}.widths")
        if len(widths) != len(kernels):
            raise ValueError(f"{where}.widths: expected {len(kernels)} widths (one per kernel), "
                             f"got {len(widths)}")
    else:
        base = pos_int(cfg["channels"], f"{where}.channels")
        widths = [base * 2**i for i in range(len(kernels))]
    pool = pos_int(cfg["pool"], f"{where}.pool")
    bn = flag(cfg["batchnorm"], f"{where}.batchnorm")

    def spec(i: int) -> StageSpec:
        name = f"conv{i + 1}"
        return StageSpec(
            name,
            lambda s: ConvStage(s, widths[i], kernels[i], pool, bn, f"{where} stage {name!r}", nd),
        )

    return [spec(i) for i in range(len(kernels))]


@register(
    "lenet", defaults={"kernels": [5, 3, 3, 3], "channels": 6, "widths": None, "pool": 2, "batchnorm": True}
)
def lenet(cfg: dict[str, Any], where: str) -> list[StageSpec]:
    """2-D LeNet-style encoder on ``(C, H, W)`` inputs."""
    if cfg.get("widths") is None:
        cfg = {k: v for k, v in cfg.items() if k != "widths"}
    return _conv_plan(cfg, where, 2)


@register(
    "conv1d", defaults={"kernels": [5, 3, 3], "channels": 6, "widths": None, "pool": 2, "batchnorm": True}
)
def conv1d(cfg: dict[str, Any], where: str) -> list[StageSpec]:
    """1-D convolutional encoder on ``(C, L)`` (or ``(L,)``) inputs."""
    if cfg.get("widths") is None:
        cfg = {k: v for k, v in cfg.items() if k != "widths"}
    return _conv_plan(cfg, where, 1)
