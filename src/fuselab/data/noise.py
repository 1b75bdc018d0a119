"""White Gaussian noise at a requested signal-to-noise ratio, vectorised over a batch.

Here SNR is a power ratio, ``SNR = P_signal / P_noise``, linear (paper 000 uses linear values
0.125 .. 2 but does not say whether they are power or amplitude ratios: fuselab's default is
power, the usual meaning of SNR; :func:`power_ratio` converts an amplitude ratio
``RMS_signal / RMS_noise``, i.e. noise variance ``P_signal / snr**2``). Pass ``snr_db=`` for
decibels (``SNR = 10 ** (snr_db / 10)``). The noise power is set per sample from that sample's
own signal power ``P_signal = mean(x_i ** 2)`` over all non-batch dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def snr_from_db(snr_db: float) -> float:
    """Linear power ratio of ``snr_db`` decibels; ``ValueError`` when it is not a finite positive
    float (|snr_db| beyond about 3000 dB overflows or underflows)."""
    try:
        ratio = 10.0 ** (float(snr_db) / 10.0)
    except OverflowError:
        ratio = math.inf
    if not math.isfinite(ratio) or ratio <= 0:
        raise ValueError(
            f"snr_db must give a finite positive power ratio 10 ** (snr_db / 10), got {snr_db!r}"
        )
    return ratio


def check_snr(snr: float, what: str = "snr") -> float:
    """Return ``snr`` as float; ``ValueError`` naming ``what`` unless it is finite and > 0."""
    value = float(snr)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite positive power ratio (linear), got {snr!r}")
    return value


#: How a linear SNR value is read: ``P_signal / P_noise`` or ``RMS_signal / RMS_noise``.
SNR_KINDS = ("power", "amplitude")


def check_snr_kind(kind: str, what: str = "snr_kind") -> str:
    """``kind`` if it is one of :data:`SNR_KINDS`, else ``ValueError`` naming ``what``."""
    if kind not in SNR_KINDS:
        raise ValueError(f"{what} must be one of {list(SNR_KINDS)}, got {kind!r}")
    return kind


def power_ratio(snr: float, kind: str = "power") -> float:
    """The power ratio ``P_signal / P_noise`` of a linear ``snr`` read as a ``kind`` ratio.

    ``"power"``: ``snr`` itself (noise variance ``P / snr``); ``"amplitude"``: ``snr ** 2``
    (``snr = RMS_signal / RMS_noise``, noise variance ``P / snr ** 2``).
    """
    value = check_snr(snr)
    return value if check_snr_kind(kind) == "power" else value * value


def randn_for(x: Tensor, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Standard normal ``shape`` in ``x``'s dtype on ``x``'s device, drawn from ``generator``.

    Drawn on the generator's own device and moved, so a CPU generator can seed noise for a GPU
    batch (the same generator state then gives the same noise on every device).
    """
    device = generator.device if generator is not None else x.device
    return torch.randn(shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


def add_white_noise(
    x: Tensor,
    snr: float | None = None,
    generator: torch.Generator | None = None,
    *,
    snr_db: float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Return ``x`` plus white Gaussian noise at signal-to-noise ratio ``snr`` per sample.

    Args:
        x: ``(B, *shape)`` floating tensor; dimension 0 indexes samples.
        snr: linear power ratio ``P_signal / P_noise`` (> 0). Exactly one of ``snr``/``snr_db``.
        generator: seeds the noise; the same generator state gives the same noise.
        snr_db: the ratio in decibels instead.
        mask: optional ``x``-shaped 0/1 tensor of valid positions (e.g. the unpadded part of a
            front-zero-padded waveform): signal power is measured over, and noise is added to,
            valid positions only.

    Returns:
        ``(B, *shape)``; for each sample ``mean(noise ** 2) ≈ mean(x ** 2) / snr``.
    """
    if (snr is None) == (snr_db is None):
        raise ValueError("add_white_noise: give exactly one of snr (linear) or snr_db (decibels)")
    ratio = check_snr(snr if snr is not None else snr_from_db(float(snr_db)), "snr")  # type: ignore[arg-type]
    if not x.is_floating_point():
        raise TypeError(f"add_white_noise: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 1 or x.shape[0] == 0:
        return x
    dims = tuple(range(1, x.dim()))
    if mask is None:
        power = x.pow(2).mean(dim=dims, keepdim=True) if dims else x.pow(2)
    else:
        if mask.shape != x.shape:
            raise ValueError(
                f"add_white_noise: mask shape {tuple(mask.shape)} != x shape {tuple(x.shape)}"
            )
        count = mask.sum(dim=dims, keepdim=True).clamp_min(1)
        power = (x.pow(2) * mask).sum(dim=dims, keepdim=True) / count
    noise = randn_for(x, tuple(x.shape), generator)
    if mask is not None:
        noise = noise * mask
    return x + noise * torch.sqrt(power / ratio)
