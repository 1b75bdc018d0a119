"""Metrics against hand-computed numbers and scikit-learn/MOSI conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fuselab.train import metrics as M


def test_accuracy_from_logits_and_classes() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 0, 1])
    assert M.accuracy(logits, labels) == pytest.approx(0.75)
    assert M.accuracy(torch.tensor([1, 1, 0, 1]), labels) == pytest.approx(0.5)


def test_macro_f1_hand_computed() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0])
    # per class F1 = 2TP / (support + predicted): 2/4, 4/5, 0/1
    assert M.macro_f1(preds, labels) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_macro_f1_averages_over_classes_in_labels_or_predictions() -> None:
    # sklearn's average="macro" uses the union {0, 3}; classes 1, 2 never occur and are skipped.
    assert M.macro_f1(torch.tensor([0, 3]), torch.tensor([0, 0])) == pytest.approx(1 / 3)


def test_regression_metrics_match_numpy() -> None:
    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(50, generator=g), torch.randn(50, generator=g)
    assert M.mse(p, t) == pytest.approx(float(((p - t) ** 2).mean()))
    assert M.mae(p, t) == pytest.approx(float((p - t).abs().mean()))
    assert M.pearson_r(p, t) == pytest.approx(np.corrcoef(p.numpy(), t.numpy())[0, 1], abs=1e-6)
    assert M.pearson_r(2 * t + 1, t) == pytest.approx(1.0)
    assert math.isnan(M.pearson_r(torch.ones(5), t[:5]))


def test_mosi_acc2_f1_exclude_zero_labels() -> None:
    preds = torch.tensor([1.0, 0.3, -0.2, -1.0, 2.0])
    targets = torch.tensor([1.0, 1.0, 1.0, -1.0, 0.0])  # last one is neutral: excluded
    assert M.acc2(preds, targets) == pytest.approx(3 / 4)
    # positive: TP 2, support 3, predicted 2 -> 0.8; negative: TP 1, support 1, predicted 2 -> 2/3
    assert M.f1_binary(preds, targets) == pytest.approx((0.8 * 3 + (2 / 3) * 1) / 4)


def test_mosi_acc7_clips_and_rounds() -> None:
    preds = torch.tensor([2.6, -3.7, 0.4, 1.4])
    targets = torch.tensor([3.0, -2.8, 0.0, 2.0])
    assert M.acc7(preds, targets) == pytest.approx(3 / 4)


def test_regression_metrics_auto_detect_mosi() -> None:
    t = torch.tensor([-2.0, 1.0, 0.5])
    assert {"acc2", "acc7", "f1"} <= set(M.regression_metrics(t, t))
    assert "acc2" not in M.regression_metrics(t * 10, t * 10)
    assert "acc2" not in M.regression_metrics(t, t, mosi=False)


def test_exact_match_cuts_at_eos_and_ignores_padding() -> None:
    eos, pad = 2, 0
    target = torch.tensor([[5, 6, eos, pad], [7, eos, pad, pad], [8, 9, eos, pad]])
    pred = torch.tensor([[5, 6, eos, 9], [7, 3, eos, pad], [8, 9, 4, 4]])
    # row 0 matches (junk after EOS ignored); row 1 has an extra token; row 2 never ends.
    assert M.exact_match(pred, target, eos_id=eos, pad_id=pad) == pytest.approx(1 / 3)


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"predictions of shape \(4,\).*labels of shape \(3,\)"):
        M.accuracy(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
