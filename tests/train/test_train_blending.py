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
