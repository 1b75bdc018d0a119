"""The two implementations behind ``fuselab::bn_relu_maxpool`` (:mod:`fuselab.ops.bn_relu_pool`).

* :class:`NativePath`: the C++ kernels of :mod:`fuselab.ops.native` through ctypes, on CPU
  tensors only (NCHW or channels-last); the winner of each window is stored as a ``uint8`` offset
  inside the window.
* :class:`AtenPath`: the same maths on aten ops, on any device; the winner is stored as the
  ``int64`` flat index ``max_pool2d_with_indices`` returns.

Shapes: ``y`` ``(B, C, H, W)``; pooled tensors ``(B, C, OH, OW)`` with ``OH = ceil(H / kh)``,
``OW = ceil(W / kw)``; per-channel statistics ``(C,)``.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch
from torch import Tensor

from fuselab.ops import native

SUFFIX = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}
_SHP, _DIMS = (1, -1, 1, 1), (0, 2, 3)


def _is_fake(t: Tensor) -> bool:
    """A fake tensor (tracing) claims a device but owns no memory."""
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor)


def pooled_size(n: int, k: int) -> int:
    return max(-(-n // k), 1)


def native_for(y: Tensor, k: tuple[int, int]) -> Any | None:
    """The native kernels for ``y``, or ``None``: they take CPU tensors of the dtypes in
    :data:`SUFFIX` and windows of at most 255 elements (the offset is a byte), nothing else."""
    if y.device.type != "cpu" or y.dtype not in SUFFIX or k[0] * k[1] > 255:
        return None
    return native.library()


def native_format(y: Tensor) -> torch.memory_format:
    """Layout of the native path's outputs: channels-last for a channels-last ``y``."""
    nhwc = not y.is_contiguous() and y.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if nhwc else torch.contiguous_format


def grad_terms(gw: Tensor, gb: Tensor, mean: Tensor, invstd: Tensor, scale: Tensor, n: int,
               batch_stats: bool) -> tuple[Tensor, Tensor]:
    """``c1, c0`` of ``dy = c1 * y + c0 + (winner terms)``: BatchNorm's gradient through the batch
    mean and variance (zero with running statistics, which do not depend on ``y``)."""
    if not batch_stats:
        return torch.zeros_like(scale), torch.zeros_like(scale)
    c1 = -scale * invstd * gw / n
    return c1, -scale * gb / n - c1 * mean


