"""Missing modalities: zero / training-mean / drop, per modality, with known outcomes."""

from __future__ import annotations

import pytest
import torch
from eval_cases import SignModel, sign_dataset
from torch import Tensor, nn

import fuselab.evaluate as ev
from fuselab.data import MultimodalDataset


class MeanProbe(nn.Module):
    """Predicts class 1 iff the image's first feature exceeds 0.5 (ignores audio); may drop."""

    modalities = ("audio", "image")
    supports_missing_modalities = True

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        if "image" not in inputs:
            z = torch.zeros(inputs["audio"].shape[0])
        else:
            z = inputs["image"][:, 0] - 0.5
        return torch.stack([-z, z], 1)


def _image_dataset(n: int, offset: float) -> MultimodalDataset:
    y = (torch.arange(n) % 10 < 3).long()  # 30% class 1
    image = torch.stack([y.float() + offset, torch.zeros(n), torch.zeros(n)], 1)
    return MultimodalDataset({"audio": torch.randn(n, 4), "image": image}, y, num_classes=2)


def _table(recs: list[dict]) -> dict[tuple[str, str], float]:
    assert all(r["evaluation"] == "missing_modality" for r in recs)
    assert all(set(r) == {"evaluation", "metric", "value", "modality", "mode"} for r in recs)
    return {(r["modality"], r["mode"]): r["value"] for r in recs}


def test_zero_and_mean_of_the_used_and_unused_modality() -> None:
    ds = sign_dataset(400)
    train = sign_dataset(400, seed=1)
    got = _table(ev.missing_modalities(SignModel(), ds, train=train, modes=("zero", "mean")))
    assert got[("none", "none")] == 1.0
    # the model ignores the image: removing it changes nothing
    assert got[("image", "zero")] == 1.0 and got[("image", "mean")] == 1.0
    # zero audio => logits [0, 0] => argmax picks class 0 for every sample
    frac0 = float((ds.labels == 0).float().mean())
    assert got[("audio", "zero")] == pytest.approx(frac0)
    # the training mean of +-1 audio has the sign of the training majority
    train_mean = float((2.0 * train.labels - 1).float().mean())
    expect = frac0 if train_mean <= 0 else 1 - frac0
    assert got[("audio", "mean")] == pytest.approx(expect)
    assert ("audio", "drop") not in got  # not requested


def test_mean_mode_uses_training_mean_not_test_mean() -> None:
    # training image feature: 0.4 (70%) / 1.4 (30%), mean 0.7 > 0.5 => class 1 for everyone
    # (accuracy 0.3); the *test* mean (0.3) or a zero image => class 0 for everyone (0.7).
    test, train = _image_dataset(20, 0.0), _image_dataset(20, 0.4)
    means = ev.training_means(train, ["image"])
    assert means["image"].shape == (3,)
    assert means["image"][0].item() == pytest.approx(0.7)
    got = _table(ev.missing_modalities(MeanProbe(), test, train=train))
    assert got[("none", "none")] == 1.0
    assert got[("image", "mean")] == pytest.approx(0.3)
    assert got[("image", "zero")] == pytest.approx(0.7)
    assert got[("image", "drop")] == pytest.approx(0.7)  # equal logits: argmax = class 0
    assert got[("audio", "zero")] == got[("audio", "drop")] == 1.0


def test_drop_only_where_supported() -> None:
    ds = sign_dataset(50)
    got = _table(ev.missing_modalities(SignModel(), ds, modes=("drop",)))
    assert got == {("none", "none"): 1.0}  # SignModel raises KeyError on a missing modality
    dropped = _table(ev.missing_modalities(MeanProbe(), _image_dataset(8, 0.2), modes=("drop",)))
    assert set(dropped) == {("none", "none"), ("audio", "drop"), ("image", "drop")}


def test_noisy_missing_modality_evaluation() -> None:
    ds = sign_dataset(2000, d=1)
    clean = _table(ev.missing_modalities(SignModel(), ds, modes=("zero",)))
    noisy = _table(ev.missing_modalities(SignModel(), ds, modes=("zero",), snr={"audio": 0.25}))
    assert clean[("none", "none")] == 1.0 and noisy[("none", "none")] < 0.8
    # same noise as the grid cell (audio 0.25, image original) for the same seed and batch size
    grid = ev.snr_grid(SignModel(), ds, {"audio": [0.25], "image": [None]}, factorize=False)
    assert noisy[("none", "none")] == grid[0]["value"]
    with pytest.raises(ValueError, match=r"snr\['audio'\]"):
        ev.missing_modalities(SignModel(), ds, modes=("zero",), snr={"audio": -1.0})


def test_bad_input() -> None:
    ds = sign_dataset(10)
    with pytest.raises(ValueError, match="needs train="):
        ev.missing_modalities(SignModel(), ds, modes=("mean",))
    with pytest.raises(ValueError, match="unknown mode 'blank'"):
        ev.missing_modalities(SignModel(), ds, modes=("blank",))
    with pytest.raises(ValueError, match=r"means\['audio'\]: expected shape \(4,\)"):
        ev.missing_modalities(
            SignModel(),
            ds,
            means={"audio": torch.zeros(5), "image": torch.zeros(3)},
            modes=("mean",),
        )
    with pytest.raises(ValueError, match="needs modality 'audio'"):
        ev.missing_modalities(SignModel(), ds.select(["image"]), modes=("zero",))


def test_training_means_on_a_subsample() -> None:
    train = _image_dataset(20, 0.4)
    full = ev.training_means(train, ["image"])
    assert torch.equal(ev.training_means(train, ["image"], max_samples=20)["image"], full["image"])
    one = ev.training_means(train, ["image"], max_samples=1, seed=5)["image"]
    assert any(torch.equal(one, row) for row in train.modalities["image"])
