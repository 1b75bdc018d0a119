"""Per-sample tensor shapes flowing between encoder stages, and the layout moves between them.

Three kinds of intermediate representation:

* ``map``: ``(C, *spatial)`` channel-first feature maps (images, spectrograms, 1-D signals);
* ``seq``: ``(T, D)`` channel-last sequences (RNN / transformer outputs);
* ``vec``: ``(D,)`` vectors.

"Channels" are dim 0 of a map, the last dim of a sequence, the only dim of a vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

KINDS = ("map", "seq", "vec")


@dataclass(frozen=True)
class Shape:
    """Per-sample shape (no batch dim) of a representation of one ``kind``."""

    kind: str
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Shape.kind must be one of {KINDS}, got {self.kind!r}")
        want = {"seq": 2, "vec": 1}.get(self.kind)
        if want is not None and len(self.dims) != want:
            raise ValueError(f"a {self.kind} shape has {want} dims, got {self.dims}")
        if self.kind == "map" and len(self.dims) < 2:
            raise ValueError(f"a map shape is (C, *spatial), got {self.dims}")

    @property
    def channels(self) -> int:
        return self.dims[-1] if self.kind == "seq" else self.dims[0]

    @property
    def extent(self) -> tuple[int, ...]:
        """Spatial sizes (map), ``(T,)`` (seq) or ``()`` (vec): what must agree to fuse per position."""
        if self.kind == "map":
            return self.dims[1:]
        if self.kind == "seq":
            return self.dims[:1]
        return ()

    def with_channels(self, c: int) -> Shape:
        if self.kind == "seq":
            return Shape("seq", (self.dims[0], c))
        return Shape(self.kind, (c, *self.dims[1:]))

    def with_extent(self, extent: tuple[int, ...]) -> Shape:
        if self.kind == "map":
            return Shape("map", (self.dims[0], *extent))
        if self.kind == "seq":
            return Shape("seq", (extent[0], self.dims[1]))
        return self

    @property
    def numel(self) -> int:
        return math.prod(self.dims)

    def __str__(self) -> str:
        return f"{self.kind}{self.dims}"


def raw_shape(dims: tuple[int, ...], sequence: bool = False) -> Shape:
    """The kind of a raw model input: rank 1 is a vector, rank 2 a sequence ``(T, D)`` when
    ``sequence`` (else a map ``(C, L)``), higher ranks channel-first maps."""
    dims = tuple(int(d) for d in dims)
    if len(dims) == 1:
        return Shape("vec", dims)
    return Shape("seq", dims) if sequence and len(dims) == 2 else Shape("map", dims)


def to_channels_first(x: Tensor, kind: str) -> Tensor:
    """``map`` as is, ``seq`` ``(B, T, D) -> (B, D, T)``, ``vec`` ``(B, D) -> (B, D, 1)``."""
    if kind == "seq":
        return x.transpose(1, 2)
    if kind == "vec":
        return x.unsqueeze(-1)
    return x


def from_channels_first(x: Tensor, kind: str) -> Tensor:
    """Inverse of :func:`to_channels_first`."""
    if kind == "seq":
        return x.transpose(1, 2)
    if kind == "vec":
        return x.squeeze(-1)
    return x


def to_channels_last(x: Tensor, kind: str) -> Tensor:
    """``(B, *extent, C)`` view of a batch: per-position features last, for vector operators."""
    if kind == "map":
        return x.movedim(1, -1)
    return x


def from_channels_last(x: Tensor, kind: str) -> Tensor:
    if kind == "map":
        return x.movedim(-1, 1)
    return x


def resize(x: Tensor, kind: str, extent: tuple[int, ...]) -> Tensor:
    """Adaptive average pooling of a map's spatial dims / a sequence's time axis to ``extent``."""
    if kind == "vec" or not extent:
        return x
    xf = to_channels_first(x, kind)
    pool: dict[int, Any] = {
        1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d
    }
    fn = pool.get(len(extent))
    if fn is None:
        raise ValueError(f"resize supports 1-3 spatial dims, got extent {extent}")
    return from_channels_first(fn(xf, extent), kind)


def broadcast_channels(v: Tensor, shape: Shape) -> Tensor:
    """``(B, k)`` -> a ``shape.with_channels(k)`` batch, constant over space / time."""
    b, k = v.shape
    if shape.kind == "vec":
        return v
    if shape.kind == "seq":
        return v[:, None, :].expand(b, shape.dims[0], k)
    view = v.reshape(b, k, *([1] * len(shape.extent)))
    return view.expand(b, k, *shape.extent)


def concat_channels(x: Tensor, extra: Tensor, kind: str) -> Tensor:
    """Append ``extra`` channels to ``x`` (dim 1 for maps and vectors, last dim for sequences)."""
    return torch.cat([x, extra], dim=-1 if kind in ("seq", "vec") else 1)


READOUTS = {"map": ("mean", "max", "flatten"), "seq": ("last", "mean", "first"), "vec": ("none",)}


class Readout(nn.Module):
    """Reduce one branch to a vector: ``map (B, C, *S)``, ``seq (B, T, D)`` or ``vec`` -> ``(B, D)``.

    Modes: maps ``mean`` / ``max`` (global pooling) or ``flatten``; sequences ``last``, ``mean`` or
    ``first``; vectors pass through.
    """

    def __init__(self, shape: Shape, mode: str) -> None:
        super().__init__()
        allowed = READOUTS[shape.kind]
        if mode not in allowed:
            raise ValueError(f"readout: for a {shape.kind} output allowed {allowed}, got {mode!r}")
        self.kind, self.mode = shape.kind, mode
        if shape.kind == "map":
            self.out_dim = shape.numel if mode == "flatten" else shape.channels
        else:
            self.out_dim = shape.channels

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "vec":
            return x
        if self.kind == "seq":
            if self.mode == "last":
                return x[:, -1]
            return x[:, 0] if self.mode == "first" else x.mean(dim=1)
        if self.mode == "flatten":
            return x.flatten(1)
        flat = x.flatten(2)
        return flat.mean(dim=-1) if self.mode == "mean" else flat.amax(dim=-1)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, mode={self.mode}, out_dim={self.out_dim}"


def default_readout(kind: str) -> str:
    return {"map": "mean", "seq": "last", "vec": "none"}[kind]
