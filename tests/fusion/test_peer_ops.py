"""Equations of the multilinear contraction, multiplicative, nlgate and deepset operators."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import fuselab as fl
from fuselab.fusion.multilinear import multilinear, split_point

F64 = torch.float64


def _x(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, dtype=F64, generator=gen)


def _one(x: Tensor) -> Tensor:
    return torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype)], -1)


@pytest.mark.parametrize(
    ("dims", "out", "split"),
    [([3, 2], 50, 0), ([40, 40], 2, 1), ([30, 2, 2], 1, 1), ([2, 2, 50], 1, 2), ([5], 3, 0)],
)
def test_multilinear_every_split_equals_the_sum(
    dims: list[int], out: int, split: int, gen: torch.Generator
) -> None:
    assert split_point(dims, out) == split
    xs = [_x(gen, 2, 3, d) for d in dims]  # leading (B, T) dims
    w = _x(gen, out, *dims)
    letters = "ijk"[: len(dims)]
    want = torch.einsum(f"o{letters}," + ",".join(f"bt{c}" for c in letters) + "->bto", w, *xs)
    torch.testing.assert_close(multilinear(xs, w), want)


def test_split_choice_at_the_benchmark_sizes() -> None:
    assert split_point([512, 512], 64) == 1  # x_B Wᵀ first: 33k values/sample, not 262k
    assert split_point([64, 32], 128) == 0  # outer product: 2.2k values/sample, not 8.3k


def test_bilinear_large_width_path_equals_nn_bilinear(gen: torch.Generator) -> None:
    op = fl.fusion.build("bilinear", in_dims={"a": 40, "b": 30}, out_dim=2).double()
    bil = torch.nn.Bilinear(40, 30, 2).double()
    bil.load_state_dict(op.state_dict())
    a, b = _x(gen, 5, 40), _x(gen, 5, 30)
    torch.testing.assert_close(op({"a": a, "b": b}), bil(a, b))


def test_tensor_partial_contraction_equals_flattened_outer_product(gen: torch.Generator) -> None:
    dims = {"a": 30, "b": 2, "c": 3}
    op = fl.fusion.build("tensor", in_dims=dims, out_dim=2).double()
    assert split_point([d + 1 for d in dims.values()], 2) == 1
    xs = {m: _x(gen, 4, d) for m, d in dims.items()}
    a, b, c = (_one(xs[m]) for m in dims)
    outer = torch.einsum("bi,bj,bk->bijk", a, b, c).flatten(1)
    torch.testing.assert_close(op(xs), op.linear(outer))


def test_multiplicative_matrix_is_x_times_generated_weight(gen: torch.Generator) -> None:
    op = fl.fusion.build("multiplicative", in_dims={"c": 3, "x": 4}, out_dim=5).double()
    c, x = _x(gen, 6, 3), _x(gen, 6, 4)
    w = op.weight  # (K, D_c + 1, D_x + 1): W, U (column D_x), V (row D_c), b (corner)
    big_w, u, v, b = w[:, :3, :4], w[:, :3, 4], w[:, 3, :4], w[:, 3, 4]
    generated = torch.einsum("bn,knm->bmk", c, big_w) + v.T  # W(c) = W ×₁ c + V: (B, D_x, K)
    bias = c @ u.T + b  # b(c) = U c + b
    want = torch.einsum("bm,bmk->bk", x, generated) + bias
    torch.testing.assert_close(op({"c": c, "x": x}), want)
    got_w, got_b = op.hypernetwork({"c": c, "x": x})
    torch.testing.assert_close(got_w, generated)
    torch.testing.assert_close(got_b, bias)


def test_multiplicative_matrix_forms_are_tensor_fusion(gen: torch.Generator) -> None:
    for dims in ({"c": 3, "x": 4}, {"c1": 2, "c2": 3, "x": 2}):
        mi = fl.fusion.build("multiplicative", in_dims=dims, out_dim=3).double()
        tf = fl.fusion.build("tensor", in_dims=dims, out_dim=3).double()
        with torch.no_grad():
            tf.linear.weight.copy_(mi.weight.flatten(1))
            tf.linear.bias.zero_()
        xs = {m: _x(gen, 5, d) for m, d in dims.items()}
        torch.testing.assert_close(mi(xs), tf(xs))


def test_multiplicative_matrix3d_is_multibench_three_modal(gen: torch.Generator) -> None:
    op = fl.fusion.build("multiplicative", in_dims={"a": 2, "b": 3, "x": 4}, out_dim=2).double()
    assert op.form == "matrix3D"
    a, b, x = _x(gen, 5, 2), _x(gen, 5, 3), _x(gen, 5, 4)
    w = op.weight  # (K, 3, 4, 5)
    # x · W3(a, b) + b(a, b): W3 bilinear + linear in (a, b), b(a, b) the matrix form of (a, b).
    w3 = (torch.einsum("bn,bm,knml->blk", a, b, w[:, :2, :3, :4])
          + torch.einsum("bn,knl->blk", a, w[:, :2, 3, :4])
          + torch.einsum("bm,kml->blk", b, w[:, 2, :3, :4]) + w[:, 2, 3, :4].T)
    bias = (torch.einsum("bn,bm,knm->bk", a, b, w[:, :2, :3, 4]) + a @ w[:, :2, 3, 4].T
            + b @ w[:, 2, :3, 4].T + w[:, 2, 3, 4])
    want = torch.einsum("bl,blk->bk", x, w3) + bias
    torch.testing.assert_close(op({"a": a, "b": b, "x": x}), want)


def test_multiplicative_vector_and_scalar_forms(gen: torch.Generator) -> None:
    vec = fl.fusion.build("multiplicative", in_dims={"c": 3, "x": 4}, out_dim=4, form="vector")
    vec = vec.double()
    c, x = _x(gen, 6, 3), _x(gen, 6, 4)
    w = c @ vec.scale_weight.T + vec.scale_bias  # w(c) = W c + V
    b = c @ vec.shift_weight.T + vec.shift_bias  # b(c) = U c + b
    torch.testing.assert_close(vec({"c": c, "x": x}), w * x + b)
    sca = fl.fusion.build("multiplicative", in_dims={"c": 3, "x": 4}, out_dim=4, form="scalar")
    sca = sca.double()
    s = c @ sca.scale_weight.T + sca.scale_bias  # (B, 1)
    t = c @ sca.shift_weight.T + sca.shift_bias
    torch.testing.assert_close(sca({"c": c, "x": x}), s * x + t)


def test_multiplicative_bad_settings() -> None:
    with pytest.raises(ValueError, match=r"out_dim must equal in_dims\['x'\] = 4, got 5"):
        fl.fusion.build("multiplicative", in_dims={"c": 3, "x": 4}, out_dim=5, form="vector")
    with pytest.raises(ValueError, match="matrix3D needs three modalities"):
        fl.fusion.build("multiplicative", in_dims={"c": 3, "x": 4}, out_dim=5, form="matrix3D")
    with pytest.raises(ValueError, match="needs 2 or 3 modalities, got 4"):
        fl.fusion.build("multiplicative", in_dims=dict.fromkeys("abcd", 2), out_dim=2)
    op = fl.fusion.build("multiplicative", in_dims={"c": 3, "x": 4}, out_dim=4, form="scalar")
    with pytest.raises(ValueError, match="hypernetwork\\(\\) is for the matrix forms"):
        op.hypernetwork({"c": torch.randn(2, 3), "x": torch.randn(2, 4)})


def _nlgate_by_hand(op: torch.nn.Module, q_in: Tensor, s_in: Tensor, scale: float) -> Tensor:
    q = op.q(q_in)
    k, v = op.k["b"](s_in), op.v["b"](s_in)
    return q + torch.softmax(scale * q @ k.transpose(1, 2), -1) @ v


@pytest.mark.parametrize("scaled", [False, True])
def test_nlgate_is_query_plus_attention(scaled: bool, gen: torch.Generator) -> None:
    op = fl.fusion.build("nlgate", in_dims={"a": 3, "b": 2}, out_dim=4, scaled=scaled).double()
    xs = {"a": _x(gen, 2, 5, 3), "b": _x(gen, 2, 7, 2)}
    want = _nlgate_by_hand(op, xs["a"], xs["b"], 0.5 if scaled else 1.0)
    torch.testing.assert_close(op(xs), want)
    w = op.attention_weights(xs)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 5, dtype=F64))


def test_nlgate_masks_equal_truncation(gen: torch.Generator) -> None:
    op = fl.fusion.build("nlgate", in_dims={"a": 3, "b": 2}, out_dim=4).double()
    xs = {"a": _x(gen, 3, 5, 3), "b": _x(gen, 3, 7, 2)}
    masks = {"a": torch.zeros(3, 5, dtype=torch.bool), "b": torch.zeros(3, 7, dtype=torch.bool)}
    masks["a"][0, 3:] = True
    masks["b"][0, 4:] = True
    masks["b"][2, :] = True  # sample 2 has no valid source step: output = query projection
    z = op(xs, masks)
    alone = op({"a": xs["a"][:1, :3], "b": xs["b"][:1, :4]})
    torch.testing.assert_close(z[0, :3], alone[0])
    assert bool((z[0, 3:] == 0).all())
    torch.testing.assert_close(z[1], op({m: x[1:2] for m, x in xs.items()})[0])
    torch.testing.assert_close(z[2], op.q(xs["a"][2]))
    assert bool((op.attention_weights(xs, masks)[0, :, 4:] == 0).all())


def test_deepset_formula_and_pools(gen: torch.Generator) -> None:
    dims = {"a": 3, "b": 5, "c": 4}
    xs = {m: _x(gen, 6, d) for m, d in dims.items()}
    for pool in ("sum", "mean", "max", "attention"):
        op = fl.fusion.build("deepset", in_dims=dims, out_dim=2, pool=pool).double()
        assert op.width == 3
        p = torch.stack([F.normalize(op.proj[m](xs[m]), dim=-1) for m in sorted(dims)], 1)
        if pool == "attention":
            a = torch.softmax(op.score(p), dim=1)
            torch.testing.assert_close(op.weights(xs), a.squeeze(-1))
            pooled = (a * p).sum(1)
        else:
            pooled = {"sum": p.sum(1), "mean": p.mean(1), "max": p.max(1).values}[pool]
        torch.testing.assert_close(op(xs), op.mlp(pooled))


@pytest.mark.parametrize("pool", ["sum", "max", "attention"])
def test_deepset_permutation_invariant(pool: str, gen: torch.Generator) -> None:
    dims = {"a": 3, "b": 3, "c": 2}
    torch.manual_seed(0)
    op = fl.fusion.build("deepset", in_dims=dims, out_dim=2, pool=pool, normalize="none")
    op = op.double()
    xs = {m: _x(gen, 4, d) for m, d in dims.items()}
    # Declaration order does not matter (same weights under the same names) ...
    flipped = fl.fusion.build("deepset", in_dims=dict(reversed(dims.items())), out_dim=2,
                              pool=pool, normalize="none").double()
    flipped.load_state_dict(op.state_dict())
    torch.testing.assert_close(flipped(xs), op(xs))
    # ... and swapping two modalities together with their projections changes nothing.
    swapped = fl.fusion.build("deepset", in_dims=dims, out_dim=2, pool=pool,
                              normalize="none").double()
    state = op.state_dict()
    for key in [k for k in state if k.startswith("proj.a.")]:
        other = key.replace("proj.a.", "proj.b.")
        state[key], state[other] = state[other], state[key]
    swapped.load_state_dict(state)
    torch.testing.assert_close(swapped(dict(xs, a=xs["b"], b=xs["a"])), op(xs))


def test_deepset_bad_settings() -> None:
    with pytest.raises(ValueError, match="pool must be one of"):
        fl.fusion.build("deepset", in_dims={"a": 2}, out_dim=2, pool="median")
    with pytest.raises(ValueError, match="normalize must be one of"):
        fl.fusion.build("deepset", in_dims={"a": 2}, out_dim=2, normalize="l1")
    with pytest.raises(ValueError, match="weights\\(\\) needs pool='attention'"):
        fl.fusion.build("deepset", in_dims={"a": 2}, out_dim=2).weights({"a": torch.randn(1, 2)})
