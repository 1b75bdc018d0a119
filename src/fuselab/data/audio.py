"""Audio featurizers for AV-MNIST: front zero-padding, spectrograms, MFCC, resampling.

Paper 000 (appendix A.3) gives only "400 samples, 201 frequency bins, a stride of 200 samples".
Two spectrograms share those numbers (``torch.stft``, 400-sample periodic Hann window,
``n_fft = 400`` -> 201 bins, hop 200); which one the paper used it does not say:

* ``"power"``: ``|STFT|^2`` with ``center=True`` (reflect padding), no log -- exactly the
  defaults of ``torchaudio.transforms.Spectrogram(n_fft=400)`` (``win_length = n_fft``,
  ``hop_length = n_fft // 2 = 200``, ``power = 2``), the most literal reading of the paper's
  three numbers. ``(B, L) -> (B, 1, 201, 1 + L // 200)``. Front padding stays exactly 0.
* ``"log1p"`` (fuselab's own, the library default): ``log1p(|STFT|)`` with ``center=False``
  (every frame inside the waveform). ``(B, L) -> (B, 1, 201, 1 + (L - 400) // 200)``.

Why two: with white noise at paper 000's training SNRs (0.125 .. 2) the recurrent models learn the
audio from ``"power"`` many times faster than from ``"log1p"`` (docs/models.md, "Why the audio
stream did not learn"); on clean audio ``"log1p"`` is the easier input. Neither applies a
dataset-level standardisation, so the featurizer never depends on the split.

MFCC: power spectrum of the ``center=False`` frames -> triangular mel filterbank (HTK mel scale,
0 .. sample_rate / 2) -> ``log(. + 1e-6)`` -> orthonormal DCT-II, keeping ``n_mfcc``
coefficients: ``(B, L)`` -> ``(B, 1, n_mfcc, T)``. (torchaudio is not a fuselab dependency -- it
does not install beside the pinned torch -- so the filterbank and DCT matrices are built here from
their textbook definitions and the spectrograms call ``torch.stft`` directly.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

N_FFT = 400
HOP = 200
#: ``AudioFeatures.spectrogram`` values (module docstring).
SPECTROGRAMS = ("log1p", "power")


def pad_front(waves: Sequence[np.ndarray], length: int | None = None) -> tuple[Tensor, Tensor]:
    """Front zero-pad 1-D waveforms to a common ``length`` (default: the longest).

    Returns ``(R, length)`` float32 and the kept lengths ``(R,)``. A waveform longer than
    ``length`` keeps its first ``length`` samples (the utterance onset).
    """
    target = max(len(w) for w in waves) if length is None else int(length)
    out = torch.zeros(len(waves), target, dtype=torch.float32)
    kept = torch.zeros(len(waves), dtype=torch.int64)
    for i, w in enumerate(waves):
        w = w[:target]
        if len(w):
            out[i, target - len(w) :] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
        kept[i] = len(w)
    return out, kept


def valid_mask(wave: Tensor) -> Tensor:
    """``(B, L)`` 0/1 mask of the unpadded part of front-zero-padded waveforms.

    Everything from a row's first non-zero sample on is valid (an utterance's own leading
    exact-zero samples are counted as padding, which changes its measured power negligibly).
    """
    return (torch.cumsum(wave != 0, dim=-1) > 0).to(wave.dtype)


def _window(device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.hann_window(N_FFT, periodic=True, device=device, dtype=dtype)


def magnitude(wave: Tensor, *, center: bool = False) -> Tensor:
    """``|STFT|`` of ``(B, L)`` waveforms -> ``(B, 201, T)``.

    ``center=False``: ``T = 1 + (L - 400) // 200``, frames inside the waveform; ``center=True``:
    the waveform is reflect-padded by 200 samples at both ends, ``T = 1 + L // 200``.
    """
    if wave.dim() != 2:
        raise ValueError(f"audio: expected waveforms of shape (B, L), got {tuple(wave.shape)}")
    if wave.shape[-1] < N_FFT:
        raise ValueError(f"audio: waveforms need at least {N_FFT} samples, got {wave.shape[-1]}")
    spec = torch.stft(
        wave,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window=_window(wave.device, wave.dtype),
        center=center,
        pad_mode="reflect",
        return_complex=True,
    )
    return spec.abs()


def log_spectrogram(wave: Tensor) -> Tensor:
    """fuselab's ``"log1p"`` spectrogram ``log1p(|STFT|)``, ``center=False``:
    ``(B, L)`` -> ``(B, 1, 201, 1 + (L - 400) // 200)``."""
    return torch.log1p(magnitude(wave)).unsqueeze(1)


def power_spectrogram(wave: Tensor) -> Tensor:
    """The ``"power"`` spectrogram, ``torchaudio.transforms.Spectrogram(n_fft=400)``'s defaults:
    ``|STFT|^2``, ``center=True``, no log: ``(B, L)`` -> ``(B, 1, 201, 1 + L // 200)``."""
    return magnitude(wave, center=True).square().unsqueeze(1)


def mel_filterbank(n_mels: int, sample_rate: int, n_freqs: int = N_FFT // 2 + 1) -> Tensor:
    """``(n_mels, n_freqs)`` triangular filters, centres evenly spaced on the HTK mel scale."""

    def to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_freqs)
    edges = to_hz(np.linspace(0, to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return torch.from_numpy(np.clip(np.minimum(up, down), 0, None)).to(torch.float32)


def dct_matrix(n_mfcc: int, n_mels: int) -> Tensor:
    """``(n_mfcc, n_mels)`` orthonormal DCT-II basis."""
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    n = torch.arange(n_mels, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis.to(torch.float32)


@dataclass
class AudioFeatures:
    """Per-batch featurizer for the ``"audio"`` modality (the dataset's ``transform``).

    ``kind="spectrogram"``: ``(B, L)`` -> ``(B, 1, 201, T)``, ``spectrogram`` = ``"log1p"`` or
    ``"power"`` (module docstring); ``kind="mfcc"``: ``(B, 1, n_mfcc, T)``.
    Other modalities pass through unchanged.
    """

    kind: str = "spectrogram"
    sample_rate: int = 8000
    n_mfcc: int = 40
    n_mels: int = 40
    spectrogram: str = "log1p"
    modality: str = "audio"
    _mats: tuple[Tensor, Tensor] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("spectrogram", "mfcc"):
            raise ValueError(
                f"option 'audio_feature' must be 'spectrogram' or 'mfcc', got {self.kind!r}"
            )
        if self.spectrogram not in SPECTROGRAMS:
            raise ValueError(
                f"option 'spectrogram' must be one of {list(SPECTROGRAMS)}, got {self.spectrogram!r}"
            )
        if self.kind == "mfcc" and not 0 < self.n_mfcc <= self.n_mels:
            raise ValueError(
                f"option 'n_mfcc' must be in 1..n_mels={self.n_mels}, got {self.n_mfcc}"
            )

    def mfcc(self, wave: Tensor) -> Tensor:
        """``(B, L)`` -> ``(B, 1, n_mfcc, T)``."""
        if self._mats is None:
            self._mats = (
                mel_filterbank(self.n_mels, self.sample_rate),
                dct_matrix(self.n_mfcc, self.n_mels),
            )
        fb, dct = (m.to(wave.device, wave.dtype) for m in self._mats)
        mel = torch.einsum("mf,bft->bmt", fb, magnitude(wave).pow(2))
        return torch.einsum("cm,bmt->bct", dct, torch.log(mel + 1e-6)).unsqueeze(1)

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.modality not in batch:
            return batch
        out = dict(batch)
        wave = batch[self.modality]
        if self.kind == "mfcc":
            out[self.modality] = self.mfcc(wave)
        elif self.spectrogram == "power":
            out[self.modality] = power_spectrogram(wave)
        else:
            out[self.modality] = log_spectrogram(wave)
        return out


def resample(x: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling of a 1-D signal by FFT truncation (``torch.fft``)."""
    if orig_rate == new_rate:
        return x.astype(np.float32)
    n_new = round(len(x) * new_rate / orig_rate)
    spec = torch.fft.rfft(torch.from_numpy(x.astype(np.float64)))
    keep = n_new // 2 + 1
    out = torch.fft.irfft(spec[:keep], n=n_new) * (n_new / len(x))
    return out.numpy().astype(np.float32)
