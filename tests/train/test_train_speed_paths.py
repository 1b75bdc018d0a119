"""Fast paths must not change results: precomputed transforms, one-pass blending; plus bf16 and generation."""

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

from fuselab.data import precompute_transform
from fuselab.train import TrainConfig, fit, score_split

FAST = TrainConfig(epochs=3, batch_size=32, lr=0.01, progress=False)


def with_transform(n: int, seed: int) -> tuple:
    ds = make_classification(n, seed)
    sq = Squares()
    return dataclasses.replace(ds, transform=sq), sq


def test_precomputed_transform_gives_identical_batches_and_runs_transform_once() -> None:
    ds, sq = with_transform(100, 0)
    # Row sharing: 100 pairs over 50 stored rows of "a".
    ds = dataclasses.replace(ds, index={"a": torch.arange(100) % 50}, modalities={**ds.modalities, "a": ds.modalities["a"][:50]})
    cached = precompute_transform(ds)
    assert cached.transform is None and cached.modalities["a"].shape == (50, 1, 4)
    for (x1, y1), (x2, y2) in zip(ds.batches(32), cached.batches(32), strict=True):
        assert torch.equal(y1, y2) and all(torch.equal(x1[m], x2[m]) for m in x1)
    calls = sq.calls
    list(cached.batches(32))
    assert sq.calls == calls
    # Noise must be added before the transform: a noised modality disables the cache.
    assert precompute_transform(ds, {"a": 1.0}) is ds


def test_fit_with_and_without_precomputed_transforms_agree() -> None:
    train, _ = with_transform(160, 0)
    val, _ = with_transform(80, 1)
    dims = {"a": 4, "b": 6}

    class Flat(TinyLate):
        def forward(self, inputs):  # type: ignore[no-untyped-def]
            return super().forward({**inputs, "a": inputs["a"].flatten(1)})

    runs = []
    for cache in (True, False):
        torch.manual_seed(0)
        runs.append(fit(Flat(dims, 3), train, val, FAST.replace(precompute_transforms=cache)))
    a, b = ([h["val_loss"] for h in r.history] for r in runs)
    assert a == pytest.approx(b, rel=1e-6)


def test_feature_cache_is_a_deprecated_alias_of_precompute_transforms() -> None:
    for make in (lambda: TrainConfig(feature_cache=False),
                 lambda: TrainConfig.from_dict({"feature_cache": False})):
        with pytest.warns(DeprecationWarning, match="'feature_cache' is deprecated, use 'precompute_transforms'"):
            cfg = make()
        assert cfg.precompute_transforms is False
        assert cfg == TrainConfig(precompute_transforms=False)
        assert "feature_cache" not in cfg.to_dict()
    with pytest.raises(ValueError, match=r"both 'feature_cache' \(deprecated\) and 'precompute_transforms'"):
        TrainConfig.from_dict({"feature_cache": False, "precompute_transforms": True})
    # the off switch really switches the transform back to every batch
    ds, sq = with_transform(64, 0)

    class Flat(TinyLate):
        def forward(self, inputs):  # type: ignore[no-untyped-def]
            return super().forward({**inputs, "a": inputs["a"].flatten(1)})

    seen = []
    for cfg in (FAST.replace(epochs=2), FAST.replace(epochs=2, precompute_transforms=False)):
        sq.calls = 0
        fit(Flat({"a": 4, "b": 6}, 3), ds, None, cfg)
        seen.append(sq.calls)
    assert seen[0] < seen[1]


def test_old_module_path_still_works() -> None:
    from fuselab.train import features

    ds, _ = with_transform(20, 0)
    with pytest.warns(DeprecationWarning, match="cache_features is deprecated"):
        out = features.cache_features(ds)
    assert out.transform is None
    assert all(torch.equal(out.modalities[m], precompute_transform(ds).modalities[m]) for m in ds.names)


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
    assert score_split(model, val)["exact_match"] < 0.5
    r = fit(model, train, val, FAST.replace(epochs=8, lr=0.05))
    assert r.metric == "exact_match" and r.best["exact_match"] == 1.0
    assert score_split(model, val)["exact_match"] == 1.0
