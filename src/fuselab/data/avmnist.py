"""AV-MNIST: MNIST images paired with Free Spoken Digit recordings of the same digit.

``load("avmnist", root=..., split="train", **options)`` returns a :class:`MultimodalDataset` with

    modalities["image"]  (M, 1, 28, 28) float in [0, 1]    the split's MNIST images, stored once
    modalities["audio"]  (R, L) float waveforms            the split's recordings, front-zero-padded
    index                {"image": (N,), "audio": (N,)}    row of each pair (row sharing)
    labels               (N,) int64 digit
    source_ids           {"image": [MNIST index], "audio": [FSDD file name]} per pair
    transform            waveform -> (1, 201, T) spectrogram (``spectrogram``: "log1p" or
                         "power", see fuselab.data.audio) or (1, n_mfcc, T) MFCC
    meta["data_id"]      digest of the source files' list (fuselab.data.avmnist_sources)

so ``ds.shapes == {"image": (1, 28, 28), "audio": (1, 201, T)}``. MNIST index ``i < 60000`` is
row ``i`` of the official training file, ``i >= 60000`` row ``i - 60000`` of t10k.

Recordings: the FSDD files listed in the manifest (never the folder listing), optionally only
those of ``speakers`` (paper 000 cites FSDD 1.0.8: 2,500 recordings of george, jackson, nicolas,
theo and yweweler; today's FSDD adds lucas, 3,000 recordings).

Splits (paper 000, A.3): the 70,000 images and the recordings are each shuffled (``seed``) and cut
8:1:1 *before* pairing, so no image or recording appears in two splits. ``holdout_speakers``
removes those speakers' recordings from training; they are shared half/half between val and test
(beside the other speakers' val/test recordings). Each pair takes an image of the split (without
replacement until all are used) and a uniformly drawn recording of the same digit.

Noise: ``ds.batches(..., snr={"audio": a, "image": v})`` adds white noise (or ESC-50 noise with
``audio_noise="esc50"``) to the *waveform's unpadded part* before the spectrogram, and white
noise to the image, per batch with its own generator; ``snr_kind`` says whether a linear SNR is
a power ratio ("power", the default) or an amplitude ratio ("amplitude"; paper 000 does not say).

``split_scheme="classic"`` (MultiBench's AV-MNIST, paper 001: 55k / 5k / 10k pairs): the first
55,000 MNIST training images train, the last 5,000 validate, t10k tests; FSDD takes 0-39 of every
speaker and digit serve train and val, takes 40-49 test (Cassell's generator, which MultiBench's
files come from). Images are disjoint across splits, test recordings too; train and val share
their recordings, as in MultiBench.

``variant="classic"`` (Vielzeuf et al. 2018 / MultiBench, paper 001): each image is replaced by
its reconstruction from the leading principal components that keep ``classic_energy_kept``
(25%) of the training images' variance, i.e. 75% of the PCA energy removed (clamped to [0, 1]);
each recording is mixed once, deterministically, with an ESC-50 segment at linear SNR
``classic_snr`` before the spectrogram.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fuselab.data.audio import AudioFeatures, valid_mask
from fuselab.data.avmnist_noise import AVMNISTNoise
from fuselab.data.avmnist_pairing import (
    classic_image_rows,
    classic_recordings,
    pair_rows,
    sorted_rows,
    split_recordings,
)
from fuselab.data.avmnist_sources import FSDD_RATE, data_identity, load_esc50, load_sources
from fuselab.data.dataset import MultimodalDataset
from fuselab.data.download import Fetcher
from fuselab.data.esc50 import add_clip_noise
from fuselab.data.noise import check_snr, check_snr_kind
from fuselab.data.registry import register, register_identity
from fuselab.data.sources import resolve_manifest
from fuselab.data.splits import check_split, partition, split_generator
from fuselab.data.tensorfile import cached_tensors, default_cache_dir


def _pairs(pairs: int | Mapping[str, int] | None, split: str, default: int) -> int:
    if pairs is None:
        return default
    n = (
        int(pairs[split])
        if isinstance(pairs, Mapping) and split in pairs
        else (default if isinstance(pairs, Mapping) else int(pairs))
    )
    if n <= 0:
        raise ValueError(f"avmnist: option 'pairs' must be positive for split {split!r}, got {n}")
    return n


def _pca_basis(images: Tensor, energy: float) -> tuple[Tensor, Tensor]:
    x = images.reshape(len(images), -1).to(torch.float64) / 255.0
    mean = x.mean(0)
    xc = x - mean
    evals, evecs = torch.linalg.eigh(xc.T @ xc)
    evals, evecs = evals.flip(0), evecs.flip(1)
    k = (
        int(
            torch.searchsorted(
                torch.cumsum(evals, 0) / evals.sum(), torch.tensor(energy, dtype=torch.float64)
            )
        )
        + 1
    )
    return mean.to(torch.float32), evecs[:, :k].to(torch.float32).contiguous()


def _classic(
    src: dict[str, Tensor],
    extras: dict[str, Any],
    train_rows: Tensor,
    img_rows: Tensor,
    wave_rows: Tensor,
    clips: Tensor,
    cache: Path,
    *,
    seed: int,
    energy: float,
    snr: float,
) -> tuple[Tensor, Tensor]:
    """The classic corruption of the split's images ``(M, 1, 28, 28)`` and waveforms ``(R, L)``."""
    check_snr(snr, "avmnist option 'classic_snr'")
    key = {"sources": extras.get("source_key", extras["names"][:3]), "seed": seed,
           "energy": energy, "train_rows": int(train_rows.sum())}  # fmt: skip

    def fit() -> tuple[dict[str, Tensor], dict[str, Any]]:
        mean, basis = _pca_basis(src["images"][train_rows], energy)
        return {"mean": mean, "basis": basis}, {}

    pca, _ = cached_tensors(cache, "avmnist-pca", key, fit)
    flat = src["images"][img_rows].reshape(len(img_rows), -1).to(torch.float32).div_(255.0)
    flat -= pca["mean"]
    images = (flat @ pca["basis"]) @ pca["basis"].T + pca["mean"]
    # every recording gets one fixed mix, drawn for all of them at once so that a recording's
    # mix does not depend on which split is being built
    waves = src["waves"].to(torch.float32).div_(32768.0)
    mixed = add_clip_noise(waves, snr, clips, split_generator(seed, "all", 4), valid_mask(waves))
    return images.clamp_(0, 1).reshape(-1, 1, 28, 28), mixed[wave_rows]


