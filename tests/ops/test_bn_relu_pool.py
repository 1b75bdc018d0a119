"""``fuselab.ops.bn_relu_maxpool`` against the textbook ``max_pool(relu(batch_norm(y)))``.

Every case runs on both implementations: the native kernels and the aten fallback. Outputs,
input/weight/bias gradients and the running statistics must agree to float64 rounding, including
negative and zero BatchNorm weights (max becomes min / the first element), ties inside windows,
partial windows (ceil mode), channels-last tensors, 1-D pooling and eval mode.
"""

from __future__ import annotations

import copy

import pytest
import torch
from ops_helpers import make_bn, textbook
from torch import nn

from fuselab.models.encoders.cnn import ConvStage, set_fused
from fuselab.models.shapes import Shape
from fuselab.ops import bn_relu_maxpool, native


def compare(y: torch.Tensor, bn: nn.Module, k: int, gen: torch.Generator) -> dict[str, float]:
    bn.zero_grad()
    bn2 = copy.deepcopy(bn)
    y1 = y.detach().clone().requires_grad_()
    y2 = y.detach().clone().requires_grad_()
    out1, out2 = textbook(y1, bn, k), bn_relu_maxpool(y2, bn2, k)
    assert out2.shape == out1.shape
    g = torch.randn(out1.shape, generator=gen, dtype=out1.dtype)
    out1.backward(g)
    out2.backward(g)
    errs = {"out": (out1 - out2).abs().max().item(), "dy": (y1.grad - y2.grad).abs().max().item()}
    if bn.weight is not None:
        errs["dweight"] = (bn.weight.grad - bn2.weight.grad).abs().max().item()
        errs["dbias"] = (bn.bias.grad - bn2.bias.grad).abs().max().item()
    if bn.running_mean is not None:
        errs["running_mean"] = (bn.running_mean - bn2.running_mean).abs().max().item()
        errs["running_var"] = (bn.running_var - bn2.running_var).abs().max().item()
        assert int(bn.num_batches_tracked) == int(bn2.num_batches_tracked)
    return errs


CASES = [  # (shape, pool, channels_last)
    ((4, 6, 11, 9), 2, False),   # odd sizes: partial last row and column
    ((4, 6, 11, 9), 2, True),    # channels-last, C = 6 (compile-time channel path)
    ((3, 12, 8, 10), 2, True),   # C = 12
    ((2, 5, 7, 8), 3, True),     # C = 5 (runtime channel path), 3 x 3 windows
    ((2, 20, 6, 7), 2, True),    # C = 20 (wide channel path)
    ((3, 5, 7, 8), 3, False),
    ((2, 3, 1, 5), 2, False),    # H < window
    ((4, 6, 13), 2, False),      # 1-D pooling (BatchNorm1d)
    ((4, 3, 10), 4, False),
]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("shape", "k", "cl"), CASES)
def test_matches_textbook_float64(backend: str, shape: tuple[int, ...], k: int, cl: bool,
                                  train: bool, gen: torch.Generator) -> None:
    y = torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 1
    y[0, :, :2] = 0.5  # exact ties inside windows
    if cl:
        y = y.contiguous(memory_format=torch.channels_last)
    bn = make_bn(shape[1], len(shape) - 2, torch.float64, gen).train(train)
    errs = compare(y, bn, k, gen)
    assert max(errs.values()) < 1e-12, errs


@pytest.mark.parametrize("kw", [{"momentum": None}, {"track_running_stats": False},
                                {"affine": False}], ids=["cumulative", "untracked", "no-affine"])
def test_batchnorm_variants(backend: str, kw: dict[str, object], gen: torch.Generator) -> None:
    y = torch.randn(4, 6, 9, 8, generator=gen, dtype=torch.float64)
    bn = make_bn(6, 2, torch.float64, gen, **kw)
    for step in range(3):  # the cumulative average depends on num_batches_tracked
        errs = compare(y + step, bn, 2, gen)
        assert max(errs.values()) < 1e-12, (step, errs)


@pytest.mark.parametrize("cl", [False, True])
def test_float32_and_bfloat16(backend: str, cl: bool, gen: torch.Generator) -> None:
    y = torch.randn(8, 6, 21, 18, generator=gen) * 3
    if cl:
        y = y.contiguous(memory_format=torch.channels_last)
    bn = make_bn(6, 2, torch.float32, gen)
    errs = compare(y, bn, 2, gen)
    assert max(errs.values()) < 1e-4, errs
    # bfloat16 activations with float32 BatchNorm parameters, as under CPU autocast
    yb, bn16 = y.to(torch.bfloat16), copy.deepcopy(bn)
    out = bn_relu_maxpool(yb, bn16, 2)
    ref = textbook(yb.float(), copy.deepcopy(bn), 2)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max().item() < 0.05 * ref.abs().max().item()


