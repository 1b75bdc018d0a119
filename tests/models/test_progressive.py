"""Progressive Fusion (paper 001 eq. 7-9): c = 0 gives the base model, unrolling, ablation, cost."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import fuselab.models as fm
from fuselab import fusion
from fuselab.models import ProgressiveFusion

LATE = [{"at": "late", "operator": "concat"}]


def staged(encoders, shapes, plan=LATE, **extra):
    cfg = {"name": "staged", "encoders": encoders, "fusion": plan, "head": {"hidden": [8]}, **extra}
    return fm.build(cfg, input_shapes=shapes, num_outputs=10)


@pytest.mark.parametrize("inject", ["add", "concat"])
@pytest.mark.parametrize("at", ["input", "conv2"])
def test_zero_init_equals_the_base_exactly(encoders, shapes, batch, inject, at):
    base = staged(encoders, shapes)
    pro = ProgressiveFusion(base, steps=3, context_dim=5, inject=inject, zero_init=True, at=at)
    for mode in ("eval", "train"):
        getattr(base, mode)()
        getattr(pro, mode)()
        assert torch.equal(pro(batch), base(batch))


@pytest.mark.parametrize("inject", ["add", "concat"])
def test_one_step_is_the_base_because_c0_is_zero(encoders, shapes, batch, inject):
    base = staged(encoders, shapes).eval()
    pro = ProgressiveFusion(base, steps=1, context_dim=5, inject=inject).eval()
    torch.testing.assert_close(pro(batch), base(batch), rtol=0, atol=1e-6)
    two = ProgressiveFusion(base, steps=2, context_dim=5, inject=inject).eval()
    two.load_state_dict(pro.state_dict())
    steps = two.step_features(batch)
    assert not torch.allclose(steps[1]["audio"], steps[0]["audio"])


def test_unrolled_steps_follow_equations_7_to_9(encoders, shapes, batch):
    base = staged(encoders, shapes).eval()
    pro = ProgressiveFusion(base, steps=2, context_dim=5, inject="add").eval()
    # step 1: c_0 = 0, so the encoders see the raw input
    f1 = base.fuse(base.unimodal_features(batch))
    c1 = pro.context(f1)
    shifted = {m: batch[m] + pro.back[m](c1).reshape(batch[m].shape) for m in batch}
    f2 = base.fuse(base.unimodal_features(shifted))
    torch.testing.assert_close(pro(batch), base.predict(f2))
    steps = pro.step_features(batch)
    assert len(steps) == 2
    torch.testing.assert_close(steps[0]["audio"], base.unimodal_features(batch)["audio"])
    torch.testing.assert_close(steps[1]["image"], base.unimodal_features(shifted)["image"])


def test_iterative_ablation_has_no_cross_modal_path(encoders, shapes, batch):
    base = staged(encoders, shapes).eval()
    other = dict(batch, audio=torch.randn_like(batch["audio"]))
    pro = ProgressiveFusion(base, steps=2, context_dim=5, mode="progressive").eval()
    ite = ProgressiveFusion(base, steps=2, context_dim=5, mode="iterative").eval()
    assert not torch.allclose(pro.step_features(batch)[1]["image"], pro.step_features(other)[1]["image"])
    torch.testing.assert_close(ite.step_features(batch)[1]["image"], ite.step_features(other)[1]["image"])
    assert not torch.allclose(ite.step_features(batch)[1]["image"], ite.step_features(batch)[0]["image"])


def test_parameters_are_shared_across_steps_and_gradients_flow(encoders, shapes, batch):
    base = staged(encoders, shapes)
    sizes = {r: sum(p.numel() for p in ProgressiveFusion(base, steps=r).parameters()) for r in (1, 2, 4)}
    assert len(set(sizes.values())) == 1
    pro = ProgressiveFusion(base, steps=3, context_dim=4, inject="concat", zero_init=True)
    pro(batch).sum().backward()
    # zero W_i still get a gradient (the widened layers' new input slices are random)
    assert all(w.weight.grad.abs().sum() > 0 for w in pro.back.values())
    assert pro.context.weight.grad is not None


def test_cost_grows_linearly_in_steps(encoders, shapes, batch):
    base = staged(encoders, shapes).eval()
    flops = []
    for r in (1, 2, 3, 4):
        pro = ProgressiveFusion(base, steps=r, context_dim=5, inject="add").eval()
        with FlopCounterMode(display=False) as counter:
            pro(batch)
        flops.append(counter.get_total_flops())
    deltas = [b - a for a, b in itertools.pairwise(flops)]
    assert len(set(deltas)) == 1 and deltas[0] > 0.9 * flops[0], flops


@pytest.mark.parametrize(
    "plan",
    [
        [{"at": "late", "operator": "lowrank", "options": {"out_dim": 6, "rank": 2}}],
        [{"at": "decision", "operator": "late", "options": {"mode": "weighted"}}],
        [{"at": 2, "operator": "msaf", "options": {"reduction": 1}},
         {"at": "late", "operator": "concat"}],
    ],
    ids=["lowrank", "decision", "msaf"],
)
def test_wraps_other_late_style_models(encoders, shapes, batch, plan):
    assert all(p["operator"] in fusion.available() for p in plan)
    base = staged(encoders, shapes, plan).eval()
    pro = ProgressiveFusion(base, steps=2, context_dim=4, zero_init=True).eval()
    assert torch.equal(pro(batch), base(batch))
    assert len(list(pro.fusion_parameters())) == len(list(base.fusion_parameters())) + 3


def test_from_config(encoders, shapes, batch):
    model = staged(encoders, shapes, progressive={"steps": 2, "context_dim": 6, "inject": "add",
                                                  "mode": "iterative", "at": 1})
    assert isinstance(model, ProgressiveFusion) and model.steps == 2 and model.mode == "iterative"
    assert model.modalities == ("image", "audio") and model.feature_dims == {"image": 16, "audio": 64}
    assert model(batch).shape == (4, 10)
    assert model.parameter_counts()["backprojection"] == (16 + 64) * 6 + 6 * (2 * 6 * 6 + 2 * 8 * 4)


def test_errors(encoders, shapes):
    early = staged(encoders, shapes, [{"at": 1, "operator": "concat", "adapter": "resize"}])
    with pytest.raises(TypeError, match=r"needs a late-style base model"):
        ProgressiveFusion(early)
    with pytest.raises(ValueError, match=r"model\.progressive\.rounds: unknown key"):
        staged(encoders, shapes, progressive={"rounds": 2})
    with pytest.raises(ValueError, match=r"model\.progressive\.inject: expected one of \['add', 'concat'\], got 'mul'"):
        staged(encoders, shapes, progressive={"inject": "mul"})
    with pytest.raises(ValueError, match=r"model\.progressive\.steps: expected an int >= 1, got 0"):
        staged(encoders, shapes, progressive={"steps": 0})
    pooled = staged(encoders, shapes, [{"at": 2, "operator": "concat", "adapter": "pool"}])
    with pytest.raises(ValueError, match=r"progressive\.at: 2 is not before the merging point of 'image'"):
        ProgressiveFusion(pooled, at=2)


def _exact_stats(model):
    """Running statistics as the exact (cumulative) average of the next forward passes."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    return model


