"""AV-MNIST on the real shared data: splits, pairing, provenance, spectrogram, noise, caching."""

from __future__ import annotations

import gzip
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import fuselab.data as fd
from fuselab.data import avmnist_sources
from fuselab.data.audio import valid_mask


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("avmnist_cache")


@pytest.fixture(scope="module")
def splits(shared_data, cache):
    return fd.load_splits(
        "avmnist", root=shared_data, cache_dir=cache, pairs={"train": 3000, "val": 500, "test": 500}
    )


def _mnist_labels(root: Path) -> np.ndarray:
    out = []
    for name in ("train", "t10k"):
        with gzip.open(root / f"mnist/{name}-labels-idx1-ubyte.gz") as f:
            out.append(np.frombuffer(f.read(), np.uint8, offset=8))
    return np.concatenate(out)


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def test_splits_share_no_image_or_recording_and_cut_8_1_1(splits):
    imgs = {s: set(d.source_ids["image"]) for s, d in splits.items()}
    recs = {s: set(d.source_ids["audio"]) for s, d in splits.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not imgs[a] & imgs[b] and not recs[a] & recs[b]
    assert [d.modalities["image"].shape[0] for d in splits.values()] == [56000, 7000, 7000]
    assert [d.modalities["audio"].shape[0] for d in splits.values()] == [2400, 300, 300]
    assert [len(d) for d in splits.values()] == [3000, 500, 500]


def test_every_pair_matches_its_sources(splits, shared_data):
    ds = splits["val"]
    mnist = _mnist_labels(shared_data)
    ids = ds.source_ids
    assert np.array_equal(mnist[ids["image"]], ds.labels.numpy())
    assert [int(n.split("_")[0]) for n in ids["audio"]] == ds.labels.tolist()
    for i in (0, 7, 123):
        raw, _ = ds[i]
        assert (
            raw["image"].shape == (1, 28, 28)
            and raw["image"].min() >= 0
            and raw["image"].max() <= 1
        )
        clip = _wav(shared_data / "fsdd/recordings" / ids["audio"][i])
        wave_ = raw["audio"].numpy()
        assert np.array_equal(wave_[-len(clip) :], clip)  # front zero-padded
        assert not wave_[: len(wave_) - len(clip)].any()


def test_log1p_spectrogram_matches_an_independent_dft(splits):
    ds = splits["test"]
    length = ds.modalities["audio"].shape[1]
    frames = 1 + (length - 400) // 200
    assert ds.shapes == {"image": (1, 28, 28), "audio": (1, 201, frames)}
    x, _ = next(ds.batches(4))
    raw = ds.materialize("audio")[:4].double().numpy()
    t = frames - 5  # a frame inside the utterance: independent numpy DFT of that frame
    frame = raw[:, t * 200 : t * 200 + 400] * np.hanning(401)[:400]
    expected = np.log1p(np.abs(np.fft.rfft(frame, axis=-1)))
    assert np.allclose(x["audio"][:, 0, :, t].numpy(), expected, atol=1e-3)
    assert torch.all(x["audio"][:, :, :, 0][raw[:, 399] == 0] == 0)  # padding stays exactly 0


def test_audio_noise_hits_only_the_valid_part_at_the_requested_snr(splits):
    ds = splits["train"]
    wave_ = ds.materialize("audio")[:64]
    g = torch.Generator().manual_seed(1)
    noisy = ds.noise_fn(wave_, 0.5, g, "audio")
    mask = valid_mask(wave_).bool()
    assert torch.equal(noisy[~mask], wave_[~mask])
    noise = noisy - wave_
    snr = [
        (wave_[i][mask[i]].pow(2).mean() / noise[i][mask[i]].pow(2).mean()).item()
        for i in range(64)
    ]
    assert abs(np.median(snr) - 0.5) < 0.05
    x1, _ = next(
        ds.batches(
            8, snr={"audio": 0.5, "image": 0.25}, noise_generator=torch.Generator().manual_seed(3)
        )
    )
    x2, _ = next(
        ds.batches(
            8, snr={"audio": 0.5, "image": 0.25}, noise_generator=torch.Generator().manual_seed(3)
        )
    )
    x0, _ = next(ds.batches(8))
    assert torch.equal(x1["image"], x2["image"]) and not torch.equal(x1["image"], x0["image"])
    with pytest.raises(ValueError, match="snr"):
        next(ds.batches(8, snr={"audio": 0.0}))


def test_pairing_is_deterministic_per_seed(shared_data, cache):
    a = fd.load("avmnist", root=shared_data, cache_dir=cache, split="val", pairs=200, seed=1)
    b = fd.load("avmnist", root=shared_data, cache_dir=cache, split="val", pairs=200, seed=1)
    c = fd.load("avmnist", root=shared_data, cache_dir=cache, split="val", pairs=200, seed=2)
    assert a.source_ids == b.source_ids and a.source_ids != c.source_ids
    more = fd.load("avmnist", root=shared_data, cache_dir=cache, split="val", pairs=9000, seed=1)
    assert len(more) == 9000 and len(set(more.source_ids["image"])) == 7000  # all images used


def test_holdout_speakers_never_reach_training(shared_data, cache):
    s = fd.load_splits(
        "avmnist", root=shared_data, cache_dir=cache, pairs=300, holdout_speakers=["theo"]
    )
    assert "theo" not in s["train"].meta["speakers"]
    assert "theo" in s["val"].meta["speakers"] and "theo" in s["test"].meta["speakers"]
    assert s["train"].modalities["audio"].shape[0] == 2000  # 0.8 of the other 2500
    with pytest.raises(ValueError, match="holdout_speakers"):
        fd.load("avmnist", root=shared_data, cache_dir=cache, holdout_speakers=["nobody"])


def test_mfcc_option(shared_data, cache):
    ds = fd.load(
        "avmnist",
        root=shared_data,
        cache_dir=cache,
        split="test",
        pairs=16,
        audio_feature="mfcc",
        n_mfcc=13,
    )
    assert ds.shapes["audio"][:2] == (1, 13)
    with pytest.raises(ValueError, match="audio_feature"):
        fd.load("avmnist", root=shared_data, cache_dir=cache, audio_feature="cqt")


def test_second_load_of_60k_pairs_reads_only_the_cache(shared_data, cache, monkeypatch):
    """The second load decodes no MNIST/FSDD file and hashes none: it reads the one tensor cache
    (how fast that is depends on the machine; tests assert no timings)."""
    fd.load("avmnist", root=shared_data, cache_dir=cache, split="train", pairs=60000)

    def decoded_again(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a source file was read again: {args}")

    for name in ("read_idx", "read_wav", "verify_file"):
        monkeypatch.setattr(avmnist_sources, name, decoded_again)
    ds = fd.load("avmnist", root=shared_data, cache_dir=cache, split="train", pairs=60000)
    assert len(ds) == 60000 and len(list((cache).glob("avmnist-sources-*.safetensors"))) == 1


def test_classic_variant_removes_75_percent_of_pca_energy(shared_data, cache):
    clean = fd.load("avmnist", root=shared_data, cache_dir=cache, split="val", pairs=64)
    classic = fd.load(
        "avmnist", root=shared_data, cache_dir=cache, split="val", pairs=64, variant="classic"
    )
    x, y = clean.modalities["image"].flatten(1), classic.modalities["image"].flatten(1)
    mean = x.mean(0)
    kept = float((y - mean).pow(2).sum() / (x - mean).pow(2).sum())
    assert 0.15 < kept < 0.4
    assert classic.source_ids == clean.source_ids
    assert not torch.equal(classic.modalities["audio"], clean.modalities["audio"])
    assert classic.shapes == clean.shapes


def test_esc50_audio_noise_keeps_padding_and_hits_the_snr(shared_data, cache):
    ds = fd.load(
        "avmnist", root=shared_data, cache_dir=cache, split="test", pairs=32, audio_noise="esc50"
    )
    wave_ = ds.materialize("audio")
    noisy = ds.noise_fn(wave_, 0.25, torch.Generator().manual_seed(0), "audio")
    mask = valid_mask(wave_).bool()
    assert torch.equal(noisy[~mask], wave_[~mask])
    noise = noisy - wave_
    snr = torch.stack(
        [wave_[i][mask[i]].pow(2).mean() / noise[i][mask[i]].pow(2).mean() for i in range(32)]
    )
    assert torch.allclose(snr, torch.full_like(snr, 0.25), rtol=1e-3)
    silent = ds.noise_fn(torch.zeros(2, wave_.shape[1]), 0.5, None, "audio")
    assert not silent.any()  # zero signal power: zero noise


def test_classic_split_is_55k_5k_10k_with_disjoint_images_and_test_recordings(shared_data, cache):
    splits = fd.load_splits(
        "avmnist", root=shared_data, cache_dir=cache, variant="classic", split_scheme="classic"
    )
    assert [len(d) for d in splits.values()] == [55000, 5000, 10000]
    imgs = {s: d.source_ids["image"] for s, d in splits.items()}
    # every image of its block exactly once: MNIST train rows 0-54,999 / 55,000-59,999 / t10k
    assert sorted(imgs["train"]) == list(range(55000))
    assert sorted(imgs["val"]) == list(range(55000, 60000))
    assert sorted(imgs["test"]) == list(range(60000, 70000))
    takes = {s: {int(n[:-4].rsplit("_", 1)[1]) for n in d.source_ids["audio"]}
             for s, d in splits.items()}
    assert max(takes["train"] | takes["val"]) <= 39 and min(takes["test"]) >= 40
    recs = {s: set(d.source_ids["audio"]) for s, d in splits.items()}
    assert not (recs["train"] | recs["val"]) & recs["test"]
    mnist = _mnist_labels(shared_data)
    for d in splits.values():
        assert np.array_equal(mnist[d.source_ids["image"]], d.labels.numpy())
        assert [int(n.split("_")[0]) for n in d.source_ids["audio"]] == d.labels.tolist()
        assert d.meta["split_scheme"] == "classic"


def test_classic_split_rejects_speaker_holdout(shared_data, cache):
    with pytest.raises(ValueError, match=r"holdout_speakers.*shuffled"):
        fd.load("avmnist", root=shared_data, cache_dir=cache, split="val",
                split_scheme="classic", holdout_speakers=["theo"])
    with pytest.raises(ValueError, match=r"split_scheme.*'mnist'"):
        fd.load("avmnist", root=shared_data, cache_dir=cache, split="val", split_scheme="mnist")
