"""The FSDD recording list comes from the manifest: missing files, extra files, speakers, identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datafakes import make_root, write_wav

import fuselab.data as fd
from fuselab.data.avmnist_sources import fsdd_files, source_digest

PAPER_SPEAKERS = ["george", "jackson", "nicolas", "theo", "yweweler"]  # FSDD 1.0.8


def _load(root: Path, tmp_path: Path, manifest: dict[str, str], **kw):
    return fd.load("avmnist", root=root, split="train", cache_dir=tmp_path / "cache",
                   manifest=manifest, download=False, verify=False, **kw)


def test_extra_wav_on_disk_is_ignored_and_keeps_every_pair(tmp_path):
    root = tmp_path / "data"
    manifest = make_root(root)
    before = _load(root, tmp_path, manifest)
    write_wav(root / "fsdd/recordings/3_zed_0.wav", np.full(900, 0.1))
    after = _load(root, tmp_path, manifest)
    assert after.source_ids == before.source_ids
    assert after.meta["data_id"] == before.meta["data_id"]
    assert "3_zed_0.wav" not in set(after.source_ids["audio"])


def test_missing_listed_wav_is_a_clear_error(tmp_path):
    root = tmp_path / "data"
    manifest = make_root(root)
    (root / "fsdd/recordings/4_bob_2.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing 1 file\(s\), e\.g\. .*4_bob_2\.wav"):
        _load(root, tmp_path, manifest)


def test_speakers_select_recordings_and_change_the_identity(tmp_path):
    root = tmp_path / "data"
    manifest = make_root(root, speakers=("ann", "bob", "cy"))
    ds = _load(root, tmp_path, manifest, speakers=["ann", "cy"])
    assert set(ds.meta["speakers"]) == {"ann", "cy"}
    assert {n.split("_")[1] for n in ds.source_ids["audio"]} <= {"ann", "cy"}
    everyone = _load(root, tmp_path, manifest)
    assert set(everyone.meta["speakers"]) == {"ann", "bob", "cy"}
    assert ds.meta["data_id"] != everyone.meta["data_id"]
    # the identity is known without building: the study computes it up front
    assert fd.identity("avmnist", root=root, manifest=manifest, speakers=["ann", "cy"]) \
        == ds.meta["data_id"]
    with pytest.raises(ValueError, match=r"'speakers' names unknown speaker\(s\) \['dan'\]; "
                                         r"the manifest has \['ann', 'bob', 'cy'\]"):
        _load(root, tmp_path, manifest, speakers=["ann", "dan"])
    with pytest.raises(ValueError, match="non-empty list"):
        _load(root, tmp_path, manifest, speakers="ann")


def test_identity_is_the_digest_of_the_listed_sources():
    manifest = {"mnist/a.gz": "1" * 64, "fsdd/recordings/1_ann_0.wav": "2" * 64,
                "fsdd/recordings/2_bob_0.wav": "3" * 64, "esc50/audio/x.wav": "4" * 64}
    assert fsdd_files(manifest) == ["fsdd/recordings/1_ann_0.wav", "fsdd/recordings/2_bob_0.wav"]
    assert fsdd_files(manifest, ["bob"]) == ["fsdd/recordings/2_bob_0.wav"]
    a = source_digest(["fsdd/recordings/2_bob_0.wav", "mnist/a.gz"], manifest)
    b = source_digest(["mnist/a.gz", "fsdd/recordings/2_bob_0.wav"], manifest)
    changed = source_digest(["mnist/a.gz", "fsdd/recordings/2_bob_0.wav"],
                            {**manifest, "mnist/a.gz": "5" * 64})
    assert a == b != changed  # order-free, content-bound
    with pytest.raises(ValueError, match="manifest lists no FSDD recordings"):
        fsdd_files({"mnist/a.gz": "1" * 64})
    assert fd.identity("lattice") == "" and fd.identity("no-such-dataset") == ""


def test_paper_speakers_give_fsdd_1_0_8_counts(shared_data, tmp_path):
    # paper 000's 11,202,076 training pairs ~ 56,000 images x 200 recordings of each digit:
    # 2,500 recordings (FSDD 1.0.8, five speakers) cut 8:1:1, not today's 3,000
    sizes = [fd.load("avmnist", root=shared_data, split=s, pairs=8, cache_dir=tmp_path,
                     speakers=PAPER_SPEAKERS).modalities["audio"].shape[0]
             for s in ("train", "val", "test")]
    assert sizes == [2000, 250, 250]
