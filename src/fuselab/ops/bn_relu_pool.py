"""``bn_relu_maxpool``: BatchNorm -> ReLU -> max-pool as one autograd op, for conv stages.

Shapes: ``y`` ``(B, C, H, W)`` (2-D pool) or ``(B, C, L)`` (1-D pool) -> ``(B, C, ceil(H/k),
ceil(W/k))`` / ``(B, C, ceil(L/k))``; stride = window ``k``, no padding, ceil mode.

Why it is exact: BatchNorm is ``scale_c * y + shift_c`` per channel with ``scale_c = gamma_c /
sqrt(var_c + eps)``, and ReLU is non-decreasing, so the max of ``relu(bn(y))`` over a window is
``relu(bn(.))`` of the element maximising ``sign(gamma_c) * y`` (the minimum of ``y`` where
``gamma_c < 0``; the window's first element where ``gamma_c = 0``, as aten's pooling picks on
ties). The op therefore normalises only the pooled elements, and its backward is BatchNorm's
closed form ``dy = scale * (g - mean(g) - xhat * mean(g * xhat))`` with ``g`` non-zero only at
each window's winner: ``dy = c1 * y + c0`` plus the winners' terms, one pass over ``y``. The
textbook composition stores four full-size tensors and makes about fourteen passes over them;
this op stores ``y`` (which the convolution's backward keeps anyway) and makes four.

Batch statistics, running-statistic updates (momentum, cumulative average, unbiased variance)
and eval mode follow ``torch.nn.BatchNorm{1,2}d``; outputs and gradients equal the textbook
composition's to rounding (tested). Native kernels (:mod:`fuselab.ops.native`) do the full-size
passes; without them the same maths runs on aten ops.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from fuselab.ops import native

_SUFFIX = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}
_SHP, _DIMS = (1, -1, 1, 1), (0, 2, 3)


def _out_size(n: int, k: int) -> int:
    return max(-(-n // k), 1)


def _bn_grad_terms(gw: Tensor, gb: Tensor, mean: Tensor, invstd: Tensor, scale: Tensor, n: int,
                   batch_stats: bool) -> tuple[Tensor, Tensor]:
    """``c1, c0`` of ``dy = c1 * y + c0 + (winner terms)``: BatchNorm's gradient through the batch
    mean and variance (zero with running statistics, which do not depend on ``y``)."""
    if not batch_stats:
        return torch.zeros_like(scale), torch.zeros_like(scale)
    c1 = -scale * invstd * gw / n
    return c1, -scale * gb / n - c1 * mean


class _Native:
    """The C++ kernels (:mod:`fuselab.ops.native`) on nchw or channels-last tensors."""

    def __init__(self, lib: Any, y: Tensor, k: tuple[int, int]) -> None:
        if y.is_contiguous():
            self.nhwc = False
        elif y.is_contiguous(memory_format=torch.channels_last):
            self.nhwc = True
        else:
            y, self.nhwc = y.contiguous(), False
        self.lib, self.y, self.k = lib, y, k
        self.fmt = torch.channels_last if self.nhwc else torch.contiguous_format
        B, C, H, W = y.shape
        self.out_shape = (B, C, _out_size(H, k[0]), _out_size(W, k[1]))
        self.units = B * self.out_shape[2] if self.nhwc else B * C
        self.suffix = _SUFFIX[y.dtype]

    def _call(self, op: str, *tensors: Tensor, work: int, per_sample: bool = False) -> None:
        """``per_sample``: pooled-size ops on channels-last tensors take one sample per slice."""
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
        gb, gw = self._partials(per_sample=True), self._partials(per_sample=True)
        self._call("red", p, g, scale, shift, mean, invstd, gb, gw, work=p.numel(),
                   per_sample=True)
        acc = scale.dtype
        gb, gw = self._channel_sum(gb).to(acc), self._channel_sum(gw).to(acc)
        n = self.y.numel() // self.y.shape[1]
        c1, c0 = _bn_grad_terms(gw, gb, mean, invstd, scale, n, batch_stats)
        dy = torch.empty_like(self.y)
        self._call("bwd", self.y, off, p, g, scale, shift, c1.contiguous(), c0.contiguous(), dy,
                   work=self.y.numel())
        return dy, gw, gb


class _Torch:
    """The same maths on aten ops (no compiler, or dtypes/windows the kernels do not take)."""

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
        c1, c0 = _bn_grad_terms(gw, gb, mean, invstd, scale, n, batch_stats)
        dy = torch.addcmul(c0.view(_SHP), self.y.to(acc), c1.view(_SHP))
        dy = dy.flatten(2).scatter_add(2, idx.flatten(2), (gz * scale.view(_SHP)).flatten(2))
        return dy.view_as(self.y).to(self.y.dtype), gw, gb


class _BNReLUMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, y: Tensor, weight: Tensor | None, bias: Tensor | None,
        running: tuple[Tensor, Tensor] | None, update: float | None, eps: float,
        k: tuple[int, int],
    ) -> Tensor:
        C = y.shape[1]
        acc = torch.promote_types(y.dtype, torch.float32)
        w = weight.detach().to(acc) if weight is not None else torch.ones(C, dtype=acc)
        b = bias.detach().to(acc) if bias is not None else torch.zeros(C, dtype=acc)
        lib = native.library() if y.dtype in _SUFFIX and k[0] * k[1] <= 255 else None
        be: _Native | _Torch = _Native(lib, y, k) if lib is not None else _Torch(y, k)
        p, where, s, q = be.pool_stats(torch.sign(w))
        n = y.numel() // C
        batch_stats = running is None or update is not None
        if batch_stats:
            mean = s / n
            var = (q / n - mean * mean).clamp_min(0)
            if running is not None and update is not None:
                with torch.no_grad():
                    running[0].lerp_(mean.to(running[0].dtype), update)
                    running[1].lerp_((var * (n / max(n - 1, 1))).to(running[1].dtype), update)
            mean, var = mean.to(acc), var.to(acc)
        else:
            assert running is not None
            mean, var = running[0].to(acc), running[1].to(acc)
        invstd = torch.rsqrt(var + eps)
        scale = w * invstd
        shift = b - mean * scale
        ctx.save_for_backward(be.y, where, p, scale, shift, mean, invstd)
        ctx.k, ctx.native, ctx.batch_stats = k, lib is not None, batch_stats
        return be.act(p, scale, shift)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        if torch.is_grad_enabled():  # create_graph=True: these gradients would be constants
            raise RuntimeError(
                "bn_relu_maxpool: higher-order gradients are not supported (backward with "
                "create_graph=True); run the conv stages unfused: "
                "fuselab.models.set_fused(model, False)")
        y, where, p, scale, shift, mean, invstd = ctx.saved_tensors
        be = _Native(native.library(), y, ctx.k) if ctx.native else _Torch(y, ctx.k)
        dy, gw, gb = be.backward(where, p, g, scale, shift, mean, invstd, ctx.batch_stats)
        need = ctx.needs_input_grad
        return (dy if need[0] else None, gw if need[1] else None, gb if need[2] else None,
                None, None, None, None)


def bn_relu_maxpool(y: Tensor, norm: _BatchNorm, kernel: int) -> Tensor:
    """``max_pool(relu(norm(y)), kernel, stride=kernel, ceil_mode=True)`` in one fused op.

    ``y``: ``(B, C, H, W)`` or ``(B, C, L)``; ``norm``: the ``BatchNorm2d`` / ``BatchNorm1d``
    whose parameters, buffers and mode are used (its running statistics and
    ``num_batches_tracked`` are updated exactly as its own forward would).
    """
    if y.dim() not in (3, 4):
        raise ValueError(f"bn_relu_maxpool: expected (B, C, L) or (B, C, H, W), got {tuple(y.shape)}")
    if y.shape[1] != norm.num_features:
        raise ValueError(f"bn_relu_maxpool: {type(norm).__name__}({norm.num_features}) got "
                         f"{y.shape[1]} channels (input {tuple(y.shape)})")
    update: float | None = None
    if norm.training and norm.track_running_stats and norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        update = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    use_running = not norm.training and norm.running_mean is not None
    running = (norm.running_mean, norm.running_var) if norm.running_mean is not None else None
    if not use_running and y.numel() // y.shape[1] <= 1:
        raise ValueError(f"bn_relu_maxpool: expected more than 1 value per channel when training, "
                         f"got input {tuple(y.shape)}")
    if use_running:
        update = None
    elif running is not None and update is None:
        running = None  # batch statistics without tracking (training, track_running_stats=False)
    y4, k = (y.unsqueeze(2), (1, kernel)) if y.dim() == 3 else (y, (kernel, kernel))
    out = _BNReLUMaxPool.apply(y4, norm.weight, norm.bias, running, update, norm.eps, k)
    return out.squeeze(2) if y.dim() == 3 else out
