"""EMAP: exact on additive models, chance on XOR, agrees with the brute-force definition."""

from __future__ import annotations

import pytest
import torch
from eval_cases import (
    MLP,
    AdditiveModel,
    Late,
    MultiplicativeModel,
    XorModel,
    additive_dataset,
    train_classifier,
    xor_dataset,
)

import fuselab.evaluate as ev


def _inputs(ds):
    return {m: ds.modalities[m] for m in ds.names}


def test_exact_on_additive_model() -> None:
    ds = additive_dataset(40)
    model = AdditiveModel()
    x = _inputs(ds)
    with torch.no_grad():
        full = model(x)
    proj = ev.emap_logits(model, x, batch_size=64)  # forces chunking of the 40 x 40 pairs
    assert proj.shape == (40, 4)
    torch.testing.assert_close(proj, full, atol=1e-5, rtol=1e-5)
    # with a random reference subset the projection of an additive model is still exact
    sub = ev.emap_logits(model, x, reference=7, seed=1)
    torch.testing.assert_close(sub, full, atol=1e-5, rtol=1e-5)
    recs = ev.emap(model, ds)
    got = {(r["metric"], r["projection"]): r["value"] for r in recs}
    assert got[("accuracy", "full")] == got[("accuracy", "emap")]
    assert got[("emap_gap", None)] == 0.0
    # identical predictions on every sample: every resample's gap is 0, so is the interval
    assert got[("emap_gap_lo", None)] == 0.0 and got[("emap_gap_hi", None)] == 0.0