def test_gradcheck(backend: str, gen: torch.Generator) -> None:
    bn = make_bn(4, 2, torch.float64, gen, track_running_stats=False)
    y = torch.randn(3, 4, 5, 7, generator=gen, dtype=torch.float64, requires_grad=True)

    w = (bn.weight.detach().abs() + 0.5).requires_grad_()  # no zero weight: a smooth max
    w.data[1] *= -1  # one negative channel: the min branch
    b = bn.bias.detach().clone().requires_grad_()
    del bn.weight, bn.bias  # plain attributes, so gradcheck's inputs flow through

    def f(y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        bn.weight, bn.bias = w, b
        return bn_relu_maxpool(y, bn, 2)

    assert torch.autograd.gradcheck(f, (y, w, b))


def test_double_backward_is_refused(backend: str) -> None:
    y = torch.randn(4, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    out = bn_relu_maxpool(y, nn.BatchNorm2d(3).double(), 2).sum()
    with pytest.raises(RuntimeError, match=r"higher-order gradients.*set_fused\(model, False\)"):
        torch.autograd.grad(out, y, create_graph=True)


def test_same_result_for_any_thread_count(backend: str, gen: torch.Generator) -> None:
    y = torch.randn(16, 6, 41, 30, generator=gen).contiguous(memory_format=torch.channels_last)
    outs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        bn, yy = make_bn(6, 2, torch.float32, torch.Generator().manual_seed(1)), y.clone()
        yy.requires_grad_()
        out = bn_relu_maxpool(yy, bn, 2)
        out.sum().backward()
        outs.append((out.detach(), yy.grad, bn.running_var.clone()))
    for a, b in zip(*outs, strict=True):
        assert torch.equal(a, b)


def test_bad_input() -> None:
    bn = nn.BatchNorm2d(6)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(6\) got 4 channels"):
        bn_relu_maxpool(torch.randn(2, 4, 8, 8), bn, 2)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn_relu_maxpool(torch.randn(1, 6, 1, 1), bn, 2)
    with pytest.raises(ValueError, match=r"\(B, C, L\) or \(B, C, H, W\)"):
        bn_relu_maxpool(torch.randn(2, 6), bn, 2)


def test_conv_stage_fused_equals_textbook(backend: str, gen: torch.Generator) -> None:
    stage = ConvStage(Shape("map", (1, 20, 17)), 6, 5, 2, True, "test", 2).double()
    ref = set_fused(copy.deepcopy(stage), False)
    x = torch.randn(5, 1, 20, 17, generator=gen, dtype=torch.float64)
    out, out_ref = stage(x), ref(x)
    assert out.shape == (5, *stage.out_shape.dims)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-12)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    for (name, p), p_ref in zip(stage.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=0, atol=1e-10, msg=name)


def test_conv_stage_under_torch_compile_uses_textbook_path() -> None:
    stage = ConvStage(Shape("map", (1, 12, 12)), 6, 3, 2, True, "test", 2).eval()
    x = torch.randn(2, 1, 12, 12)
    compiled = torch.compile(stage, fullgraph=True)
    torch.testing.assert_close(compiled(x), stage(x), rtol=1e-5, atol=1e-5)


def test_native_build_and_fallback(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh cache builds and loads; a broken compiler warns once and falls back to aten."""
    if native.library() is None:
        pytest.skip("no C++ compiler here")
    monkeypatch.setenv("FUSELAB_CACHE", str(tmp_path / "good"))
    native.reset()
    assert native.library() is not None
    assert len(list((tmp_path / "good" / "kernels").glob("fuselab-ops-*.so"))) == 1
    monkeypatch.setenv("FUSELAB_CACHE", str(tmp_path / "bad"))
    monkeypatch.setenv("CXX", "false")
    native.reset()
    with pytest.warns(UserWarning, match="native kernels unavailable"):
        assert native.library() is None
    bn = nn.BatchNorm2d(3)
    y = torch.randn(4, 3, 6, 6)
    torch.testing.assert_close(bn_relu_maxpool(y, copy.deepcopy(bn), 2), textbook(y, bn, 2))
    native.reset()