@register("avmnist")
def build_avmnist(
    split: str,
    root: Path | None = None,
    *,
    pairs: int | Mapping[str, int] | None = None,
    seed: int = 0,
    holdout_speakers: Sequence[str] = (),
    speakers: Sequence[str] | None = None,
    audio_feature: str = "spectrogram",
    spectrogram: str = "log1p",
    n_mfcc: int = 40,
    variant: str = "paper000",
    split_scheme: str = "shuffled",
    audio_noise: str = "white",
    classic_energy_kept: float = 0.25,
    classic_snr: float = 1.0,
    snr_kind: str = "power",
    max_seconds: float | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    verify: bool = True,
    manifest: str | Path | Mapping[str, str] | None = None,
    sources: Mapping[str, Sequence[str]] | None = None,
    fetcher: Fetcher | None = None,
) -> MultimodalDataset:
    """Build one AV-MNIST split (see the module docstring for the layout).

    Options: ``pairs`` (int or per-split mapping; default = the split's image count: 56k/7k/7k,
    55k/5k/10k with the classic split), ``seed``, ``holdout_speakers``, ``speakers`` (FSDD
    speakers to use; default all listed), ``audio_feature`` ("spectrogram" | "mfcc"),
    ``spectrogram`` ("log1p" | "power"), ``n_mfcc``, ``variant`` ("paper000" | "classic"),
    ``split_scheme`` ("shuffled": 8:1:1 of images and recordings | "classic": 55k / 5k / 10k,
    see the module docstring), ``audio_noise`` ("white" | "esc50"), ``classic_energy_kept``,
    ``classic_snr``, ``snr_kind`` ("power" | "amplitude"), ``max_seconds`` (pad/crop
    length; default the longest recording), ``cache_dir`` (default ``$FUSELAB_CACHE`` or ``~/.cache/fuselab``),
    ``download``, ``verify`` (sha256 of source files on first build), ``manifest`` (sha256 list:
    path, mapping, or the packaged one), ``sources`` / ``fetcher`` (download overrides).
    """
    check_split(split, "avmnist")
    max_samples = _check_options(variant, split_scheme, holdout_speakers, audio_noise,
                                 classic_energy_kept, max_seconds)
    features = AudioFeatures(audio_feature, FSDD_RATE, n_mfcc=n_mfcc, spectrogram=spectrogram)
    check_snr_kind(snr_kind, "avmnist: option 'snr_kind'")
    cache, data_root = _places(root, cache_dir)
    sums = resolve_manifest(manifest)
    io: dict[str, Any] = {
        "verify": verify,
        "download": download,
        "sources": sources,
        "fetcher": fetcher,
    }
    src, extras = load_sources(data_root, cache, sums, max_samples=max_samples,
                               speakers=speakers, **io)

    image_parts, wave_rows = _split_rows(src, extras, split, split_scheme, seed, holdout_speakers)
    img_rows = sorted_rows(image_parts[split], len(src["image_labels"]))
    images = src["images"][img_rows].unsqueeze(1).to(torch.float32).div_(255.0)
    waves = src["waves"][wave_rows].to(torch.float32).div_(32768.0)

    clips = None
    if audio_noise == "esc50" or variant == "classic":
        clips = load_esc50(data_root, cache, sums, **io)
    if variant == "classic":
        assert clips is not None
        images, waves = _classic(
            src, extras, image_parts["train"], img_rows, wave_rows, clips, cache,
            seed=seed, energy=classic_energy_kept, snr=classic_snr,
        )  # fmt: skip

    meta = {
        "variant": variant,
        "split_scheme": split_scheme,
        "seed": seed,
        "sample_rate": FSDD_RATE,
        "holdout_speakers": list(holdout_speakers),
        "audio_feature": audio_feature,
        "data_id": data_identity(data_root, sums, speakers=speakers, esc50=clips is not None),
    }
    return _paired(src, extras, images, waves, img_rows, wave_rows, split,
                   _pairs(pairs, split, len(img_rows)), meta, features,
                   AVMNISTNoise(audio_noise, clips, snr_kind))


