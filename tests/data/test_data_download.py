"""Downloads of missing sources: file:// mirrors and a stub fetcher, never the network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from datafakes import make_root

import fuselab.data as fd
from fuselab.data.download import ensure_files, fetch_verified, safe_destination, urls_for
from fuselab.data.sources import packaged_manifest


@pytest.fixture
def remote(tmp_path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "remote"
    return root, make_root(root)


def _sources(remote: Path) -> dict[str, list[str]]:
    return {
        "mnist/": [remote.as_uri() + "/mnist/"],
        "fsdd/recordings/": [remote.as_uri() + "/fsdd/recordings/"],
    }


def test_missing_files_are_downloaded_and_verified(remote, tmp_path):
    src, manifest = remote
    root = tmp_path / "local"
    ds = fd.load(
        "avmnist",
        root=root,
        split="train",
        cache_dir=tmp_path / "c",
        manifest=manifest,
        sources=_sources(src),
    )
    for rel in manifest:
        assert (root / rel).read_bytes() == (src / rel).read_bytes()
    assert not list(root.rglob("*.part"))
    assert len(ds) == 80


def test_checksum_mismatch_on_download_leaves_no_file(remote, tmp_path):
    src, manifest = remote
    manifest = dict(manifest)
    manifest["mnist/t10k-labels-idx1-ubyte.gz"] = "f" * 64
    root = tmp_path / "local"
    with pytest.raises(
        ValueError, match=r"checksum mismatch downloading mnist/t10k-labels-idx1-ubyte\.gz"
    ):
        fd.load(
            "avmnist", root=root, cache_dir=tmp_path / "c", manifest=manifest, sources=_sources(src)
        )
    assert not (root / "mnist/t10k-labels-idx1-ubyte.gz").exists()
    assert not list(root.rglob("*.part"))


def test_second_mirror_is_used_when_the_first_serves_bad_bytes(remote, tmp_path):
    src, manifest = remote
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    (bad / "mnist/train-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    sources = {"mnist/": [bad.as_uri() + "/mnist/", src.as_uri() + "/mnist/"]}
    rel = "mnist/train-labels-idx1-ubyte.gz"
    path = fetch_verified(rel, tmp_path / "local", manifest[rel], sources=sources)
    assert path.read_bytes() == (src / rel).read_bytes()


def test_offline_error_says_where_to_put_the_files(remote, tmp_path):
    _, manifest = remote
    nowhere = {
        "mnist/": [(tmp_path / "missing").as_uri() + "/"],
        "fsdd/recordings/": [(tmp_path / "missing").as_uri() + "/"],
    }
    with pytest.raises(FileNotFoundError, match=r"No network\?.*mnist/\*\.gz.*FUSELAB_DATA"):
        fd.load(
            "avmnist",
            root=tmp_path / "local",
            cache_dir=tmp_path / "c",
            manifest=manifest,
            sources=nowhere,
        )
    with pytest.raises(FileNotFoundError, match="download=False"):
        fd.load(
            "avmnist",
            root=tmp_path / "local",
            cache_dir=tmp_path / "c",
            manifest=manifest,
            download=False,
        )


def test_stub_fetcher_is_called_once_per_missing_file(remote, tmp_path):
    src, manifest = remote
    calls: list[str] = []

    def fetcher(url: str, dest: Path) -> None:
        calls.append(url)
        shutil.copyfile(src / url.removeprefix("mirror://"), dest)

    sources = {"mnist/": ["mirror://mnist/"], "fsdd/recordings/": ["mirror://fsdd/recordings/"]}
    root = tmp_path / "local"
    kw = {
        "root": root,
        "split": "train",
        "cache_dir": tmp_path / "c",
        "manifest": manifest,
        "sources": sources,
        "fetcher": fetcher,
        "pairs": 4,
    }
    a = fd.load("avmnist", **kw)
    assert sorted(calls) == sorted("mirror://" + r for r in manifest)
    b = fd.load("avmnist", **kw)
    assert len(calls) == len(manifest)  # nothing fetched twice
    assert torch.equal(a.labels, b.labels)


def test_destinations_cannot_escape_the_root(tmp_path):
    with pytest.raises(ValueError, match="outside the data root"):
        safe_destination(tmp_path, "../evil.txt")
    with pytest.raises(ValueError, match="outside the data root"):
        ensure_files(tmp_path, ["/etc/evil"], {"/etc/evil": "0" * 64})


def test_default_sources_and_packaged_manifest_cover_the_shared_layout():
    manifest = packaged_manifest()
    assert manifest["mnist/train-images-idx3-ubyte.gz"].startswith("440fcabf73cc546f")
    assert sum(r.startswith("fsdd/recordings/") for r in manifest) == 3000
    assert urls_for("fsdd/recordings/7_jackson_32.wav")[0].endswith(
        "26eb9aaf76e81b692f806f9140c2d2777410d7a1/recordings/7_jackson_32.wav"
    )
    assert len(urls_for("mnist/t10k-labels-idx1-ubyte.gz")) >= 2


def test_shared_data_matches_the_packaged_manifest(shared_data):
    manifest = packaged_manifest()
    from fuselab.data.sources import verify_file

    for rel in (
        "mnist/t10k-labels-idx1-ubyte.gz",
        "fsdd/recordings/0_george_0.wav",
        "esc50/audio/2-103426-A-3.wav",
    ):
        verify_file(shared_data / rel, manifest[rel])
