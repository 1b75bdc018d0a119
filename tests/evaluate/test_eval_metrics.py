"""Task metrics of the evaluations: hand-computed accuracy, macro-F1, MSE/MAE; regression grids."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import fuselab.evaluate as ev
from fuselab.data import MultimodalDataset
from fuselab.evaluate._common import MetricAccumulator


def _onehot_logits(pred: list[int], classes: int) -> Tensor:
    return nn.functional.one_hot(torch.tensor(pred), classes).float()


def test_accuracy_and_macro_f1_by_hand() -> None:
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = [0, 1, 1, 1, 0, 2]
    # class 0: tp 1, fp 1, fn 1 -> f1 .5; class 1: tp 2, fp 1, fn 0 -> .8; class 2: tp 1, fn 1 -> 2/3
    f1 = MetricAccumulator("macro_f1", 3)
    acc = MetricAccumulator("accuracy", 3)
    for lo, hi in ((0, 4), (4, 6)):  # streamed in two batches
        f1.update(_onehot_logits(pred[lo:hi], 3), y[lo:hi])
        acc.update(_onehot_logits(pred[lo:hi], 3), y[lo:hi])
    assert acc.compute() == pytest.approx(4 / 6)
    assert f1.compute() == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_mse_and_mae() -> None:
    out, y = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0])
    mse, mae = MetricAccumulator("mse", None), MetricAccumulator("mae", None)
    mse.update(out, y)
    mae.update(out, y)
    assert mse.compute() == pytest.approx((0 + 4 + 9) / 3)
    assert mae.compute() == pytest.approx((0 + 2 + 3) / 3)


class MeanRegressor(nn.Module):
    """``{x: (B, D), z: (B, 1)} -> (B, 1)``: the mean of ``x``."""

    modalities = ("x", "z")

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return inputs["x"].mean(1, keepdim=True) + 0 * inputs["z"]


def test_regression_grid_mse_matches_noise_power() -> None:
    # x = ones (signal power 1): the mean of D noisy values has variance 1 / (snr * D)
    n, d = 4000, 8
    ds = MultimodalDataset(
        {"x": torch.ones(n, d), "z": torch.ones(n, 1)}, torch.ones(n), task="regression"
    )
    recs = ev.snr_grid(MeanRegressor(), ds, {"x": [None, 0.5, 2.0], "z": [None]})
    got = {r["snr_x"]: r["value"] for r in recs}
    assert all(r["metric"] == "mse" for r in recs)
    assert got[None] == 0.0
    assert got[0.5] == pytest.approx(1 / (0.5 * d), rel=0.08)
    assert got[2.0] == pytest.approx(1 / (2.0 * d), rel=0.08)
    with pytest.raises(ValueError, match="'accuracy' does not apply to a regression"):
        ev.snr_grid(MeanRegressor(), ds, [None], metric="accuracy")