def _paired(src: Mapping[str, Any], extras: Mapping[str, Any], images: Tensor, waves: Tensor,
            img_rows: Tensor, wave_rows: Tensor, split: str, n: int, meta: dict[str, Any],
            features: AudioFeatures, noise_fn: AVMNISTNoise) -> MultimodalDataset:
    """The split's dataset: ``n`` (image, recording) pairs of one digit, sharing stored rows."""
    seed = int(meta["seed"])
    img, rec = pair_rows(
        src["image_labels"][img_rows],
        src["wave_labels"][wave_rows],
        n,
        split_generator(seed, split, 5),
        split,
    )
    mnist_index = img_rows[img].tolist()
    names = extras["names"]
    speakers = [extras["speakers"][i] for i in wave_rows.tolist()]
    return MultimodalDataset(
        modalities={"image": images, "audio": waves},
        labels=src["image_labels"][img_rows][img],
        task="classification",
        num_classes=10,
        source_ids={"image": mnist_index, "audio": [names[i] for i in wave_rows[rec].tolist()]},
        name="avmnist",
        meta={**{k: meta[k] for k in ("variant", "split_scheme", "seed", "sample_rate",
                                       "holdout_speakers")},
              "speakers": speakers, "audio_feature": meta["audio_feature"],
              "data_id": meta["data_id"]},
        index={"image": img, "audio": rec},
        transform=features,
        noise_fn=noise_fn,
    )

def _check_options(variant: str, split_scheme: str, holdout_speakers: Sequence[str],
                   audio_noise: str, classic_energy_kept: float,
                   max_seconds: float | None) -> int | None:
    """Validate the build options that need no file; the recording length in samples."""
    if variant not in ("paper000", "classic"):
        raise ValueError(
            f"avmnist: option 'variant' must be 'paper000' or 'classic', got {variant!r}"
        )
    if split_scheme not in ("shuffled", "classic"):
        raise ValueError(
            f"avmnist: option 'split_scheme' must be 'shuffled' or 'classic', got {split_scheme!r}"
        )
    if split_scheme == "classic" and holdout_speakers:
        raise ValueError(
            "avmnist: option 'holdout_speakers' needs split_scheme 'shuffled' (the classic split "
            f"cuts recordings by take, not speaker), got {list(holdout_speakers)}"
        )
    if audio_noise not in ("white", "esc50"):
        raise ValueError(
            f"avmnist: option 'audio_noise' must be 'white' or 'esc50', got {audio_noise!r}"
        )
    if not 0 < classic_energy_kept < 1:
        raise ValueError(
            f"avmnist: option 'classic_energy_kept' must be in (0, 1), got {classic_energy_kept}"
        )
    if max_seconds is not None and not (
        isinstance(max_seconds, (int, float)) and not isinstance(max_seconds, bool)
        and 0 < max_seconds < math.inf and round(max_seconds * FSDD_RATE) >= 1
    ):
        raise ValueError(
            f"avmnist: option 'max_seconds' must be a positive finite number of seconds (at "
            f"least one sample at {FSDD_RATE} Hz) or None, got {max_seconds!r}"
        )
    return None if max_seconds is None else round(float(max_seconds) * FSDD_RATE)


def _split_rows(src: Mapping[str, Any], extras: Mapping[str, Any], split: str, split_scheme: str,
                seed: int, holdout_speakers: Sequence[str]) -> tuple[dict[str, Any], Any]:
    """MNIST image rows of every split, and the FSDD recording rows of ``split``."""
    if split_scheme == "classic":
        return (classic_image_rows(len(src["image_labels"])),
                classic_recordings(extras["names"])[split])
    return (partition(len(src["image_labels"]), split_generator(seed, "all", 1)),
            split_recordings(extras["speakers"], seed, tuple(holdout_speakers))[split])


def _places(root: Path | str | None, cache_dir: str | Path | None) -> tuple[Path, Path]:
    """``(cache dir, data root)`` of the options (data root default: ``<cache>/data``)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache, Path(root) if root is not None else cache / "data"


@register_identity("avmnist")
def avmnist_identity(
    root: Path | None,
    *,
    manifest: str | Path | Mapping[str, str] | None = None,
    speakers: Sequence[str] | None = None,
    variant: str = "paper000",
    audio_noise: str = "white",
    cache_dir: str | Path | None = None,
    **_other: Any,
) -> str:
    """``meta["data_id"]`` of the dataset these options build, without reading any file
    but the manifest (the other options do not change the source list)."""
    _, data_root = _places(root, cache_dir)
    return data_identity(data_root, resolve_manifest(manifest), speakers=speakers,
                         esc50=variant == "classic" or audio_noise == "esc50")
