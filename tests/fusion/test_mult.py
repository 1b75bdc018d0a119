"""MulT written out by hand, padding masks (mult, cross_attention), sinusoids, compile with masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import fuselab as fl
from fuselab.fusion.mult_layers import sinusoid

F64 = torch.float64


def _x(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, dtype=F64, generator=gen)


def test_sinusoid_known_values() -> None:
    table = sinusoid(2, 5, torch.zeros(1, dtype=F64))  # half = 2: f = (1, 1e-4); odd: 0 column
    p = torch.tensor([1.0, 2.0], dtype=F64)
    want = torch.stack(
        [torch.sin(p), torch.sin(p * 1e-4), torch.cos(p), torch.cos(p * 1e-4), 0 * p], 1
    )
    torch.testing.assert_close(table, want)


def _attention(attn: torch.nn.MultiheadAttention, q: Tensor, kv: Tensor) -> Tensor:
    wq, wk, wv = attn.in_proj_weight.chunk(3)
    bq, bk, bv = attn.in_proj_bias.chunk(3)
    qq, k, v = q @ wq.T + bq, kv @ wk.T + bk, kv @ wv.T + bv
    a = torch.softmax(qq @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), -1)  # one head
    return attn.out_proj(a @ v)


def _encoder(enc: torch.nn.Module, x: Tensor, source: Tensor | None) -> Tensor:
    w = x.shape[-1]

    def embed(t: Tensor) -> Tensor:
        pos = torch.arange(1, t.shape[1] + 1, dtype=F64)[:, None]
        freq = torch.exp(-math.log(10000.0) * torch.arange(w // 2, dtype=F64) / (w // 2 - 1))
        return math.sqrt(w) * t + torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], 1)

    h = embed(x)
    s = None if source is None else embed(source)
    for layer in enc.layers:
        q = layer.norm_attn(h)
        kv = q if s is None else layer.norm_attn(s)
        h = h + _attention(layer.attn, q, kv)
        h = h + layer.ffn[3](F.relu(layer.ffn[0](layer.norm_ffn(h))))
    return enc.norm(h)


def test_mult_written_out(gen: torch.Generator) -> None:
    op = fl.fusion.build("mult", in_dims={"a": 3, "b": 2}, out_dim=2, width=4, num_heads=1,
                         num_layers=2, self_layers=1).double()
    xa, xb = _x(gen, 2, 5, 3), _x(gen, 2, 3, 2)
    ha = xa @ op.temporal["a"].weight[:, :, 0].T  # kernel 1, no bias: a per-step product
    hb = xb @ op.temporal["b"].weight[:, :, 0].T
    last_a = _encoder(op.memory["a"], _encoder(op.cross["b_to_a"], ha, hb), None)[:, -1]
    last_b = _encoder(op.memory["b"], _encoder(op.cross["a_to_b"], hb, ha), None)[:, -1]
    h = torch.cat([last_a, last_b], -1)
    h = h + op.proj2(F.relu(op.proj1(h)))
    torch.testing.assert_close(op({"a": xa, "b": xb}), op.out(h))


def _padded(gen: torch.Generator, lengths: dict[str, list[int]], dims: dict[str, int]) -> tuple[
    dict[str, Tensor], dict[str, Tensor]
]:
    xs, masks = {}, {}
    for m, ls in lengths.items():
        t = max(ls) + 2  # extra padding beyond the longest sample
        xs[m] = _x(gen, len(ls), t, dims[m]) * 10  # padding holds large garbage
        masks[m] = torch.arange(t)[None, :] >= torch.tensor(ls)[:, None]
    return xs, masks


def test_mult_padded_batch_equals_each_unpadded_sample(gen: torch.Generator) -> None:
    dims = {"a": 3, "b": 2, "c": 4}
    lengths = {"a": [4, 2, 5], "b": [3, 3, 1], "c": [6, 2, 4]}
    xs, masks = _padded(gen, lengths, dims)
    for pool in ("last", "mean"):
        op = fl.fusion.build("mult", in_dims=dims, out_dim=3, width=4, num_heads=2, num_layers=2,
                             kernel_size=3, pool=pool).double().eval()
        z = op(xs, masks)
        for i in range(3):
            alone = op({m: xs[m][i : i + 1, : lengths[m][i]] for m in dims})
            torch.testing.assert_close(z[i : i + 1], alone)


def test_cross_attention_masks_equal_truncation(gen: torch.Generator) -> None:
    dims = {"t": 3, "s": 2, "u": 2}
    lengths = {"t": [4, 2], "s": [3, 5], "u": [2, 1]}
    xs, masks = _padded(gen, lengths, dims)
    op = fl.fusion.build("cross_attention", in_dims=dims, out_dim=4, target="t").double()
    z = op(xs, masks)
    for i in range(2):
        alone = op({m: xs[m][i : i + 1, : lengths[m][i]] for m in dims})
        torch.testing.assert_close(z[i, : lengths["t"][i]], alone[0])
        assert bool((z[i, lengths["t"][i] :] == 0).all())


def test_mult_compiles_and_gradchecks_with_masks(gen: torch.Generator) -> None:
    dims = {"a": 3, "b": 2}
    xs, masks = _padded(gen, {"a": [3, 1], "b": [2, 2]}, dims)
    op = fl.fusion.build("mult", in_dims=dims, out_dim=2, width=4, num_heads=2, num_layers=1,
                         self_layers=1, kernel_size=3).double()
    torch._dynamo.reset()
    compiled = torch.compile(op, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(xs, masks), op(xs, masks))

    def f(a: Tensor, b: Tensor) -> Tensor:
        return op({"a": a, "b": b}, masks)

    leaves = (xs["a"].clone().requires_grad_(True), xs["b"].clone().requires_grad_(True))
    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-5)
    # The padded steps get no gradient: they do not influence the output.
    f(*leaves).sum().backward()
    assert leaves[0].grad is not None
    assert bool((leaves[0].grad[masks["a"]] == 0).all())


def test_mult_layers_is_a_deprecated_spelling_of_num_layers() -> None:
    dims = {"a": 3, "b": 2}
    torch.manual_seed(0)
    new = fl.fusion.build("mult", in_dims=dims, out_dim=2, width=4, num_heads=2, num_layers=2)
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="'layers' is deprecated, use 'num_layers'"):
        old = fl.fusion.build("mult", in_dims=dims, out_dim=2, width=4, num_heads=2, layers=2)
    assert len(old.cross["a_to_b"].layers) == len(new.cross["a_to_b"].layers) == 2
    x = {"a": torch.randn(2, 5, 3), "b": torch.randn(2, 4, 2)}
    torch.testing.assert_close(old.eval()(x), new.eval()(x))
