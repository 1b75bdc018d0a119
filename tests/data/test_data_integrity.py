"""Bad input and damaged files: each gives a clear error naming the file or the value."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import pytest
import torch
from datafakes import make_root, manifest_of, write_wav

import fuselab.data as fd
from fuselab.data.sources import read_idx, read_wav


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "data"


def _load(root: Path, tmp_path: Path, **kw):
    kw.setdefault("verify", False)
    kw.setdefault("download", False)
    # the recordings are the manifest's: by default, list what the fake root holds now
    kw.setdefault("manifest", manifest_of(root))
    return fd.load("avmnist", root=root, split="train", cache_dir=tmp_path / "cache", **kw)


def test_fake_root_builds(root, tmp_path):
    manifest = make_root(root)
    ds = _load(root, tmp_path, manifest=manifest, verify=True)
    assert ds.modalities["image"].shape == (80, 1, 28, 28) and ds.shapes["audio"][:2] == (1, 201)
    assert [int(n[0]) for n in ds.source_ids["audio"]] == ds.labels.tolist()


def test_built_dataset_pickles_for_worker_processes(root, tmp_path):
    make_root(root)
    ds = _load(root, tmp_path, pairs=12)
    clone = pickle.loads(pickle.dumps(ds))
    g1, g2 = (torch.Generator().manual_seed(4) for _ in range(2))
    (a, ya), (b, yb) = (
        next(ds.batches(12, snr={"audio": 1.0}, noise_generator=g1)),
        next(clone.batches(12, snr={"audio": 1.0}, noise_generator=g2)),
    )
    assert torch.equal(a["audio"], b["audio"]) and torch.equal(ya, yb)
    assert clone.source_ids == ds.source_ids


def test_truncated_idx_names_the_file(root, tmp_path):
    make_root(root)
    path = root / "mnist/train-images-idx3-ubyte.gz"
    with gzip.open(path) as f:
        raw = f.read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*truncated"):
        _load(root, tmp_path)
    path.write_bytes(path.read_bytes()[:50])  # a cut gzip stream, too
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz"):
        read_idx(path)


def test_corrupt_gzip_payload_names_the_file(root, tmp_path):
    """A flipped byte inside the deflate stream (zlib.error, not OSError) with verify=False."""
    make_root(root)
    path = root / "mnist/train-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    for i in range(20, len(data) - 8, 7):  # damage the compressed blocks, keep the header
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: cannot read IDX file"):
        read_idx(path)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz.*corrupted"):
        _load(root, tmp_path)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x12\x34\x56\x78" + bytes(10))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path)


def test_truncated_wav_names_the_file(root, tmp_path):
    make_root(root)
    path = root / "fsdd/recordings/3_ann_1.wav"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"3_ann_1\.wav.*truncated"):
        _load(root, tmp_path)


def test_wrong_sample_rate_names_file_and_rates(root, tmp_path):
    make_root(root)
    write_wav(root / "fsdd/recordings/4_bob_2.wav", torch.zeros(800).numpy() + 0.1, rate=16000)
    with pytest.raises(
        ValueError, match=r"4_bob_2\.wav: expected sample rate 8000 Hz, got 16000 Hz"
    ):
        _load(root, tmp_path)
    with pytest.raises(ValueError, match="16000"):
        read_wav(root / "fsdd/recordings/4_bob_2.wav", 8000)


def test_checksum_mismatch_names_the_file(root, tmp_path):
    manifest = make_root(root)
    manifest["fsdd/recordings/2_ann_0.wav"] = "0" * 64
    with pytest.raises(
        ValueError,
        match=r"checksum mismatch for .*2_ann_0\.wav: expected sha256 0{64}, got [0-9a-f]{64}",
    ):
        _load(root, tmp_path, manifest=manifest, verify=True)


def test_empty_class_names_split_and_digit(root, tmp_path):
    make_root(root, skip_digit=3)
    with pytest.raises(ValueError, match="split 'train' has no recording of digit 3"):
        _load(root, tmp_path)


def test_bad_fsdd_file_name(root, tmp_path):
    make_root(root)
    write_wav(root / "fsdd/recordings/notadigit.wav", torch.zeros(800).numpy())
    with pytest.raises(ValueError, match=r"notadigit\.wav"):
        _load(root, tmp_path)


def test_out_of_range_snr_db_is_rejected():
    x = torch.randn(4, 10)
    for bad in (1e6, -1e6, 4000.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"snr_db must give a finite positive power ratio"):
            fd.add_white_noise(x, snr_db=bad)
    assert fd.add_white_noise(x, snr_db=300.0, generator=torch.Generator()).allclose(x)


def test_nonpositive_snr_is_rejected():
    x = torch.randn(4, 10)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite positive"):
            fd.add_white_noise(x, bad)
    ds = fd.load("lattice", sizes=8)
    with pytest.raises(ValueError, match="snr"):
        next(ds.batches(4, snr={"x1": 0.0}))
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        next(ds.batches(4, snr={"audio": 1.0}))


def test_unknown_split_and_dataset():
    with pytest.raises(ValueError, match="unknown split 'training'"):
        fd.load("lattice", split="training")
    with pytest.raises(KeyError, match="lattice"):
        fd.load("latice")


def test_bad_avmnist_options_name_the_key(root, tmp_path):
    make_root(root)
    for key, value in (("variant", "cifar"), ("audio_noise", "pink"), ("pairs", 0),
                       ("max_seconds", -1.0), ("max_seconds", 0.0), ("max_seconds", float("inf")),
                       ("max_seconds", 1e-6), ("max_seconds", "2")):
        with pytest.raises(ValueError, match=key):
            _load(root, tmp_path, **{key: value})


def test_corrupt_tensor_cache_is_rebuilt(root, tmp_path):
    make_root(root)
    first = _load(root, tmp_path)
    (cached,) = (tmp_path / "cache").glob("avmnist-sources-*.safetensors")
    cached.write_bytes(cached.read_bytes()[:1000])
    again = _load(root, tmp_path)
    assert torch.equal(first.modalities["audio"], again.modalities["audio"])
    assert cached.stat().st_size > 1000
