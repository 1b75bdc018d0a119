"""Decision-level fusion: mean, weighted, product, vote and the multiplicative combination loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import fuselab as fl

DIMS = {"a": 4, "b": 4, "c": 4}


def _logits(gen: torch.Generator, b: int = 6) -> dict[str, torch.Tensor]:
    return {m: torch.randn(b, 4, dtype=torch.float64, generator=gen) for m in DIMS}


def test_mean_equals_mean_of_logits(gen: torch.Generator) -> None:
    op = fl.fusion.build("late", in_dims=DIMS, out_dim=4, mode="mean")
    x = _logits(gen)
    torch.testing.assert_close(op(x), (x["a"] + x["b"] + x["c"]) / 3)


def test_weighted_starts_at_mean_and_follows_learned_weights(gen: torch.Generator) -> None:
    op = fl.fusion.build("late", in_dims=DIMS, out_dim=4, mode="weighted").double()
    x = _logits(gen)
    torch.testing.assert_close(op(x), (x["a"] + x["b"] + x["c"]) / 3)
    with torch.no_grad():
        op.weight_logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), 0)
    torch.testing.assert_close(op.modality_weights().sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(op(x), w[0] * x["a"] + w[1] * x["b"] + w[2] * x["c"])


def test_product_is_normalised_product_of_probabilities(gen: torch.Generator) -> None:
    op = fl.fusion.build("late", in_dims=DIMS, out_dim=4, mode="product")
    x = _logits(gen)
    p = F.softmax(x["a"], -1) * F.softmax(x["b"], -1) * F.softmax(x["c"], -1)
    torch.testing.assert_close(op(x).exp(), p / p.sum(-1, keepdim=True))


def test_vote_majority_and_tie_break_by_mean_probability() -> None:
    op = fl.fusion.build("late", in_dims=DIMS, out_dim=4, mode="vote")
    # a and b vote for class 2 with low confidence, c votes class 0 with high confidence.
    x = {
        "a": torch.tensor([[0.0, 0.0, 0.1, 0.0]]),
        "b": torch.tensor([[0.0, 0.0, 0.1, 0.0]]),
        "c": torch.tensor([[9.0, 0.0, 0.0, 0.0]]),
    }
    out = op(x)
    assert out.argmax(-1).item() == 2
    assert out[0].floor().tolist() == [1.0, 0.0, 2.0, 0.0]
    two = fl.fusion.build("late", in_dims={"a": 3, "b": 3}, out_dim=3, mode="vote")
    tie = two({"a": torch.tensor([[2.0, 0.0, 0.0]]), "b": torch.tensor([[0.0, 5.0, 0.0]])})
    assert tie.argmax(-1).item() == 1  # one vote each; b is more confident


def test_multiplicative_loss_known_values(gen: torch.Generator) -> None:
    x = _logits(gen)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    plain = fl.fusion.build("late", in_dims=DIMS, out_dim=4, mode="multiplicative", beta=0.0)
    ce = sum(F.cross_entropy(x[m], y) for m in DIMS)
    torch.testing.assert_close(plain.loss(x, y), ce)
    op = fl.fusion.build("late", in_dims=DIMS, out_dim=4, mode="multiplicative", beta=2.0)
    p = {m: F.softmax(x[m], -1).gather(1, y[:, None])[:, 0] for m in DIMS}
    want = 0.0
    for m in DIMS:
        others = [j for j in DIMS if j != m]
        w = ((1 - p[others[0]]) * (1 - p[others[1]])) ** (2.0 / 2)
        want = want - (w * p[m].log()).mean()
    torch.testing.assert_close(op.loss(x, y), want)
    probs = sum(F.softmax(x[m], -1) for m in DIMS) / 3
    torch.testing.assert_close(op(x), probs.log())
    with pytest.raises(TypeError, match="int64"):
        op.loss(x, y.float())


def test_late_rejects_mismatched_class_counts_and_modes() -> None:
    with pytest.raises(ValueError, match=r"in_dims\['b'\] must equal out_dim=4.*got 3"):
        fl.fusion.build("late", in_dims={"a": 4, "b": 3}, out_dim=4)
    with pytest.raises(ValueError, match="mode must be one of"):
        fl.fusion.build("late", in_dims={"a": 4}, out_dim=4, mode="median")
