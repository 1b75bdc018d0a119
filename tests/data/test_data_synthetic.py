"""Lattice lookup and latent-Z regression (paper 001): equations, labels, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import fuselab.data as fd
from fuselab.data.lattice import first_nonzero_digit


def test_lattice_label_is_first_nonzero_digit_at_the_position():
    ds = fd.load("lattice", split="train", sizes=500, dim=16)
    pos = ds.meta["position"]
    values = ds.modalities["x1"][torch.arange(len(ds)), pos].double()
    # independent check through decimal formatting: "3.72e-02" -> 3
    expected = torch.tensor([int(f"{abs(v):.6e}"[0]) - 1 for v in values.tolist()])
    assert torch.equal(ds.labels, expected)
    assert ds.num_classes == 9 and int(ds.labels.min()) >= 0 and int(ds.labels.max()) <= 8


def test_first_nonzero_digit_known_values():
    x = torch.tensor([0.0372, -5.1, 123.0, 0.9999, 1e-5, -0.1], dtype=torch.float64)
    assert first_nonzero_digit(x).tolist() == [3, 5, 1, 9, 1, 1]
    with pytest.raises(ValueError, match="zero"):
        first_nonzero_digit(torch.tensor([0.0]))


def test_lattice_position_embedding_identifies_the_position():
    ds = fd.load("lattice", split="val", sizes=300, dim=16, embed_dim=8)
    x2, pos = ds.modalities["x2"], ds.meta["position"]
    # every sample's embedding is nearest to the embeddings of samples at the same position
    dist = torch.cdist(x2, x2)
    same = pos[:, None] == pos[None, :]
    assert torch.all(dist[same] < 1e-6)
    assert torch.all(dist[~same] > 1e-3)


def test_lattice_functions_are_smooth_and_fresh_per_sample():
    x1 = fd.load("lattice", split="train", sizes=400, dim=64).modalities["x1"]
    diff = (x1[:, 1:] - x1[:, :-1]).pow(2).mean()
    assert diff / x1.var() < 0.1  # white noise would give ~2
    assert torch.unique(x1.round(decimals=4), dim=0).shape[0] == 400


def test_lattice_is_deterministic_and_splits_differ():
    a = fd.load("lattice", split="test", sizes=100, seed=3)
    b = fd.load_splits("lattice", sizes=100, seed=3)["test"]
    assert torch.equal(a.modalities["x1"], b.modalities["x1"]) and torch.equal(a.labels, b.labels)
    c = fd.load("lattice", split="train", sizes=100, seed=3)
    assert not torch.equal(a.modalities["x1"], c.modalities["x1"])


def test_lattice_split_sizes():
    # How fast this builds is a figure of benchmarks/data.py: tests assert no timings.
    splits = fd.load_splits("lattice", sizes={"train": 4000, "val": 1000, "test": 1000})
    assert [len(s) for s in splits.values()] == [4000, 1000, 1000]


def test_lattice_bad_options_name_the_key():
    with pytest.raises(ValueError, match="sizes"):
        fd.load("lattice", sizes=0)
    with pytest.raises(ValueError, match="embed_dim"):
        fd.load("lattice", embed_dim=7)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        fd.load("lattice", split="dev")


def test_lattice_scale_and_offset_shift_the_function_and_relabel():
    base = fd.load("lattice", split="train", sizes=2000, dim=16, harmonics=4)
    ds = fd.load("lattice", split="train", sizes=2000, dim=16, harmonics=4, scale=2.0, offset=5.0)
    # same functions and positions, affinely moved; the label follows the moved value
    assert torch.allclose(ds.modalities["x1"], 5.0 + 2.0 * base.modalities["x1"], atol=1e-5)
    assert torch.equal(ds.modalities["x2"], base.modalities["x2"])
    pos = ds.meta["position"]
    values = ds.modalities["x1"][torch.arange(len(ds)), pos].double()
    expected = torch.tensor([int(f"{abs(v):.6e}"[0]) - 1 for v in values.tolist()])
    assert torch.equal(ds.labels, expected)
    # most values now lie in one decade, so the digit is a staircase of the value and no
    # class dominates the way digit 1 does for zero-mean functions (~30%)
    assert ((values >= 1) & (values < 10)).double().mean() > 0.95
    rates = torch.bincount(ds.labels, minlength=9).double() / len(ds)
    assert rates.max() < 0.3 < torch.bincount(base.labels, minlength=9).double().max() / len(base)


def test_lattice_bad_scale_or_offset_names_the_key():
    with pytest.raises(ValueError, match=r"'scale'.*got 0"):
        fd.load("lattice", scale=0.0)
    with pytest.raises(ValueError, match=r"'offset'.*got nan"):
        fd.load("lattice", offset=float("nan"))


def test_latent_z_follows_the_generative_equations():
    eta, sigma2 = 0.7, 0.3
    ds = fd.load(
        "latent_z", split="train", sizes=20000, eta=eta, sigma2=sigma2, input_dim=8, latent_dim=4
    )
    z, w1, w2, wy = (ds.meta[k] for k in ("latent", "W1", "W2", "Wy"))
    assert z.abs().max() <= 2.5 and abs(float(z.var()) - 25 / 12) < 0.05  # U[-2.5, 2.5]
    shared = torch.sin(z @ w2.T)
    eps1 = ds.modalities["x1"] - (F.leaky_relu(z @ w1.T, 0.01) - 2 * eta * shared)
    eps2 = (ds.modalities["x2"] - shared) / sigma2
    eps_y = ds.labels - (z @ wy.T)[:, 0]
    for eps in (eps1, eps2, eps_y):
        assert abs(float(eps.mean())) < 0.03 and abs(float(eps.std()) - 1) < 0.03
    assert ds.task == "regression" and ds.labels.shape == (20000,)


def test_latent_z_shares_weights_across_splits_and_sigma2_zero_is_exact():
    s = fd.load_splits("latent_z", sizes=50, sigma2=0.0, output_dim=3, seed=5)
    assert torch.equal(s["train"].meta["W1"], s["test"].meta["W1"])
    assert not torch.equal(s["train"].meta["latent"], s["test"].meta["latent"])
    t = s["test"]
    assert torch.allclose(t.modalities["x2"], torch.sin(t.meta["latent"] @ t.meta["W2"].T))
    assert t.labels.shape == (50, 3)
    with pytest.raises(ValueError, match="sigma2"):
        fd.load("latent_z", sigma2=-1.0)
