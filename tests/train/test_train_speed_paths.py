"""Fast paths must not change results: feature cache, one-pass blending; plus bf16 and generation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from train_helpers import (
    Squares,
    TinyLate,
    TinyLateSplit,
    TinySeq2Seq,
    make_classification,
    make_generation,
)

from fuselab.train import TrainConfig, evaluate_split, fit
from fuselab.train.features import cache_features

FAST = TrainConfig(epochs=3, batch_size=32, lr=0.01, progress=False)


def with_transform(n: int, seed: int) -> tuple:
    ds = make_classification(n, seed)
    sq = Squares()
    return dataclasses.replace(ds, transform=sq), sq


def test_feature_cache_gives_identical_batches_and_runs_transform_once() -> None:
    ds, sq = with_transform(100, 0)
    # Row sharing: 100 pairs over 50 stored rows of "a".
    ds = dataclasses.replace(ds, index={"a": torch.arange(100) % 50}, modalities={**ds.modalities, "a": ds.modalities["a"][:50]})
    cached = cache_features(ds)
    assert cached.transform is None and cached.modalities["a"].shape == (50, 1, 4)
    for (x1, y1), (x2, y2) in zip(ds.batches(32), cached.batches(32), strict=True):
        assert torch.equal(y1, y2) and all(torch.equal(x1[m], x2[m]) for m in x1)
    calls = sq.calls
    list(cached.batches(32))
    assert sq.calls == calls
    # Noise must be added before the transform: a noised modality disables the cache.
    assert cache_features(ds, {"a": 1.0}) is ds


def test_fit_with_and_without_feature_cache_agree() -> None:
    train, _ = with_transform(160, 0)
    val, _ = with_transform(80, 1)
    dims = {"a": 4, "b": 6}

    class Flat(TinyLate):
        def forward(self, inputs):  # type: ignore[no-untyped-def]
            return super().forward({**inputs, "a": inputs["a"].flatten(1)})

    runs = []
    for cache in (True, False):
        torch.manual_seed(0)
        runs.append(fit(Flat(dims, 3), train, val, FAST.replace(feature_cache=cache)))
    a, b = ([h["val_loss"] for h in r.history] for r in runs)
    assert a == pytest.approx(b, rel=1e-6)


def test_one_pass_blending_matches_two_pass() -> None:
    train = make_classification(160, 0)
    val = make_classification(80, 1)
    cfg = FAST.replace(grad_blend="online", grad_blend_every=1)
    torch.manual_seed(0)
    two = fit(TinyLate({"a": 4, "b": 6}, 3), train, val, cfg)
    torch.manual_seed(0)
    one = fit(TinyLateSplit({"a": 4, "b": 6}, 3), train, val, cfg)
    assert [h["val_loss"] for h in one.history] == pytest.approx([h["val_loss"] for h in two.history], rel=1e-4)
    assert one.blend_weights == pytest.approx(two.blend_weights, rel=1e-3, abs=1e-4)


def test_bfloat16_autocast_trains() -> None:
    train, val = make_classification(160, 0), make_classification(80, 1)
    torch.manual_seed(0)
    r = fit(TinyLate({"a": 4, "b": 6}, 3), train, val, FAST.replace(precision="bfloat16", epochs=4))
    assert r.best["accuracy"] >= 0.9


def test_generation_exact_match_reaches_one() -> None:
    train, val = make_generation(200, 0), make_generation(60, 1)
    torch.manual_seed(0)
    model = TinySeq2Seq(12, 3)
    assert evaluate_split(model, val)["exact_match"] < 0.5
    r = fit(model, train, val, FAST.replace(epochs=8, lr=0.05))
    assert r.metric == "exact_match" and r.best["exact_match"] == 1.0
    assert evaluate_split(model, val)["exact_match"] == 1.0
