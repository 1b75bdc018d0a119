"""Gradient blending: the OGR weight formula, and weights that punish an overfitting modality."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from train_helpers import make_classification, tiny_model

from fuselab.train import TrainConfig, blend_weights, fit, ogr

BEFORE = {"multimodal": (1.0, 1.2), "a": (1.0, 1.1), "b": (1.0, 1.0)}
AFTER = {"multimodal": (0.5, 0.9), "a": (0.6, 0.8), "b": (0.2, 1.3)}


def test_weights_follow_dg_over_do_squared() -> None:
    # multimodal: dG 0.3, dO 0.4 - 0.2 = 0.2 -> 7.5 ; a: dG 0.3, dO 0.1 -> 30 ; b: dG < 0 -> 0
    w = blend_weights(BEFORE, AFTER)
    assert w == pytest.approx({"multimodal": 0.2, "a": 0.8, "b": 0.0})
    r = ogr(BEFORE, AFTER)
    assert r["multimodal"] == pytest.approx(0.2 / 0.3) and r["a"] == pytest.approx(0.1 / 0.3)
    assert r["b"] == pytest.approx(1.1 / 0.3)


def test_no_generalization_keeps_previous_weights() -> None:
    worse = {k: (t, v + 1) for k, (t, v) in BEFORE.items()}
    assert blend_weights(BEFORE, worse) is None
    assert math.isinf(ogr(BEFORE, BEFORE)["a"])


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_memorisable_noise_modality_gets_less_weight(mode: str) -> None:
    # "b" is pure noise that a head can memorise on 200 samples: its training loss falls while
    # its held-out loss rises, so its OGR is large and its weight must fall below "a"'s.
    train = make_classification(200, 0, noise_b=True, db=32)
    val = make_classification(100, 1, noise_b=True, db=32)
    cfg = TrainConfig(
        epochs=4, batch_size=20, lr=0.02, grad_blend=mode, grad_blend_every=2,
        grad_blend_holdout=0.25, progress=False,
    )
    model = tiny_model({"a": 4, "b": 32})
    r = fit(model, train, val, cfg)
    w = r.blend_weights
    assert set(w) == {"multimodal", "a", "b"} and sum(w.values()) == pytest.approx(1.0)
    assert w["b"] < w["a"]
    assert r.history[-1]["blend_weight_b"] == w["b"]
    # 150 training samples remain after holding out 25 %: 8 steps per epoch, trial run excluded.
    assert r.steps == 4 * 8
    if mode == "online":
        # Weights are re-estimated every 2 epochs: uniform until the end of epoch 2.
        assert r.history[0]["blend_weight_a"] == pytest.approx(1 / 3)
        assert r.history[1]["blend_weight_a"] != pytest.approx(1 / 3)
    else:
        assert r.history[0]["blend_weight_a"] == r.history[-1]["blend_weight_a"] != pytest.approx(1 / 3)


class Opaque(nn.Module):
    modalities = ("a", "b")

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(10, 3)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.lin(torch.cat([inputs["a"], inputs["b"]], 1))


def test_model_without_unimodal_features_is_refused() -> None:
    data = make_classification(40, 0)
    with pytest.raises(TypeError, match=r"grad_blend needs .*unimodal_features.*Opaque"):
        fit(Opaque(), data, data, TrainConfig(grad_blend="online", progress=False))


# --- Wang et al. / MultiBench protocol: ratios measured on separately trained copies -------------

KNOWN = {  # head: ((train, holdout) before, (train, holdout) after) of its own copy
    "multimodal": ((2.0, 2.1), (1.0, 1.4)),  # dG 0.7, dO 0.4 - 0.1 = 0.3 -> 0.7 / 0.09
    "a": ((2.0, 2.0), (1.5, 1.6)),  # dG 0.4, dO 0.1 -> 40
    "b": ((2.0, 2.05), (1.9, 2.1)),  # dG -0.05 -> 0
}


class FakeCopy:
    """Stands in for a trained copy: reports KNOWN losses for its head before/after training."""

    def __init__(self, head: str, log: list) -> None:
        self.head, self.trained, self.log = head, 0, log

    def measure(self) -> dict[str, tuple[float, float]]:
        return {self.head: KNOWN[self.head][min(self.trained, 1)]}

    def train_epoch(self, epoch: int, sched) -> None:
        self.trained += 1
        self.log.append((self.head, epoch))


def test_separate_estimate_is_the_formula_on_each_copys_losses(monkeypatch) -> None:
    from fuselab.train.trainer import Trainer

    log: list = []
    monkeypatch.setattr(Trainer, "_copy_for", lambda self, head: FakeCopy(head, log))
    cfg = TrainConfig(epochs=2, batch_size=20, grad_blend="offline", grad_blend_every=3,
                      grad_blend_estimate="separate", progress=False)
    r = fit(tiny_model(), make_classification(120, 0), make_classification(60, 1), cfg)
    raw = {"multimodal": 0.7 / 0.09, "a": 0.4 / 0.01, "b": 0.0}
    expected = {k: v / sum(raw.values()) for k, v in raw.items()}
    assert r.blend_weights == pytest.approx(expected)
    assert r.history[0]["blend_weight_a"] == pytest.approx(expected["a"])
    # every head's copy trained grad_blend_every epochs, each copy once (offline)
    assert sorted(log) == sorted((k, -e) for k in KNOWN for e in (1, 2, 3))


def test_separate_copies_each_train_one_head_and_leave_the_run_untouched() -> None:
    from fuselab.train.trainer import Trainer

    cfg = TrainConfig(epochs=1, batch_size=20, lr=0.05, grad_blend="offline", grad_blend_every=2,
                      grad_blend_estimate="separate", grad_blend_holdout=0.25, progress=False)
    model = tiny_model()
    t = Trainer(model, make_classification(160, 0), None, cfg, show=False)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    before = t.measure()
    subs = {}
    make = t._copy_for
    t._copy_for = lambda head: subs.setdefault(head, make(head))  # type: ignore[method-assign]
    w = t.separate_weights()
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    after = {k: s.measure()[k] for k, s in subs.items()}
    assert w == blend_weights({k: before[k] for k in after}, after)
    assert set(w) == {"multimodal", "a", "b"}

    def moved(sub, name: str) -> bool:
        return not torch.equal(sub.model.state_dict()[name], start[name])

    # the "a" copy is the unimodal network of "a": only its encoder (and its head) trained
    assert moved(subs["a"], "encoders.a.0.weight") and not moved(subs["a"], "encoders.b.0.weight")
    assert not moved(subs["a"], "head.weight")
    # the multimodal copy is naive joint training: both encoders and the fused head
    assert all(moved(subs["multimodal"], n) for n in
               ("encoders.a.0.weight", "encoders.b.0.weight", "head.weight"))


def test_online_separate_estimates_before_each_window() -> None:
    cfg = TrainConfig(epochs=4, batch_size=20, lr=0.02, grad_blend="online", grad_blend_every=2,
                      grad_blend_estimate="separate", grad_blend_holdout=0.25, progress=False)
    train = make_classification(200, 0, noise_b=True, db=32)
    val = make_classification(100, 1, noise_b=True, db=32)
    r = fit(tiny_model({"a": 4, "b": 32}), train, val, cfg)
    w0 = r.history[0]["blend_weight_a"]
    assert w0 != pytest.approx(1 / 3)  # estimated before the first window, not uniform
    assert r.history[1]["blend_weight_a"] == w0 and r.history[2]["blend_weight_a"] != w0
    assert r.blend_weights["b"] < r.blend_weights["a"]  # the memorisable noise modality
    assert r.steps == 4 * 8  # the copies' steps are not the run's
    with pytest.raises(ValueError, match="grad_blend_estimate"):
        TrainConfig(grad_blend_estimate="both")
