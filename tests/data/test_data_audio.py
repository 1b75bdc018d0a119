"""Audio featurizers: spectrogram bins, MFCC matrices, padding, resampling (known numbers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fuselab.data.audio import (
    AudioFeatures,
    dct_matrix,
    log_spectrogram,
    mel_filterbank,
    pad_front,
    power_spectrogram,
    resample,
)


def _tone(freq: float, rate: int = 8000, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(rate * seconds), dtype=torch.float32) / rate
    return torch.sin(2 * math.pi * freq * t)


def test_spectrogram_peak_is_at_the_tone_bin():
    spec = log_spectrogram(_tone(1000.0)[None])
    assert spec.shape == (1, 1, 201, 1 + (4000 - 400) // 200)
    assert int(spec[0, 0].mean(-1).argmax()) == 50  # 1000 Hz / (8000 Hz / 400) bins


def test_power_spectrogram_is_torchaudios_default_spectrogram():
    # torchaudio.transforms.Spectrogram(n_fft=400): periodic Hann window of 400, hop 200,
    # center=True with reflect padding, |X|^2, no log -- checked against a plain numpy DFT
    gen = np.random.default_rng(0)
    wave = np.concatenate([np.zeros((2, 1000)), gen.normal(0, 0.1, (2, 3123))], axis=1)
    spec = power_spectrogram(torch.from_numpy(wave))
    length = wave.shape[1]
    assert spec.shape == (2, 1, 201, 1 + length // 200)
    padded = np.pad(wave, ((0, 0), (200, 200)), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    for t in (0, 7, spec.shape[-1] - 1):
        frame = padded[:, t * 200 : t * 200 + 400] * window
        expected = np.abs(np.fft.rfft(frame, axis=-1)) ** 2
        np.testing.assert_allclose(spec[:, 0, :, t].numpy(), expected, rtol=1e-6, atol=1e-9)
    assert not spec[:, :, :, :4].any()  # frames inside the front padding stay exactly 0
    feats = AudioFeatures(spectrogram="power")({"audio": torch.from_numpy(wave)})
    assert torch.equal(feats["audio"], spec)
    with pytest.raises(ValueError, match=r"'spectrogram' must be one of \['log1p', 'power'\]"):
        AudioFeatures(spectrogram="mel")


def test_mfcc_matrices():
    dct = dct_matrix(20, 20)
    assert torch.allclose(dct @ dct.T, torch.eye(20), atol=1e-5)
    fb = mel_filterbank(10, 8000)
    assert fb.shape == (10, 201) and float(fb.max()) <= 1 + 1e-6
    peaks = fb.argmax(dim=1)
    assert torch.all(peaks[1:] > peaks[:-1])  # centres rise with the mel scale
    out = AudioFeatures("mfcc", 8000, n_mfcc=13)(
        {"audio": _tone(500.0)[None], "image": torch.ones(1)}
    )
    assert out["audio"].shape == (1, 1, 13, 19) and torch.equal(out["image"], torch.ones(1))
    with pytest.raises(ValueError, match="n_mfcc"):
        AudioFeatures("mfcc", n_mfcc=80)


def test_pad_front_aligns_ends_and_crops_to_the_onset():
    padded, kept = pad_front([np.ones(3, np.float32), np.arange(6, dtype=np.float32)], length=5)
    assert padded.tolist() == [[0, 0, 1, 1, 1], [0, 1, 2, 3, 4]] and kept.tolist() == [3, 5]


def test_resample_keeps_the_frequency():
    x = _tone(440.0, 44100, 1.0).numpy()
    y = resample(x, 44100, 8000)
    assert len(y) == 8000
    assert int(np.abs(np.fft.rfft(y)).argmax()) == 440  # 1 s at 8 kHz: 1 Hz per bin