class NativePath:
    """The C++ kernels on an NCHW or channels-last CPU tensor ``y``."""

    def __init__(self, lib: Any, y: Tensor, k: tuple[int, int]) -> None:
        self.fmt = native_format(y)
        self.nhwc = self.fmt == torch.channels_last
        if not y.is_contiguous(memory_format=self.fmt):
            y = y.contiguous()
        self.lib, self.y, self.k = lib, y, k
        B, C, H, W = y.shape
        self.out_shape = (B, C, pooled_size(H, k[0]), pooled_size(W, k[1]))
        self.units = B * self.out_shape[2] if self.nhwc else B * C
        self.suffix = SUFFIX[y.dtype]

    def _call(self, op: str, *tensors: Tensor, work: int, per_sample: bool = False) -> None:
        """``per_sample``: pooled-size ops on channels-last tensors take one sample per slice."""
        for t in tensors:  # a pointer into another device's memory would crash the process
            if t.device.type != "cpu" or (type(t) is not Tensor and _is_fake(t)):
                raise RuntimeError(f"fuselab.ops: native kernel {op} got a {t.device} tensor "
                                   f"({type(t).__name__}); it takes CPU tensors only")
        B, C, H, W = self.y.shape
        units = B if per_sample and self.nhwc else self.units
        ptrs = [ctypes.c_void_p(t.data_ptr()) for t in tensors]
        dims = [ctypes.c_int64(v) for v in (C, H, W, *self.out_shape[2:], *self.k, units)]
        getattr(self.lib, f"fl_{op}_{self.suffix}")(ctypes.c_int(self.nhwc), *ptrs, *dims,
                                                    ctypes.c_int(native.threads(work)))

    def _partials(self, per_sample: bool = False) -> Tensor:
        B, C = self.y.shape[:2]
        if not self.nhwc:
            return torch.empty(self.units, dtype=torch.float64)
        return torch.empty((B if per_sample else self.units) * C, dtype=torch.float64)

    def _channel_sum(self, t: Tensor) -> Tensor:
        # Per-slice partials added in a fixed order: the same result for any thread count.
        return t.view(-1, self.y.shape[1]).sum(0)

    def pool_stats(self, sign: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pooled winners ``p``, their offsets, and the per-channel sums of ``y`` and ``y**2``."""
        p = torch.empty(self.out_shape, dtype=self.y.dtype, memory_format=self.fmt)
        off = torch.empty(self.out_shape, dtype=torch.uint8, memory_format=self.fmt)
        s, q = self._partials(), self._partials()
        self._call("fwd", self.y, p, off, s, q, sign.to(torch.float32).contiguous(),
                   work=self.y.numel())
        return p, off, self._channel_sum(s), self._channel_sum(q)

    def act(self, p: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        out = torch.empty_like(p)
        self._call("act", p, out, scale.contiguous(), shift.contiguous(), work=p.numel(),
                   per_sample=True)
        return out

    def backward(self, off: Tensor, p: Tensor, g: Tensor, scale: Tensor, shift: Tensor,
                 mean: Tensor, invstd: Tensor, batch_stats: bool) -> tuple[Tensor, ...]:
        g = g.to(p.dtype).contiguous(memory_format=self.fmt)
        off, p = off.contiguous(memory_format=self.fmt), p.contiguous(memory_format=self.fmt)
        gb, gw = self._partials(per_sample=True), self._partials(per_sample=True)
        self._call("red", p, g, scale, shift, mean, invstd, gb, gw, work=p.numel(),
                   per_sample=True)
        acc = scale.dtype
        gb, gw = self._channel_sum(gb).to(acc), self._channel_sum(gw).to(acc)
        n = self.y.numel() // self.y.shape[1]
        c1, c0 = grad_terms(gw, gb, mean, invstd, scale, n, batch_stats)
        dy = torch.empty_like(self.y, memory_format=self.fmt)
        self._call("bwd", self.y, off, p, g, scale, shift, c1.contiguous(), c0.contiguous(), dy,
                   work=self.y.numel())
        return dy, gw, gb


class AtenPath:
    """The same maths on aten ops, on any device (no compiler, a GPU, or dtypes/windows the
    kernels do not take)."""

    def __init__(self, y: Tensor, k: tuple[int, int]) -> None:
        self.y, self.k = y.contiguous(), k

    def pool_stats(self, sign: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        y = self.y
        # ``sign * y`` picks the winner; ties (sign 0 included) go to the first element.
        _, idx = torch.nn.functional.max_pool2d_with_indices(
            y * sign.to(y.dtype).view(_SHP), self.k, self.k, (0, 0), (1, 1), True)
        p = y.flatten(2).gather(2, idx.flatten(2)).view_as(idx)
        yd = y.to(torch.float64)
        return p, idx, yd.sum(_DIMS), yd.square().sum(_DIMS)

    def act(self, p: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        z = torch.addcmul(shift.view(_SHP), p.to(scale.dtype), scale.view(_SHP))
        return torch.relu(z).to(p.dtype)

    def backward(self, idx: Tensor, p: Tensor, g: Tensor, scale: Tensor, shift: Tensor,
                 mean: Tensor, invstd: Tensor, batch_stats: bool) -> tuple[Tensor, ...]:
        acc = scale.dtype
        x = p.to(acc)
        gz = torch.where(x * scale.view(_SHP) + shift.view(_SHP) > 0, g.to(acc), 0)
        gb = gz.sum(_DIMS)
        gw = (gz * ((x - mean.view(_SHP)) * invstd.view(_SHP))).sum(_DIMS)
        n = self.y.numel() // self.y.shape[1]
        c1, c0 = grad_terms(gw, gb, mean, invstd, scale, n, batch_stats)
        dy = torch.addcmul(c0.view(_SHP), self.y.to(acc), c1.view(_SHP))
        dy = dy.flatten(2).scatter_add(2, idx.flatten(2), (gz * scale.view(_SHP)).flatten(2))
        return dy.view_as(self.y).to(self.y.dtype), gw, gb


def path_for(y: Tensor, k: tuple[int, int], native_winners: bool) -> NativePath | AtenPath:
    """The implementation that made (forward) or must read (backward) the winners."""
    lib = native_for(y, k) if native_winners else None
    if native_winners and lib is None:
        raise RuntimeError("fuselab.ops: the native kernels made this forward pass but are not "
                           "available for its backward")
    return NativePath(lib, y, k) if lib is not None else AtenPath(y, k)
