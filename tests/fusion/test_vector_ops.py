"""Equations and invariants of the simple vector operators (sum, product, tensor, lowrank, gated)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import fuselab as fl
from fuselab.fusion import LowRankFusion, TensorFusion

F64 = torch.float64


def _x(gen: torch.Generator, b: int, d: int) -> Tensor:
    return torch.randn(b, d, dtype=F64, generator=gen)


def test_sum_is_one_linear_map_of_the_concatenation(gen: torch.Generator) -> None:
    op = fl.fusion.build("sum", in_dims={"a": 3, "b": 5}, out_dim=4).double()
    torch.nn.init.normal_(op.bias, generator=gen)
    a, b = _x(gen, 6, 3), _x(gen, 6, 5)
    w = torch.cat([op.proj["a"].weight, op.proj["b"].weight], dim=1)
    torch.testing.assert_close(op({"a": a, "b": b}), torch.cat([a, b], 1) @ w.T + op.bias)


def test_product_multiplies_projections(gen: torch.Generator) -> None:
    op = fl.fusion.build("product", in_dims={"a": 3, "b": 5, "c": 2}, out_dim=4).double()
    xs = {"a": _x(gen, 6, 3), "b": _x(gen, 6, 5), "c": _x(gen, 6, 2)}
    want = op.proj["a"](xs["a"]) * op.proj["b"](xs["b"]) * op.proj["c"](xs["c"])
    torch.testing.assert_close(op(xs), want)
    raw = fl.fusion.build("product", in_dims={"a": 4, "b": 4}, out_dim=4, project=False)
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(raw({"a": a, "b": b}), a * b)
    assert sum(p.numel() for p in raw.parameters()) == 0


def test_tensor_matches_explicit_outer_product(gen: torch.Generator) -> None:
    op = fl.fusion.build("tensor", in_dims={"a": 2, "b": 3}, out_dim=4).double()
    a, b = _x(gen, 5, 2), _x(gen, 5, 3)
    one = torch.ones(5, 1, dtype=F64)
    outer = torch.einsum("bi,bj->bij", torch.cat([a, one], 1), torch.cat([b, one], 1))
    w = op.linear.weight.view(4, 3, 4)
    want = torch.einsum("bij,kij->bk", outer, w) + op.linear.bias
    torch.testing.assert_close(op({"a": a, "b": b}), want)
    assert op.linear.weight.shape == (4, 12)


@pytest.mark.parametrize("name", ["tensor", "lowrank"])
def test_affine_in_each_modality(name: str, gen: torch.Generator) -> None:
    op = fl.fusion.build(name, in_dims={"a": 3, "b": 2, "c": 2}, out_dim=5).double()
    x1, x2, y, w = _x(gen, 4, 3), _x(gen, 4, 3), _x(gen, 4, 2), _x(gen, 4, 2)
    for alpha in (0.3, -1.7, 2.5):
        mix = op({"a": alpha * x1 + (1 - alpha) * x2, "b": y, "c": w})
        want = alpha * op({"a": x1, "b": y, "c": w}) + (1 - alpha) * op({"a": x2, "b": y, "c": w})
        torch.testing.assert_close(mix, want)
        mix_b = op({"a": x1, "b": alpha * y + (1 - alpha) * w, "c": w})
        want_b = alpha * op({"a": x1, "b": y, "c": w}) + (1 - alpha) * op({"a": x1, "b": w, "c": w})
        torch.testing.assert_close(mix_b, want_b)
    # ...but not affine jointly: doubling both inputs is not "twice minus the zero input".
    z0 = op({"a": 0 * x1, "b": 0 * y, "c": w})
    assert not torch.allclose(
        op({"a": 2 * x1, "b": 2 * y, "c": w}) - z0, 2 * (op({"a": x1, "b": y, "c": w}) - z0)
    )


@pytest.mark.parametrize("dims", [{"a": 3, "b": 5}, {"a": 2, "b": 3, "c": 2}])
def test_lowrank_full_rank_reproduces_tensor_weight(
    dims: dict[str, int], gen: torch.Generator
) -> None:
    tensor = TensorFusion(dims, out_dim=6).double()
    torch.nn.init.normal_(tensor.linear.weight, generator=gen)
    torch.nn.init.normal_(tensor.linear.bias, generator=gen)
    low = LowRankFusion.from_tensor(tensor)
    xs = {m: _x(gen, 7, d) for m, d in dims.items()}
    torch.testing.assert_close(low(xs), tensor(xs), rtol=1e-12, atol=1e-12)
    assert low.rank == (4 if len(dims) == 2 else 3 * 3)


def test_lowrank_rank_one_equation(gen: torch.Generator) -> None:
    op = fl.fusion.build("lowrank", in_dims={"a": 2, "b": 3}, out_dim=4, rank=1).double()
    a, b = _x(gen, 5, 2), _x(gen, 5, 3)
    one = torch.ones(5, 1, dtype=F64)
    ha = torch.cat([a, one], 1) @ op.factors["a"][0]
    hb = torch.cat([b, one], 1) @ op.factors["b"][0]
    torch.testing.assert_close(op({"a": a, "b": b}), op.fusion_weights[0] * ha * hb + op.bias)
    with pytest.raises(ValueError, match="rank"):
        fl.fusion.build("lowrank", in_dims={"a": 2}, out_dim=4, rank=0)


@pytest.mark.parametrize("level", ["modality", "feature"])
def test_gated_gates_in_open_unit_interval_and_weight_projections(
    level: str, gen: torch.Generator
) -> None:
    op = fl.fusion.build("gated", in_dims={"a": 3, "b": 5}, out_dim=4, level=level).double()
    for p in op.parameters():
        torch.nn.init.normal_(p, std=1.0, generator=gen)  # spread gates over most of (0, 1)
    xs = {"a": 2 * _x(gen, 64, 3), "b": 2 * _x(gen, 64, 5)}
    g = op.gates(xs)
    width = 1 if level == "modality" else 4
    for m in ("a", "b"):
        assert g[m].shape == (64, width)
        assert bool(((g[m] > 0) & (g[m] < 1)).all())
        assert g[m].min() < 0.2 and g[m].max() > 0.8  # the gates really vary with the inputs
    want = g["a"] * op.proj["a"](xs["a"]) + g["b"] * op.proj["b"](xs["b"])
    torch.testing.assert_close(op(xs), want)


def test_gated_closed_gate_silences_a_modality(gen: torch.Generator) -> None:
    op = fl.fusion.build("gated", in_dims={"a": 3, "b": 5}, out_dim=4).double()
    with torch.no_grad():
        op.gate.weight.zero_()
        op.gate.bias.copy_(torch.tensor([50.0, -50.0]))  # a open, b closed
    a = _x(gen, 3, 3)
    z1 = op({"a": a, "b": _x(gen, 3, 5)})
    z2 = op({"a": a, "b": _x(gen, 3, 5)})
    torch.testing.assert_close(z1, z2)
    torch.testing.assert_close(z1, op.proj["a"](a))
    with pytest.raises(ValueError, match="level"):
        fl.fusion.build("gated", in_dims={"a": 3}, out_dim=4, level="channel")


@pytest.mark.parametrize("name", ["concat", "sum", "product", "tensor", "lowrank", "gated"])
def test_sequences_are_fused_per_step(name: str, gen: torch.Generator) -> None:
    op = fl.fusion.build(name, in_dims={"a": 3, "b": 2}, out_dim=4).double()
    seq = {
        "a": torch.randn(2, 5, 3, dtype=F64, generator=gen),
        "b": torch.randn(2, 5, 2, dtype=F64, generator=gen),
    }
    out = op(seq)
    assert out.shape == (2, 5, 4)
    for t in range(5):
        torch.testing.assert_close(out[:, t], op({m: x[:, t] for m, x in seq.items()}))
