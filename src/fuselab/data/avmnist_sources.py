"""AV-MNIST raw sources: all 70,000 MNIST images and all FSDD recordings, decoded once and cached.

``load_sources`` returns ``tensors`` with
    ``images`` (70000, 28, 28) uint8 (MNIST train then t10k; the row is the "MNIST index"),
    ``image_labels`` (70000,) int64, ``waves`` (R, L) int16 front-zero-padded recordings,
    ``wave_labels`` (R,) int64, ``wave_lengths`` (R,) int64,
and ``extras`` ``{"names": [file name per recording], "speakers": [speaker per recording]}``.

The recordings are the FSDD files *listed in the manifest* (optionally only some ``speakers``),
never the folder listing: a listed file that is missing is downloaded or, without download, a
``FileNotFoundError`` naming it; an extra ``.wav`` on disk that the manifest does not list is
ignored. So the recording list -- and with it every pair -- is fixed by the manifest and the
options, and :func:`data_identity` (the dataset's ``meta["data_id"]``, part of a study's
identity) names it: sha256 over the sorted ``"<sha256>  <path>"`` lines of every source file used.
The decoded arrays are written once to the tensor cache, keyed by the files' names, sizes and
modification times plus the padding length, so editing or replacing a file triggers a rebuild
(and its checksum verification) while a normal second load only memory-maps one file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fuselab.data.audio import pad_front
from fuselab.data.download import Fetcher, ensure_files
from fuselab.data.esc50 import esc50_files, load_clips
from fuselab.data.sources import read_idx, read_wav, verify_file
from fuselab.data.tensorfile import Built, cached_tensors, config_key

FSDD_RATE = 8000
FSDD_DIR = "fsdd/recordings/"
MNIST_FILES = (
    "mnist/train-images-idx3-ubyte.gz",
    "mnist/train-labels-idx1-ubyte.gz",
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
)


def fsdd_files(manifest: Mapping[str, str], speakers: Sequence[str] | None = None) -> list[str]:
    """Relative paths of the FSDD recordings listed in ``manifest``, sorted; only those of
    ``speakers`` when given (``ValueError`` naming an unknown speaker or an empty list)."""
    listed = sorted(r for r in manifest if r.startswith(FSDD_DIR) and r.endswith(".wav"))
    if not listed:
        raise ValueError(f"avmnist: the manifest lists no FSDD recordings ({FSDD_DIR}*.wav)")
    if speakers is None:
        return listed
    if isinstance(speakers, str) or not speakers:
        raise ValueError(f"avmnist: option 'speakers' must be a non-empty list of speaker names, "
                         f"got {speakers!r}")
    by_speaker = {r: parse_fsdd_name(r)[1] for r in listed}
    known = sorted(set(by_speaker.values()))
    unknown = [sp for sp in speakers if sp not in known]
    if unknown:
        raise ValueError(f"avmnist: option 'speakers' names unknown speaker(s) {unknown}; "
                         f"the manifest has {known}")
    return [r for r in listed if by_speaker[r] in speakers]


def source_digest(rels: Sequence[str], manifest: Mapping[str, str]) -> str:
    """sha256 (hex) of the sorted ``"<sha256>  <path>"`` lines of ``rels``: the data identity.

    Every path must be in ``manifest`` (``ValueError`` naming the first that is not): a file
    without a known checksum has no identity.
    """
    missing = [r for r in rels if r not in manifest]
    if missing:
        raise ValueError(f"data identity: {missing[0]!r} has no sha256 in the manifest")
    lines = "".join(f"{manifest[r]}  {r}\n" for r in sorted(rels))
    return hashlib.sha256(lines.encode()).hexdigest()


def parse_fsdd_name(name: str) -> tuple[int, str]:
    """``"7_jackson_32.wav"`` -> ``(7, "jackson")``; ``ValueError`` naming the file otherwise."""
    parts = Path(name).stem.split("_")
    if len(parts) != 3 or not parts[0].isdigit() or not 0 <= int(parts[0]) <= 9:
        raise ValueError(f"FSDD file {name!r}: expected '<digit>_<speaker>_<index>.wav'")
    return int(parts[0]), parts[1]


def _stats(root: Path, rels: Sequence[str]) -> list[tuple[str, int, int]]:
    out = []
    for r in rels:
        st = (root / r).stat()
        out.append((r, st.st_size, st.st_mtime_ns))
    return out


def _prepare(
    root: Path,
    rels: Sequence[str],
    manifest: Mapping[str, str],
    download: bool,
    sources: Any,
    fetcher: Fetcher | None,
) -> None:
    ensure_files(root, rels, manifest, download=download, sources=sources, fetcher=fetcher)


def _verify(root: Path, rels: Sequence[str], manifest: Mapping[str, str]) -> None:
    for r in rels:
        if r in manifest:
            verify_file(root / r, manifest[r])


def load_sources(
    root: Path,
    cache_dir: Path | None,
    manifest: Mapping[str, str],
    *,
    verify: bool = True,
    download: bool = True,
    sources: Any = None,
    fetcher: Fetcher | None = None,
    max_samples: int | None = None,
    speakers: Sequence[str] | None = None,
) -> Built:
    """Decoded MNIST + FSDD (see the module docstring), from the cache when it is current."""
    wav_rels = fsdd_files(manifest, speakers)
    rels = [*MNIST_FILES, *wav_rels]
    _prepare(root, rels, manifest, download, sources, fetcher)
    config = {"root": str(root.resolve()), "files": _stats(root, rels), "max_samples": max_samples}

    def build() -> Built:
        if verify:
            _verify(root, rels, manifest)
        train_x, train_y, test_x, test_y = (read_idx(root / r) for r in MNIST_FILES)
        for x, y, name in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
            if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
                raise ValueError(
                    f"MNIST {name}: images {x.shape} and labels {y.shape} do not match "
                    "(expected (N, 28, 28) and (N,))"
                )
        waves, labels, speakers, names = [], [], [], []
        for r in wav_rels:
            digit, speaker = parse_fsdd_name(r)
            waves.append(read_wav(root / r, FSDD_RATE)[0])
            labels.append(digit)
            speakers.append(speaker)
            names.append(Path(r).name)
        padded, lengths = pad_front(waves, max_samples)
        tensors = {
            "images": torch.from_numpy(np.concatenate([train_x, test_x])),
            "image_labels": torch.from_numpy(np.concatenate([train_y, test_y]).astype(np.int64)),
            "waves": (padded * 32768.0).round().clamp(-32768, 32767).to(torch.int16),
            "wave_labels": torch.tensor(labels, dtype=torch.int64),
            "wave_lengths": lengths,
        }
        return tensors, {"names": names, "speakers": speakers, "source_key": config_key(config)}

    return cached_tensors(cache_dir, "avmnist-sources", config, build)


def data_identity(
    root: Path,
    manifest: Mapping[str, str],
    *,
    speakers: Sequence[str] | None = None,
    esc50: bool = False,
) -> str:
    """The data identity of AV-MNIST built from these sources: :func:`source_digest` of the
    MNIST files and the (selected) FSDD recordings; with ``esc50`` the ESC-50 clips' names and
    manifest digests are folded in too (they are listed from disk, as :func:`load_esc50` does;
    a clip the manifest does not list enters as ``unlisted``)."""
    digest = source_digest([*MNIST_FILES, *fsdd_files(manifest, speakers)], manifest)
    if not esc50:
        return digest
    lines = "".join(f"{manifest.get(r, 'unlisted')}  {r}\n" for r in esc50_files(root, dict(manifest)))
    return hashlib.sha256(f"{digest}\n{lines}".encode()).hexdigest()


def load_esc50(
    root: Path,
    cache_dir: Path | None,
    manifest: Mapping[str, str],
    *,
    rate: int = FSDD_RATE,
    verify: bool = True,
    download: bool = True,
    sources: Any = None,
    fetcher: Fetcher | None = None,
) -> torch.Tensor:
    """``(C, 5 * rate)`` float32 ESC-50 clips resampled to ``rate``, cached like the sources."""
    rels = esc50_files(root, dict(manifest))
    _prepare(root, rels, manifest, download, sources, fetcher)
    config = {"root": str(root.resolve()), "files": _stats(root, rels), "rate": rate}

    def build() -> Built:
        if verify:
            _verify(root, rels, manifest)
        return {"clips": load_clips([root / r for r in rels], rate)}, {
            "names": [Path(r).name for r in rels]
        }

    return cached_tensors(cache_dir, "esc50-clips", config, build)[0]["clips"]
