"""ESC-50 environmental noise: clip loading (resampled to the audio rate) and SNR-controlled mixing.

The second noise kind for AV-MNIST audio (the first is white noise, :mod:`fuselab.data.noise`):
a random 5 s ESC-50 clip segment is scaled so that, per sample,
``mean(x^2 over the valid part) / mean(noise^2 over the valid part) = snr`` (linear), exactly
like :func:`~fuselab.data.noise.add_white_noise`, and added to the valid (unpadded) part only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fuselab.data.audio import resample
from fuselab.data.noise import check_snr
from fuselab.data.sources import read_wav

ESC50_RATE = 44100


def esc50_files(root: Path, manifest: dict[str, str] | None = None) -> list[str]:
    """Relative paths of the ESC-50 clips: those on disk, else those listed in the manifest."""
    folder = root / "esc50" / "audio"
    if folder.is_dir():
        found = sorted(f"esc50/audio/{p.name}" for p in folder.glob("*.wav"))
        if found:
            return found
    return sorted(
        r for r in (manifest or {}) if r.startswith("esc50/audio/") and r.endswith(".wav")
    )


def load_clips(paths: list[Path], rate: int) -> Tensor:
    """``(C, L)`` float32 clips resampled from 44.1 kHz to ``rate``, cropped to the shortest."""
    if not paths:
        raise ValueError(
            "ESC-50 noise requested but no ESC-50 clips were found (esc50/audio/*.wav)"
        )
    clips = [resample(read_wav(p, ESC50_RATE)[0], ESC50_RATE, rate) for p in paths]
    n = min(len(c) for c in clips)
    return torch.from_numpy(np.stack([c[:n] for c in clips]))


def add_clip_noise(
    x: Tensor,
    snr: float,
    clips: Tensor,
    generator: torch.Generator | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Add a random segment of a random clip to each row of ``x`` ``(B, L)`` at linear ``snr``.

    ``clips`` is ``(C, Lc)``; clips shorter than ``L`` are tiled. ``mask`` ``(B, L)`` marks the
    valid samples (power is measured and noise added there only).
    """
    ratio = check_snr(snr, "snr")
    if x.dim() != 2:
        raise ValueError(f"add_clip_noise: expected (B, L) waveforms, got {tuple(x.shape)}")
    b, length = x.shape
    if b == 0:
        return x
    if clips.shape[1] < length:
        clips = clips.repeat(1, -(-length // clips.shape[1]))
    m = torch.ones_like(x) if mask is None else mask
    count = m.sum(dim=1, keepdim=True).clamp_min(1)
    p_signal = (x.pow(2) * m).sum(dim=1, keepdim=True) / count
    source = clips.to(dtype=x.dtype, device="cpu")
    noise = torch.zeros_like(x)
    p_noise = torch.zeros_like(p_signal)
    # Many ESC-50 clips end in digital silence: a segment that is (nearly) silent over a row's
    # valid part cannot be scaled to the SNR, so it is redrawn.
    todo = torch.arange(b, device=x.device)
    rng_device = generator.device if generator is not None else torch.device("cpu")
    for _ in range(20):
        k = len(todo)
        which = torch.randint(0, source.shape[0], (k,), generator=generator, device=rng_device)
        start = torch.rand(k, generator=generator, device=rng_device) * (
            source.shape[1] - length + 1
        )
        pos = start.long().cpu()[:, None] + torch.arange(length)[None, :]
        seg = source[which.cpu()[:, None], pos].to(x.device) * m[todo]
        power = seg.pow(2).sum(dim=1, keepdim=True) / count[todo]
        noise[todo], p_noise[todo] = seg, power
        todo = todo[(power[:, 0] < 1e-7) & (p_signal[todo, 0] > 0)]
        if len(todo) == 0:
            break
    else:
        raise ValueError(
            "add_clip_noise: could not find non-silent noise segments; are the clips silent?"
        )
    return x + noise * torch.sqrt(p_signal / (ratio * p_noise.clamp_min(1e-12)))
