"""``fuselab::bn_relu_maxpool`` as a registered custom operator: ``torch.library.opcheck``,
``torch.compile`` and ``torch.export`` of the fused op itself, and device dispatch: no native
kernel ever receives a non-CPU tensor (meta tensors, fake tensors) and conv stages on other
devices take the aten path.
"""

from __future__ import annotations

import copy

import pytest
import torch
from ops_helpers import make_bn, textbook
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from fuselab.models.encoders.cnn import ConvStage
from fuselab.models.shapes import Shape
from fuselab.ops import bn_relu_backends, bn_relu_maxpool, native

OP = torch.ops.fuselab.bn_relu_maxpool.default
GRAD_OP = torch.ops.fuselab.bn_relu_maxpool_backward.default


@pytest.fixture
def native_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every tensor handed to a native kernel, as ``"<device> <type>"``; the real kernels still
    run (the production guard refuses anything but real CPU tensors)."""
    seen: list[str] = []
    real = bn_relu_backends.NativePath._call

    def spy(self, op: str, *tensors: torch.Tensor, **kw: object) -> None:
        seen.extend(f"{t.device} {type(t).__name__}" for t in tensors)
        real(self, op, *tensors, **kw)

    monkeypatch.setattr(bn_relu_backends.NativePath, "_call", spy)
    return seen


@pytest.mark.parametrize("cl", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("running", [False, True], ids=["batch", "running"])
def test_opcheck(backend: str, cl: bool, running: bool, gen: torch.Generator) -> None:
    """Schema, fake implementation (shapes, dtypes, strides), autograd registration and AOT
    dispatch, as PyTorch's own checker sees them, on both implementations."""
    y = torch.randn(3, 6, 7, 9, generator=gen, dtype=torch.float64)
    if cl:
        y = y.contiguous(memory_format=torch.channels_last)
    y.requires_grad_()
    w = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    stats = ([torch.randn(6, generator=gen, dtype=torch.float64),
              torch.rand(6, generator=gen, dtype=torch.float64) + 0.5] if running else [None, None])
    torch.library.opcheck(OP, (y, w, b, *stats, 1e-5, 2, 2))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_torch_compile_fullgraph_matches_eager(backend: str, train: bool,
                                               gen: torch.Generator) -> None:
    """The fused op inside a compiled function: same output, gradients and running statistics."""
    bn = make_bn(6, 2, torch.float64, gen).train(train)
    bn2 = copy.deepcopy(bn)
    y = torch.randn(4, 6, 11, 9, generator=gen, dtype=torch.float64)
    y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()

    def f(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        return bn_relu_maxpool(x * 1.5, norm, 2)

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out1, out2 = f(y1, bn), compiled(y2, bn2)
    torch.testing.assert_close(out2, out1, rtol=0, atol=1e-12)
    g = torch.randn(out1.shape, generator=gen, dtype=torch.float64)
    out1.backward(g)
    out2.backward(g)
    torch.testing.assert_close(y2.grad, y1.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(bn2.weight.grad, bn.weight.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(bn2.running_var, bn.running_var, rtol=0, atol=1e-12)
    assert int(bn2.num_batches_tracked) == int(bn.num_batches_tracked)


def test_torch_export_keeps_the_fused_op(backend: str, gen: torch.Generator) -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = make_bn(5, 2, torch.float32, gen).eval()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return bn_relu_maxpool(x, self.bn, 3)

    block = Block()
    x = torch.randn(2, 5, 8, 7, generator=gen)
    exported = torch.export.export(block, (x,))
    assert any(n.target is OP for n in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(x), textbook(x, block.bn, 3))


def test_meta_and_fake_tensors_never_reach_a_native_kernel(backend: str,
                                                           native_calls: list[str]) -> None:
    """Meta and fake tensors (what tracing and shape propagation hand around) go to the fake
    implementation: shapes come out right and the spy sees no call. Real CPU tensors do reach
    the kernels when they are built (the spy works)."""
    bn = nn.BatchNorm2d(6)
    y = torch.randn(4, 6, 9, 7, device="meta", requires_grad=True)
    out = bn_relu_maxpool(y, bn.to("meta"), 2)
    assert out.shape == (4, 6, 5, 4) and out.device.type == "meta"
    out.sum().backward()
    assert y.grad is not None and y.grad.shape == y.shape
    with FakeTensorMode() as mode:
        fake = mode.from_tensor(torch.randn(4, 6, 9, 7).contiguous(memory_format=torch.channels_last))
        out = bn_relu_maxpool(fake, nn.BatchNorm2d(6), 2)
        assert out.shape == (4, 6, 5, 4)
    assert native_calls == []
    bn_relu_maxpool(torch.randn(4, 6, 9, 7), nn.BatchNorm2d(6), 2)
    if backend == "native":
        assert native_calls and all(c == "cpu Tensor" for c in native_calls)
    else:
        assert native_calls == []


def test_native_path_refuses_non_cpu_and_fake_tensors() -> None:
    """The last guard before ctypes: a pointer into another device's memory would crash."""
    lib = object()  # never reached
    meta = bn_relu_backends.NativePath(lib, torch.empty(2, 3, 4, 4, device="meta"), (2, 2))
    with pytest.raises(RuntimeError, match=r"native kernel fwd got a meta tensor"):
        meta.pool_stats(torch.ones(3))
    with FakeTensorMode() as mode:
        fake = bn_relu_backends.NativePath(lib, mode.from_tensor(torch.empty(2, 3, 4, 4)), (2, 2))
        with pytest.raises(RuntimeError, match=r"got a cpu tensor \(FakeTensor\)"):
            fake.pool_stats(torch.ones(3))


def test_only_cpu_tensors_select_the_native_kernels(backend: str) -> None:
    k = (2, 2)
    assert bn_relu_backends.native_for(torch.empty(2, 3, 4, 4, device="meta"), k) is None
    assert bn_relu_backends.native_for(torch.empty(2, 3, 4, 4, dtype=torch.float16), k) is None
    assert bn_relu_backends.native_for(torch.empty(2, 3, 4, 4), (16, 16)) is None
    want = native.library() if backend == "native" else None
    assert bn_relu_backends.native_for(torch.empty(2, 3, 4, 4), k) is want


def test_conv_stage_off_cpu_takes_the_aten_modules(native_calls: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A conv stage on another device (meta here; CUDA alike) runs BatchNorm -> ReLU -> pool as
    aten modules: the fused op is not called at all."""
    called: list[torch.device] = []
    import fuselab.models.encoders.cnn as cnn

    monkeypatch.setattr(cnn, "bn_relu_maxpool", lambda y, *a: called.append(y.device))
    stage = ConvStage(Shape("map", (1, 12, 10)), 6, 3, 2, True, "test", 2)
    out = copy.deepcopy(stage).to("meta")(torch.empty(3, 1, 12, 10, device="meta"))
    assert out.shape == (3, *stage.out_shape.dims) and called == []
    stage(torch.randn(3, 1, 12, 10))
    assert called == [torch.device("cpu")]


def test_fake_strides_match_the_real_outputs(backend: str, gen: torch.Generator) -> None:
    """What the fake implementation promises is what the real one returns (compiled graphs rely
    on it), for NCHW and channels-last inputs, both operators."""
    for cl in (False, True):
        y = torch.randn(3, 6, 7, 9, generator=gen)
        if cl:
            y = y.contiguous(memory_format=torch.channels_last)
        args = (y, torch.randn(6, generator=gen), torch.randn(6, generator=gen), None, None,
                1e-5, 2, 2)
        real = OP(*args)
        with FakeTensorMode(allow_non_fake_inputs=True):
            fake = OP(*args)
        for r, f in zip(real, fake, strict=True):
            assert (r.shape, r.dtype, r.stride()) == (f.shape, f.dtype, f.stride())
        g = torch.randn(real[0].shape, generator=gen)
        grad_args = (g, y, real[2], real[1], args[1], args[2], real[3], real[4], 1e-5, 2, 2, True)
        real_g = GRAD_OP(*grad_args)
        with FakeTensorMode(allow_non_fake_inputs=True):
            fake_g = GRAD_OP(*grad_args)
        for r, f in zip(real_g, fake_g, strict=True):
            assert (r.shape, r.dtype, r.stride()) == (f.shape, f.dtype, f.stride())


@pytest.mark.parametrize("eager", [True, False], ids=["eager-shortcut", "dispatched"])
def test_backward_fills_no_zero_gradients(backend: str, eager: bool, gen: torch.Generator,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The auxiliary outputs (pooled winners, statistics) get no materialised zero gradients: a
    pooled-size zero fill per step cost about 20 % of the op on the AV-MNIST LeNet."""
    from torch.profiler import ProfilerActivity, profile

    from fuselab.ops import bn_relu_pool

    monkeypatch.setattr(bn_relu_pool, "_eager_cpu", lambda t: eager)
    y = torch.randn(8, 6, 21, 18, generator=gen).contiguous(memory_format=torch.channels_last)
    y.requires_grad_()
    out = bn_relu_maxpool(y, nn.BatchNorm2d(6), 2)
    grad = torch.ones_like(out)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out.backward(grad)
    names = {e.key for e in prof.key_averages()}
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert eager or "fuselab::bn_relu_maxpool_backward" in names
    assert not names & {"aten::zeros", "aten::zero_", "aten::zeros_like"}, sorted(names)


def test_eager_shortcut_equals_the_dispatched_operator(backend: str, gen: torch.Generator,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Eager CPU calls skip the dispatcher (same kernel, same autograd formula): bit for bit the
    result of the registered operator, forward, backward and running statistics."""
    from fuselab.ops import bn_relu_pool

    y = torch.randn(4, 6, 11, 9, generator=gen).contiguous(memory_format=torch.channels_last)
    results = []
    for eager in (True, False):
        monkeypatch.setattr(bn_relu_pool, "_eager_cpu", lambda t, on=eager: on)
        bn = make_bn(6, 2, torch.float32, torch.Generator().manual_seed(3))
        yy = y.clone().requires_grad_()
        out = bn_relu_maxpool(yy, bn, 2)
        out.backward(torch.ones_like(out))
        results.append((out.detach(), yy.grad, bn.weight.grad, bn.bias.grad, bn.running_mean,
                        bn.running_var))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