def test_matches_brute_force_definition_on_non_additive_model() -> None:
    ds = additive_dataset(12, seed=3)
    model = MultiplicativeModel()
    a, b = ds.modalities["a"], ds.modalities["b"]
    with torch.no_grad():
        # f[i, j] = f(a_i, b_j)
        f = torch.stack([model({"a": a[i].expand(12, -1), "b": b}) for i in range(12)])
    want = f.mean(1) + f.mean(0) - f.mean((0, 1))
    rows: list[int] = []
    model.register_forward_pre_hook(lambda mod, args: rows.append(len(args[0]["a"])))
    got = ev.emap_logits(model, {"a": a, "b": b}, batch_size=5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert sum(rows) == 1 + 12 * 12  # a dtype probe, then every pair exactly once
    with torch.no_grad():
        assert not torch.allclose(got, model({"a": a, "b": b}), atol=1e-3)


def test_seed_picks_the_reference_and_deprecated_generator_maps_to_it() -> None:
    ds = additive_dataset(30, seed=5)
    model = MultiplicativeModel()  # non-additive: the reference subset changes the estimate
    x = {"a": ds.modalities["a"], "b": ds.modalities["b"]}
    one = ev.emap_logits(model, x, reference=5, seed=1)
    torch.testing.assert_close(ev.emap_logits(model, x, reference=5, seed=1), one)
    assert not torch.allclose(ev.emap_logits(model, x, reference=5, seed=2), one)
    with pytest.warns(DeprecationWarning, match=r"generator=\.\.\.\) is deprecated"):
        old = ev.emap_logits(model, x, reference=5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(old, one)


def test_factorised_emap_equals_direct_emap() -> None:
    g = torch.Generator().manual_seed(4)
    x = {"audio": torch.randn(30, 4, generator=g), "image": torch.randn(30, 3, generator=g)}
    model = Late(couple=False)
    direct = ev.emap_logits(model, x, batch_size=50, factorize=False)
    assert model.forward_calls > 30  # every pair went through the whole model
    model.encoder_calls = model.forward_calls = 0
    fast = ev.emap_logits(model, x, batch_size=50, factorize=True)
    torch.testing.assert_close(fast, direct, atol=1e-5, rtol=1e-5)
    assert model.forward_calls <= 2 and model.encoder_calls <= 10  # checks + one feature pass
    with pytest.raises(ValueError, match="factorize=True but the model cannot be"):
        ev.emap_logits(Late(couple=True), x, factorize=True)


def test_hand_built_xor_drops_to_chance() -> None:
    ds = xor_dataset(200, jitter=0.0)
    recs = {(r["metric"], r["projection"]): r["value"] for r in ev.emap(XorModel(), ds)}
    assert recs[("accuracy", "full")] == 1.0
    assert recs[("accuracy", "emap")] == pytest.approx(0.5)
    assert recs[("emap_gap", None)] == pytest.approx(0.5)


def test_trained_xor_classifier_drops_to_chance() -> None:
    train, test = xor_dataset(400, seed=0), xor_dataset(200, seed=1)
    model = train_classifier(MLP({"a": 2, "b": 2}, 2), train)
    got = {(r["metric"], r["projection"]): r["value"] for r in ev.emap(model, test)}
    assert got[("accuracy", "full")] > 0.95
    assert got[("accuracy", "emap")] < 0.7


def test_bad_inputs() -> None:
    ds = additive_dataset(6)
    with pytest.raises(ValueError, match="exactly two named modalities"):
        ev.emap_logits(AdditiveModel(), {"a": ds.modalities["a"]})
    with pytest.raises(ValueError, match="'b' has 5"):
        ev.emap_logits(AdditiveModel(), {"a": ds.modalities["a"], "b": ds.modalities["b"][:5]})
    with pytest.raises(ValueError, match="needs modality 'b'"):
        ev.emap(AdditiveModel(), ds.select(["a"]))


def _gaps(recs: list[dict]) -> dict[str, float]:
    return {r["metric"]: r["value"] for r in recs if r["projection"] is None}


def test_multiplicative_model_gap_positive_with_interval_above_zero() -> None:
    model = MultiplicativeModel()
    ds = additive_dataset(300, seed=5)
    with torch.no_grad():  # labels the model itself predicts: its full accuracy is 1
        ds.labels = model({"a": ds.modalities["a"], "b": ds.modalities["b"]}).argmax(1)
    gaps = _gaps(ev.emap(model, ds, max_samples=None, reference=None))
    assert gaps["emap_gap"] > 0.05
    assert 0.0 < gaps["emap_gap_lo"] < gaps["emap_gap"] < gaps["emap_gap_hi"]


def test_bootstrap_interval_width_seeding_and_records() -> None:
    ds = xor_dataset(400, jitter=0.0)
    model = XorModel()
    recs = ev.emap(model, ds, max_samples=None, bootstrap=2000, ci=0.9, seed=3)
    gaps = _gaps(recs)
    assert gaps["emap_gap"] == pytest.approx(0.5)
    # the EMAP of XOR is constant: per-sample gap d_i = 1 - [emap correct], a 0/1 variable with
    # mean 0.5; its mean's 90 % interval is about 0.5 +- 1.645 * 0.5 / sqrt(400)
    half = 1.645 * 0.5 / 400**0.5
    assert gaps["emap_gap_lo"] == pytest.approx(0.5 - half, abs=0.015)
    assert gaps["emap_gap_hi"] == pytest.approx(0.5 + half, abs=0.015)
    bounds = [r for r in recs if r["metric"] in ("emap_gap_lo", "emap_gap_hi")]
    assert all(r["ci"] == 0.9 and r["resamples"] == 2000 for r in bounds)
    assert _gaps(ev.emap(model, ds, max_samples=None, bootstrap=2000, ci=0.9, seed=3)) == gaps
    assert set(_gaps(ev.emap(model, ds, bootstrap=0))) == {"emap_gap"}
    with pytest.raises(ValueError, match="bootstrap must be a non-negative int"):
        ev.emap(model, ds, bootstrap=-1)
    with pytest.raises(ValueError, match=r"ci must be a number in \(0, 1\), got 95"):
        ev.emap(model, ds, ci=95)