def _bn(model, i=-1):
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][i]


def test_per_step_statistics_are_each_steps_own(encoders, shapes, batch):
    # step 1 of "add" with c_0 = 0 is the base computation, so its statistics must be the base's
    ref = _exact_stats(staged(encoders, shapes)).train()
    base = copy.deepcopy(ref)
    ref(batch)
    shared = _exact_stats(ProgressiveFusion(copy.deepcopy(base), steps=2, context_dim=5,
                                            inject="add", at="input")).train()
    per = _exact_stats(ProgressiveFusion(copy.deepcopy(base), steps=2, context_dim=5, inject="add",
                                         at="input", norm_stats="per_step")).train()
    per.load_state_dict(shared.state_dict(), strict=False)  # same back-projections
    shared(batch)
    per(batch)
    held = per.step_stats
    assert len(held.norms) == len(list(m for m in ref.modules()
                                        if isinstance(m, torch.nn.BatchNorm2d)))
    step1_mean = held.get_buffer(f"s0_{len(held.norms) - 1}_running_mean")
    torch.testing.assert_close(step1_mean, _bn(ref).running_mean)
    step2_mean = _bn(per).running_mean
    assert not torch.allclose(step1_mean, step2_mean, atol=1e-4)
    # shared statistics are the average of the two steps' (cumulative average over 2 passes)
    torch.testing.assert_close(_bn(shared).running_mean, (step1_mean + step2_mean) / 2)
    # at evaluation, step 1 is normalised with its own statistics: it equals the base again
    ref.eval()
    per.eval()
    shared.eval()
    torch.testing.assert_close(per.step_features(batch)[0]["audio"],
                               ref.unimodal_features(batch)["audio"])
    assert not torch.allclose(shared.step_features(batch)[0]["audio"],
                              ref.unimodal_features(batch)["audio"], atol=1e-4)


