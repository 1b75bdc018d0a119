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
composition's to rounding (tested).

Registration: two functional custom operators, ``fuselab::bn_relu_maxpool`` and
``fuselab::bn_relu_maxpool_backward`` (``torch.library.custom_op``), each with a fake
implementation (so ``torch.compile``, ``torch.export`` and meta tensors trace it without running
it) and the forward with an autograd formula. Their default implementation is aten ops on any
device; the CPU kernel runs the native kernels (:mod:`fuselab.ops.native`, see
:mod:`fuselab.ops.bn_relu_backends`) when they are built, so no other device's tensor, and no
fake tensor, ever reaches them. The running statistics are updated outside the operator, from
the batch statistics it returns. Eager calls on plain CPU tensors skip the dispatcher round trip
(same kernel, same autograd formula, through a ``torch.autograd.Function``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from fuselab.ops.bn_relu_backends import (
    AtenPath,
    NativePath,
    native_for,
    native_format,
    path_for,
    pooled_size,
)

Outputs = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]


def _affine(weight: Tensor | None, bias: Tensor | None, mean: Tensor, var: Tensor, eps: float,
            acc: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``scale, shift, mean, invstd`` in ``acc``: ``bn(y) = scale * y + shift`` per channel."""
    mean = mean.to(acc)
    invstd = torch.rsqrt(var.to(acc) + eps)
    w = weight.detach().to(acc) if weight is not None else torch.ones_like(mean)
    b = bias.detach().to(acc) if bias is not None else torch.zeros_like(mean)
    scale = w * invstd
    return scale, b - mean * scale, mean, invstd


def _forward(path: NativePath | AtenPath, y: Tensor, weight: Tensor | None, bias: Tensor | None,
             running_mean: Tensor | None, running_var: Tensor | None, eps: float) -> Outputs:
    C = y.shape[1]
    acc = torch.promote_types(y.dtype, torch.float32)
    sign = torch.sign(weight.detach()) if weight is not None else y.new_ones(C)
    p, where, s, q = path.pool_stats(sign)
    if running_mean is None or running_var is None:  # batch statistics
        n = y.numel() // C
        mean = s / n
        var = (q / n - mean * mean).clamp_min(0)
    else:
        mean = running_mean.to(torch.float64, copy=True)
        var = running_var.to(torch.float64, copy=True)
    scale, shift, _, _ = _affine(weight, bias, mean, var, eps, acc)
    return path.act(p, scale, shift), p, where, mean, var


@torch.library.custom_op("fuselab::bn_relu_maxpool", mutates_args=())
def _op(y: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
        running_var: Tensor | None, eps: float, kh: int, kw: int) -> Outputs:
    """``(out, pooled y, winners, mean, var)``; ``mean``/``var`` ``(C,)`` float64 are the batch
    statistics (biased variance), or a copy of the running ones when those are given."""
    return _forward(AtenPath(y, (kh, kw)), y, weight, bias, running_mean, running_var, eps)


@_op.register_kernel("cpu")
def _op_cpu(y: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
            running_var: Tensor | None, eps: float, kh: int, kw: int) -> Outputs:
    k = (kh, kw)
    lib = native_for(y, k)
    path = NativePath(lib, y, k) if lib is not None else AtenPath(y, k)
    return _forward(path, y, weight, bias, running_mean, running_var, eps)


@_op.register_fake
def _op_fake(y: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
             running_var: Tensor | None, eps: float, kh: int, kw: int) -> Outputs:
    B, C, H, W = y.shape
    shape = (B, C, pooled_size(H, kh), pooled_size(W, kw))
    native = native_for(y, (kh, kw)) is not None
    fmt = native_format(y) if native else torch.contiguous_format
    p = y.new_empty(shape).contiguous(memory_format=fmt)
    where = y.new_empty(shape, dtype=torch.uint8 if native else torch.int64)
    stat = y.new_empty((C,), dtype=torch.float64)
    return (torch.empty_like(p), p, where.contiguous(memory_format=fmt), stat,
            torch.empty_like(stat))


def _grad_impl(g: Tensor, y: Tensor, where: Tensor, pooled: Tensor, weight: Tensor | None,
             bias: Tensor | None, mean: Tensor, var: Tensor, eps: float, kh: int, kw: int,
             batch_stats: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(dy, dweight, dbias)`` of :func:`_op`'s output gradient ``g``."""
    path = path_for(y, (kh, kw), native_winners=where.dtype == torch.uint8)
    acc = torch.promote_types(y.dtype, torch.float32)
    scale, shift, mean_acc, invstd = _affine(weight, bias, mean, var, eps, acc)
    dy, gw, gb = path.backward(where, pooled, g, scale, shift, mean_acc, invstd, batch_stats)
    return dy, gw, gb


_grad_op = torch.library.custom_op("fuselab::bn_relu_maxpool_backward", mutates_args=())(
    _grad_impl)


@_grad_op.register_fake
def _grad_op_fake(g: Tensor, y: Tensor, where: Tensor, pooled: Tensor, weight: Tensor | None,
                  bias: Tensor | None, mean: Tensor, var: Tensor, eps: float, kh: int, kw: int,
                  batch_stats: bool) -> tuple[Tensor, Tensor, Tensor]:
    fmt = native_format(y) if where.dtype == torch.uint8 else torch.contiguous_format
    stat = y.new_empty((y.shape[1],), dtype=torch.promote_types(y.dtype, torch.float32))
    return torch.empty_like(y, memory_format=fmt), stat, torch.empty_like(stat)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Outputs) -> None:
    y, weight, bias, running_mean, _, eps, kh, kw = inputs
    _, pooled, where, mean, var = output
    ctx.mark_non_differentiable(pooled, where, mean, var)
    ctx.set_materialize_grads(False)  # no zero-filled gradients for the auxiliary outputs
    ctx.save_for_backward(y, where, pooled, weight, bias, mean, var)
    ctx.eps, ctx.k, ctx.batch_stats = eps, (kh, kw), running_mean is None


