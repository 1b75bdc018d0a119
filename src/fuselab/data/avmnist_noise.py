"""AV-MNIST's ``noise_fn``: noise on the unpadded part of front-padded waveforms, white on images.

Paper 000 adds noise to a recording and then front-pads it; here the recordings are stored padded,
so the noise is restricted to each row's valid part (from its first non-zero sample). The
per-sample rule is that of :func:`~fuselab.data.noise.add_white_noise`:
``mean(noise^2) = mean(x^2) / snr`` over the valid part, with ``snr`` read as ``snr_kind``
(``"amplitude"``: ``/ snr**2``; :func:`~fuselab.data.noise.power_ratio`) for images and audio
alike. ``(B, L)`` waveforms in, ``(B, L)`` out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fuselab.data.esc50 import add_clip_noise
from fuselab.data.noise import add_white_noise, check_snr_kind, power_ratio, randn_for


@dataclass
class AVMNISTNoise:
    """``noise_fn`` of AV-MNIST: masked white (or ESC-50) noise on audio, white noise on images."""

    audio_noise: str = "white"
    clips: Tensor | None = None
    snr_kind: str = "power"

    def __post_init__(self) -> None:
        check_snr_kind(self.snr_kind, "avmnist: option 'snr_kind'")

    def __call__(
        self, x: Tensor, snr: float, generator: torch.Generator | None, name: str
    ) -> Tensor:
        snr = power_ratio(snr, self.snr_kind)
        if name != "audio":
            return add_white_noise(x, snr, generator)
        # Recordings are front-padded, so every valid sample lies in the last columns from the
        # earliest onset in the batch: noise is drawn for that window only, not the padding.
        nonzero = x != 0
        length = x.shape[-1]
        first = torch.where(
            nonzero.any(dim=-1),
            nonzero.to(torch.uint8).argmax(dim=-1),
            torch.full_like(x[:, 0], length, dtype=torch.long),
        )
        start = int(first.min()) if x.shape[0] else length
        if start >= length:
            return x.clone()  # no valid sample: zero signal power means zero noise
        if self.audio_noise == "esc50":
            assert self.clips is not None
            pos = torch.arange(start, length, device=x.device)[None, :]
            mask = (pos >= first[:, None]).to(x.dtype)
            noisy = add_clip_noise(x[:, start:], snr, self.clips, generator, mask)
            return torch.cat([x[:, :start], noisy], dim=1)
        # White noise, fused: padding is exactly zero, so sum(x^2) over the row is the sum over
        # its valid part; the same per-sample power rule as add_white_noise(..., mask=valid).
        valid = (length - first).clamp_min(1).to(x.dtype)
        scale = torch.sqrt(x.pow(2).sum(dim=-1) / valid / float(snr))
        noise = randn_for(x, (x.shape[0], length - start), generator)
        noise.masked_fill_(
            torch.arange(start, length, device=x.device)[None, :] < first[:, None], 0.0
        )
        out = x.clone()
        out[:, start:].addcmul_(noise, scale[:, None])
        return out