def test_per_step_statistics_round_trip_and_leave_no_swap_behind(encoders, shapes, batch):
    pro = ProgressiveFusion(staged(encoders, shapes), steps=3, context_dim=5,
                            norm_stats="per_step").train()
    for _ in range(2):
        pro(batch)
    assert len(pro.step_stats.state_dict()) == 2 * 3 * len(pro.step_stats.norms)
    pro.eval()
    out = pro(batch)
    again = ProgressiveFusion(staged(encoders, shapes), steps=3, context_dim=5,
                              norm_stats="per_step").eval()
    again.load_state_dict(pro.state_dict())
    torch.testing.assert_close(again(batch), out, rtol=0, atol=0)
    last = _bn(pro).running_mean.clone()
    with pytest.raises(RuntimeError, match="boom"), pro.step_stats.step(0):
        raise RuntimeError("boom")
    assert torch.equal(_bn(pro).running_mean, last)  # the swap was undone
    with pytest.raises(ValueError, match=r"progressive\.norm_stats: expected one of "
                                         r"\['per_step', 'shared'\], got 'steps'"):
        staged(encoders, shapes, progressive={"norm_stats": "steps"})


def test_context_readout_is_equation_9_on_a_hand_built_model():
    # x1 (5,) and x2 (6,) through one-layer ReLU MLPs, concat, E: 5 -> 4, W_i: 4 -> input,
    # P: linear 4 -> 3. Written out with the weights: c_1 = E[G1(x1), G2(x2)],
    # c_2 = E[G1(x1 + W1 c_1), G2(x2 + W2 c_1)], y = P(c_2).
    cfg = {"name": "staged", "fusion": LATE, "head": {"hidden": []},
           "encoders": {"x1": {"type": "mlp", "hidden": [3]}, "x2": {"type": "mlp", "hidden": [2]}}}
    torch.manual_seed(0)
    base = fm.build(cfg, input_shapes={"x1": (5,), "x2": (6,)}, num_outputs=3).eval()
    pro = ProgressiveFusion(base, steps=2, context_dim=4, inject="add", readout="context").eval()
    assert pro.base is not base and base.head.in_dim == 5  # the caller's model is unchanged
    p = dict(pro.named_parameters())
    x = {"x1": torch.randn(7, 5), "x2": torch.randn(7, 6)}

    def g(m, v):
        w, b = p[f"base.encoders.{m}.stages.fc1.fc.weight"], p[f"base.encoders.{m}.stages.fc1.fc.bias"]
        return torch.relu(v @ w.T + b)

    E, W = p["context.weight"], {m: p[f"back.{m}.weight"] for m in x}
    c1 = torch.cat([g("x1", x["x1"]), g("x2", x["x2"])], 1) @ E.T
    c2 = torch.cat([g(m, x[m] + c1 @ W[m].T) for m in x], 1) @ E.T
    y = c2 @ p["base.head.net.0.weight"].T + p["base.head.net.0.bias"]
    torch.testing.assert_close(pro(x), y)
    assert p["base.head.net.0.weight"].shape == (3, 4)  # P reads c_R (context_dim wide)
    fused = ProgressiveFusion(base, steps=2, context_dim=4, inject="add").eval()
    assert fused.base.head.in_dim == 5  # default readout: P(F(...)) of step R


def test_context_readout_refuses_what_has_no_c_r(encoders, shapes):
    with pytest.raises(ValueError, match=r"readout: 'context' needs mode 'progressive'"):
        ProgressiveFusion(staged(encoders, shapes), mode="iterative", readout="context")
    decision = staged(encoders, shapes, plan=[{"at": "decision", "operator": "late"}])
    with pytest.raises(ValueError, match=r"readout: 'context' needs .*MLP head.*Identity"):
        ProgressiveFusion(decision, readout="context")
    with pytest.raises(ValueError, match=r"progressive.readout"):
        ProgressiveFusion(staged(encoders, shapes), readout="c_R")
    cfg = {"name": "staged", "encoders": encoders, "fusion": LATE, "head": {"hidden": [8]},
           "progressive": {"steps": 2, "context_dim": 6, "readout": "context"}}
    model = fm.build(cfg, input_shapes=shapes, num_outputs=10)
    assert model.base.head.net[0].in_features == 6 and model.base.head.net[0].out_features == 8
