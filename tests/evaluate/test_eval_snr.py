"""SNR grids and curves: noise at the right linear SNR, identical noise across models, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from eval_cases import MLP, SignModel, sign_dataset, train_classifier
from torch import Tensor, nn

import fuselab.evaluate as ev


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_default_grid_is_original_plus_half_octaves() -> None:
    assert ev.DEFAULT_SNRS[0] is None and len(ev.DEFAULT_SNRS) == 10
    noisy = ev.DEFAULT_SNRS[1:]
    assert noisy[0] == pytest.approx(2.0) and noisy[-1] == pytest.approx(0.125)
    steps = [math.log2(a) - math.log2(b) for a, b in itertools.pairwise(noisy)]
    assert steps == pytest.approx([0.5] * 8)


def test_grid_records_and_accuracy_matches_theory() -> None:
    # sign(mean of D=4 unit samples + noise of power 1/snr): accuracy = Phi(sqrt(snr * D)).
    ds = sign_dataset(8000, d=4)
    grid = ev.snr_grid(SignModel(), ds, [None, 1.0, 0.125], batch_size=1000)
    assert len(grid) == 9
    assert all(set(r) == {"evaluation", "metric", "value", "snr_audio", "snr_image"} for r in grid)
    by_cell = {(r["snr_audio"], r["snr_image"]): r["value"] for r in grid}
    assert all(r["evaluation"] == "snr_grid" and r["metric"] == "accuracy" for r in grid)
    for img in (None, 1.0, 0.125):
        assert by_cell[(None, img)] == 1.0
        assert by_cell[(1.0, img)] == pytest.approx(_phi(2.0), abs=0.015)
        assert by_cell[(0.125, img)] == pytest.approx(_phi(math.sqrt(0.5)), abs=0.015)
    # The model ignores the image and every modality has its own noise stream: the image noise
    # must not change the audio noise, so the rows are exactly constant.
    assert by_cell[(0.125, None)] == by_cell[(0.125, 1.0)] == by_cell[(0.125, 0.125)]


def test_same_seed_same_noise_for_every_model() -> None:
    ds = sign_dataset(600, d=2, seed=1)
    m1 = train_classifier(MLP({"audio": 2, "image": 3}, 2), ds, epochs=3)
    m2 = SignModel()
    grid = [None, 0.5, 0.25]
    together = ev.snr_grids({"mlp": m1, "sign": m2}, ds, grid, batch_size=128, seed=3)
    assert together["mlp"] == ev.snr_grid(m1, ds, grid, batch_size=128, seed=3)
    assert together["sign"] == ev.snr_grid(m2, ds, grid, batch_size=128, seed=3)
    other_seed = ev.snr_grid(m2, ds, grid, batch_size=128, seed=4)
    assert [r["value"] for r in other_seed] != [r["value"] for r in together["sign"]]


def test_curves_equal_grid_cells_and_curves_from_grid() -> None:
    ds = sign_dataset(500, d=2, seed=2)
    model = MLP({"audio": 2, "image": 3}, 2)
    grid_snrs = [None, 1.0, 0.25]
    grid = ev.snr_grid(model, ds, grid_snrs, batch_size=100)
    curves = ev.snr_curves(model, ds, grid_snrs, batch_size=100)
    assert {r["modality"] for r in curves} == {"audio", "image", "all"}
    assert all(set(r) == {"evaluation", "metric", "value", "modality", "snr"} for r in curves)
    key = lambda r: (r["modality"], r["snr"])  # noqa: E731
    assert sorted(curves, key=lambda r: str(key(r))) == sorted(
        ev.curves_from_grid(grid), key=lambda r: str(key(r))
    )


def test_difference_grid_is_cellwise_difference() -> None:
    ds = sign_dataset(300, d=2, seed=5)
    a = ev.snr_grid(SignModel(), ds, [None, 0.5], batch_size=300)
    b = ev.snr_grid(MLP({"audio": 2, "image": 3}, 2), ds, [None, 0.5], batch_size=300)
    diff = ev.difference_grid(a, b)
    cell = lambda r: (r["snr_audio"], r["snr_image"])  # noqa: E731
    ref = {cell(r): r["value"] for r in b}
    assert {cell(r): r["value"] for r in diff} == {cell(r): r["value"] - ref[cell(r)] for r in a}
    with pytest.raises(ValueError, match="different cells"):
        ev.difference_grid(a, b[:-1])


def test_per_modality_grids() -> None:
    ds = sign_dataset(100)
    grid = ev.snr_grid(SignModel(), ds, {"audio": [None, 1.0], "image": [None]}, batch_size=50)
    assert [(r["snr_audio"], r["snr_image"]) for r in grid] == [(None, None), (1.0, None)]


@pytest.mark.parametrize("bad", [[None, 0.0], [1.0, -0.5], [float("nan")], [float("inf")], []])
def test_non_positive_snrs_rejected(bad: list) -> None:
    with pytest.raises(ValueError, match="snrs"):
        ev.snr_grid(SignModel(), sign_dataset(10), bad)


def test_output_not_matching_label_space() -> None:
    class ThreeClasses(nn.Module):
        modalities = ("audio", "image")

        def forward(self, inputs: dict[str, Tensor]) -> Tensor:
            return torch.zeros(inputs["audio"].shape[0], 3)

    with pytest.raises(ValueError, match=r"num_classes\) = \(10, 2\)"):
        ev.snr_grid(ThreeClasses(), sign_dataset(10), [None])


def test_dataset_lacking_a_model_modality() -> None:
    ds = sign_dataset(10).select(["audio"])
    with pytest.raises(ValueError, match="needs modality 'image'"):
        ev.snr_grid(SignModel(), ds, [None])
    with pytest.raises(ValueError, match="needs modality 'image'"):
        ev.snr_curves(SignModel(), ds, [None])


def test_grid_needs_two_modalities() -> None:
    with pytest.raises(ValueError, match="exactly 2 modalities"):
        ev.snr_grid(SignModel(), sign_dataset(10), [None], modalities=["audio"])
    with pytest.raises(ValueError, match="no modality 'video'"):
        ev.snr_grid(SignModel(), sign_dataset(10), [None], modalities=["audio", "video"])


def test_any_grid_list_is_kept_in_order() -> None:
    # paper 000's reproduction passes octave steps around its named SNRs instead of the default
    octaves = [None, 8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]
    grid = ev.snr_grid(SignModel(), sign_dataset(200, d=4), octaves, batch_size=100)
    assert [r["snr_audio"] for r in grid[::10]] == octaves
    assert [r["snr_image"] for r in grid[:10]] == octaves
    by_cell = {(r["snr_audio"], r["snr_image"]): r["value"] for r in grid}
    assert by_cell[(8.0, None)] > by_cell[(0.03125, None)]  # the sign model only reads the audio