def _backward(ctx: Any, g: Tensor | None, *_: Tensor | None) -> tuple[Tensor | None, ...]:
    if torch.is_grad_enabled():  # create_graph=True: these gradients would be constants
        raise RuntimeError(
            "bn_relu_maxpool: higher-order gradients are not supported (backward with "
            "create_graph=True); run the conv stages unfused: "
            "fuselab.models.set_fused(model, False)")
    y, where, pooled, weight, bias, mean, var = ctx.saved_tensors
    if g is None:  # the output was not used: nothing flows back
        return (None,) * 8
    grad: Callable[..., tuple[Tensor, Tensor, Tensor]] = _grad_impl if _eager_cpu(g) else _grad_op
    dy, gw, gb = grad(g, y, where, pooled, weight, bias, mean, var, ctx.eps, *ctx.k,
                      ctx.batch_stats)
    need = ctx.needs_input_grad
    return (dy if need[0] else None,
            gw.to(weight.dtype) if need[1] and weight is not None else None,
            gb.to(bias.dtype) if need[2] and bias is not None else None,
            None, None, None, None, None)


_op.register_autograd(_backward, setup_context=_setup_context)


def _eager_cpu(t: Tensor) -> bool:
    """A plain CPU tensor and nothing tracing: the operator's CPU kernel and autograd formula
    may be called directly. The dispatcher's custom-op plumbing costs about 0.2 ms a call (2 % of
    an AV-MNIST LeNet step); compile, export, fake/meta tensors, dispatch modes, functorch
    transforms and other devices always go through the registered operator."""
    return (t.device.type == "cpu" and type(t) in (Tensor, nn.Parameter)
            and not torch.compiler.is_compiling() and torch._C._len_torch_dispatch_stack() == 0
            and not torch._C._functorch.is_functorch_wrapped_tensor(t))


class _EagerCPU(torch.autograd.Function):
    """:func:`_op`'s CPU kernel, context setup and backward, without the dispatcher round trip
    (the ctx-style ``forward``: the separate-``setup_context`` style binds the arguments through
    ``inspect.signature`` on every call)."""

    @staticmethod
    def forward(ctx: Any, *inputs: Any) -> Outputs:  # type: ignore[override]
        output = _op_cpu(*inputs)
        _setup_context(ctx, inputs, output)
        return output

    backward = staticmethod(_backward)  # type: ignore[assignment]


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
    n = y.numel() // y.shape[1]
    if not use_running and n <= 1:
        raise ValueError(f"bn_relu_maxpool: expected more than 1 value per channel when training, "
                         f"got input {tuple(y.shape)}")
    y4, k = (y.unsqueeze(2), (1, kernel)) if y.dim() == 3 else (y, (kernel, kernel))
    running = (norm.running_mean, norm.running_var) if use_running else (None, None)
    fused = _EagerCPU.apply if _eager_cpu(y4) else _op
    out, _, _, mean, var = fused(y4, norm.weight, norm.bias, *running, norm.eps, *k)
    if update is not None and norm.running_mean is not None and norm.running_var is not None:
        with torch.no_grad():
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), update)
            norm.running_var.lerp_((var * (n / max(n - 1, 1))).to(norm.running_var.dtype), update)
    return out.squeeze(2) if y.dim() == 3 else out
