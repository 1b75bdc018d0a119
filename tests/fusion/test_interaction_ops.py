"""Equations and invariants of bilinear, mcb, attention, cross_attention and shift."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

import fuselab as fl

F64 = torch.float64


def _x(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, dtype=F64, generator=gen)


def test_bilinear_equation_and_two_modalities_only(gen: torch.Generator) -> None:
    op = fl.fusion.build("bilinear", in_dims={"a": 3, "b": 2}, out_dim=4).double()
    a, b = _x(gen, 5, 3), _x(gen, 5, 2)
    bil = torch.nn.Bilinear(3, 2, 4).double()
    bil.load_state_dict(op.state_dict())  # same parameter names and shapes as nn.Bilinear
    want = bil(a, b)
    torch.testing.assert_close(op({"a": a, "b": b}), want)
    with pytest.raises(ValueError, match="exactly 2 modalities, got 3"):
        fl.fusion.build("bilinear", in_dims={"a": 3, "b": 2, "c": 1}, out_dim=4)


@pytest.mark.parametrize("dims", [{"a": 5, "b": 4}, {"a": 3, "b": 2, "c": 3}])
def test_mcb_is_count_sketch_of_outer_product(dims: dict[str, int], gen: torch.Generator) -> None:
    d = 7
    op = fl.fusion.build("mcb", in_dims=dims, out_dim=d, seed=3).double()
    assert sum(p.numel() for p in op.parameters()) == 0
    xs = {m: _x(gen, 2, n) for m, n in dims.items()}
    hashes = {m: op.sketch(m).abs().argmax(1) for m in dims}
    signs = {m: op.sketch(m).sum(1) for m in dims}
    want = torch.zeros(2, d, dtype=F64)
    for idx in itertools.product(*(range(n) for n in dims.values())):
        k = sum(int(hashes[m][i]) for m, i in zip(dims, idx, strict=True)) % d
        term = torch.ones(2, dtype=F64)
        for m, i in zip(dims, idx, strict=True):
            term = term * signs[m][i] * xs[m][:, i]
        want[:, k] += term
    torch.testing.assert_close(op(xs), want)
    again = fl.fusion.build("mcb", in_dims=dims, out_dim=d, seed=3).double()
    torch.testing.assert_close(again(xs), op(xs))  # the seed fixes the sketch


def test_attention_single_head_equation(gen: torch.Generator) -> None:
    op = fl.fusion.build("attention", in_dims={"a": 3, "b": 2, "c": 4}, out_dim=4, num_heads=1)
    op = op.double()
    xs = {"a": _x(gen, 5, 3), "b": _x(gen, 5, 2), "c": _x(gen, 5, 4)}
    t = torch.stack([op.proj[m](xs[m]) for m in ("a", "b", "c")], 1) + op.embed
    wq, wk, wv = op.attn.in_proj_weight.chunk(3)
    bq, bk, bv = op.attn.in_proj_bias.chunk(3)
    q, k, v = t @ wq.T + bq, t @ wk.T + bk, t @ wv.T + bv
    a = torch.softmax(q @ k.transpose(1, 2) / 2.0, -1)  # sqrt(d) = 2
    u = op.norm(t + op.attn.out_proj(a @ v))
    torch.testing.assert_close(op(xs), u.mean(1))
    torch.testing.assert_close(op.attention_weights(xs), a)


def test_attention_independent_of_declaration_order(gen: torch.Generator) -> None:
    torch.manual_seed(0)
    op = fl.fusion.build("attention", in_dims={"a": 3, "b": 2}, out_dim=4).double()
    flipped = fl.fusion.build("attention", in_dims={"b": 2, "a": 3}, out_dim=4).double()
    state = op.state_dict()
    state["embed"] = state["embed"].flip(0)  # embeddings are stored in declaration order
    flipped.load_state_dict(state)
    xs = {"a": _x(gen, 4, 3), "b": _x(gen, 4, 2)}
    torch.testing.assert_close(flipped(xs), op(xs))


def test_cross_attention_single_source_vector_weight_is_one(gen: torch.Generator) -> None:
    op = fl.fusion.build("cross_attention", in_dims={"a": 3, "b": 2}, out_dim=4).double()
    xs = {"a": _x(gen, 4, 3), "b": _x(gen, 4, 2)}
    w = op.attention_weights(xs)
    assert w.shape == (4, 1, 1)
    torch.testing.assert_close(w, torch.ones_like(w))


def test_cross_attention_sequences_mult_style(gen: torch.Generator) -> None:
    op = fl.fusion.build(
        "cross_attention", in_dims={"text": 3, "audio": 2, "video": 5}, out_dim=4, target="text"
    ).double()
    xs = {"text": _x(gen, 2, 6, 3), "audio": _x(gen, 2, 9, 2), "video": _x(gen, 2, 4, 5)}
    z = op(xs)
    assert z.shape == (2, 6, 4)
    w = op.attention_weights(xs)
    assert w.shape == (2, 6, 13)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 6, dtype=F64))
    # No self-attention over the target: changing target step 2 changes output step 2 only.
    moved = dict(xs, text=xs["text"].clone())
    moved["text"][:, 2] += 1.0
    diff = (op(moved) - z).abs().sum(-1)
    assert bool((diff[:, 2] > 1e-6).all())
    assert bool((diff[:, [0, 1, 3, 4, 5]] == 0).all())
    # Sources carry no positional encoding: permuting their steps changes nothing.
    perm = dict(xs, audio=xs["audio"][:, torch.randperm(9, generator=gen)])
    torch.testing.assert_close(op(perm), z)
    # ... but the sources matter.
    assert not torch.allclose(op(dict(xs, video=xs["video"] + 1)), z)


def test_cross_attention_bad_target() -> None:
    with pytest.raises(ValueError, match=r"target must be one of \['a', 'b'\], got 'c'"):
        fl.fusion.build("cross_attention", in_dims={"a": 3, "b": 2}, out_dim=4, target="c")
    with pytest.raises(ValueError, match="num_heads must be a positive divisor of out_dim=4"):
        fl.fusion.build("cross_attention", in_dims={"a": 3, "b": 2}, out_dim=4, num_heads=3)


def test_shift_bounded_by_beta_times_primary_norm(gen: torch.Generator) -> None:
    beta = 0.3
    op = fl.fusion.build(
        "shift", in_dims={"text": 4, "audio": 2, "video": 3}, out_dim=4, beta=beta, norm=False
    ).double()
    for name, p in op.named_parameters():  # small values: some shifts stay below the clip
        torch.nn.init.normal_(p, std=1.0 if name.startswith("gate") else 0.1, generator=gen)
    xs = {"text": _x(gen, 64, 4), "audio": _x(gen, 64, 2), "video": _x(gen, 64, 3)}
    shift = op(xs) - xs["text"]
    torch.testing.assert_close(shift, op.displacement(xs))
    ratio = shift.norm(dim=-1) / xs["text"].norm(dim=-1)
    assert bool((ratio <= beta + 1e-9).all())
    assert bool((ratio > beta - 1e-4).any())  # large displacements are clipped to beta
    assert bool((ratio < beta - 1e-3).any())  # small ones pass through unscaled


def test_shift_closed_gates_leave_primary_unchanged(gen: torch.Generator) -> None:
    op = fl.fusion.build("shift", in_dims={"text": 4, "audio": 2}, out_dim=6).double()
    with torch.no_grad():
        op.gate["audio"].weight.zero_()
        op.gate["audio"].bias.fill_(-1.0)  # ReLU(-1) = 0: the audio gate is shut
    xs = {"text": _x(gen, 3, 4), "audio": _x(gen, 3, 2)}
    torch.testing.assert_close(op(xs), op.out(op.norm(xs["text"])))
    with pytest.raises(ValueError, match="primary must be one of"):
        fl.fusion.build("shift", in_dims={"text": 4, "audio": 2}, out_dim=6, primary="video")
