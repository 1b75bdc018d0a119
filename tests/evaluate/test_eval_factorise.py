"""Factorised SNR grids for late fusion: same numbers as direct evaluation, far fewer encoder runs."""

from __future__ import annotations

import pytest
from eval_cases import Late, sign_dataset, train_classifier
from torch import nn

import fuselab.evaluate as ev
from fuselab.evaluate._cells import _check_factorisable, why_not_factorisable

GRID = [None, 1.0, 0.5, 0.25]


def _trained(couple: bool = False) -> Late:
    ds = sign_dataset(400, d=4, seed=7)
    model = train_classifier(Late(couple), ds, epochs=5)
    model.encoder_calls = model.forward_calls = 0
    return model


def test_factorised_grid_equals_direct_grid_with_fewer_encoder_runs() -> None:
    ds = sign_dataset(300, d=4, seed=8)
    model = _trained()
    direct = ev.snr_grid(model, ds, GRID, batch_size=64, factorize=False)
    direct_forwards = model.forward_calls
    model.encoder_calls = model.forward_calls = 0
    fast = ev.snr_grid(model, ds, GRID, batch_size=64, factorize=True)
    for a, b in zip(direct, fast, strict=True):
        assert {k: v for k, v in a.items() if k != "value"} == {
            k: v for k, v in b.items() if k != "value"
        }
        assert a["value"] == pytest.approx(b["value"], abs=1 / len(ds))
    batches = -(-len(ds) // 64)
    assert direct_forwards == len(GRID) ** 2 * batches
    # 1 clean pass + 3 noisy levels per modality, plus the factorisation check's 6 calls
    passes = 1 + 2 * (len(GRID) - 1)
    assert model.encoder_calls <= passes * batches + 6
    assert model.forward_calls <= 1


def test_factorisation_is_automatic_only_where_exact() -> None:
    ds = sign_dataset(200, d=4, seed=9)
    late, coupled = _trained(), _trained(couple=True)
    assert why_not_factorisable(late, ds) is None
    # its encoders run one modality at a time (the other modalities as a one-sample stub)
    assert _check_factorisable(late, ds) == (None, True)
    assert "depend on the other modalities" in str(why_not_factorisable(coupled, ds))
    assert "no unimodal_features" in str(why_not_factorisable(nn.Linear(2, 2), ds))
    with pytest.raises(ValueError, match=r"cannot be factorised.*'audio' features depend"):
        ev.snr_grid(coupled, ds, GRID, factorize=True)
    auto = ev.snr_grid(coupled, ds, GRID, batch_size=50)
    assert auto == ev.snr_grid(coupled, ds, GRID, batch_size=50, factorize=False)
    assert coupled.forward_calls > len(GRID) ** 2  # fell back to direct evaluation


def test_mixed_set_sees_identical_noise() -> None:
    # A factorised and a direct model in one call get exactly the values of separate calls.
    ds = sign_dataset(200, d=4, seed=10)
    late, coupled = _trained(), _trained(couple=True)
    both = ev.snr_grids({"late": late, "coupled": coupled}, ds, GRID, batch_size=50, seed=1)
    assert both["coupled"] == ev.snr_grid(coupled, ds, GRID, batch_size=50, seed=1)
    alone = ev.snr_grid(late, ds, GRID, batch_size=50, seed=1, factorize=False)
    for a, b in zip(both["late"], alone, strict=True):
        assert a["value"] == pytest.approx(b["value"], abs=1 / len(ds))
