"""White and ESC-50 noise at a requested SNR (paper 000's linear power ratio)."""

from __future__ import annotations

import math

import pytest
import torch

import fuselab.data as fd
from fuselab.data.esc50 import add_clip_noise


def _snr(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    return clean.pow(2).flatten(1).mean(1) / (noisy - clean).pow(2).flatten(1).mean(1)


@pytest.mark.parametrize("snr", [0.125, 0.5, 2.0])
def test_white_noise_power_follows_each_samples_own_signal(snr, gen):
    x = torch.randn(16, 1, 64, 64) * torch.linspace(0.1, 5, 16)[:, None, None, None]
    measured = _snr(x, fd.add_white_noise(x, snr, gen))
    assert torch.allclose(measured, torch.full_like(measured, snr), rtol=0.05)


def test_snr_db_is_the_same_ratio_in_decibels():
    x = torch.randn(4, 1000)
    a = fd.add_white_noise(x, snr_db=3.0, generator=torch.Generator().manual_seed(0))
    b = fd.add_white_noise(x, 10**0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert math.isclose(fd.snr_from_db(-10), 0.1)
    with pytest.raises(ValueError, match="exactly one"):
        fd.add_white_noise(x, 1.0, snr_db=0.0)


def test_mask_restricts_power_and_noise_to_valid_positions(gen):
    x = torch.zeros(8, 4000)
    x[:, 1000:] = torch.randn(8, 3000)
    mask = (torch.arange(4000) >= 1000).float().expand(8, -1).contiguous()
    y = fd.add_white_noise(x, 0.5, gen, mask=mask)
    assert torch.equal(y[:, :1000], x[:, :1000])
    assert torch.allclose(_snr(x[:, 1000:], y[:, 1000:]), torch.full((8,), 0.5), rtol=0.1)
    with pytest.raises(ValueError, match="mask shape"):
        fd.add_white_noise(x, 0.5, gen, mask=mask[:, :10])


def test_noise_is_seeded_and_rejects_integer_tensors():
    x = torch.rand(3, 5)
    a = fd.add_white_noise(x, 1.0, torch.Generator().manual_seed(7))
    b = fd.add_white_noise(x, 1.0, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    with pytest.raises(TypeError, match="floating-point"):
        fd.add_white_noise(torch.ones(3, 5, dtype=torch.int64), 1.0)


def test_clip_noise_hits_the_requested_snr_on_the_valid_part(gen):
    clips = torch.randn(5, 3000) * torch.linspace(0.5, 3, 5)[:, None]
    x = torch.zeros(6, 1000)
    x[:, 200:] = torch.randn(6, 800)
    mask = (x != 0).float()
    y = add_clip_noise(x, 0.25, clips, gen, mask)
    assert torch.equal(y[:, :200], x[:, :200])
    assert torch.allclose(_snr(x[:, 200:], y[:, 200:]), torch.full((6,), 0.25), rtol=1e-4)
    with pytest.raises(ValueError, match="finite positive"):
        add_clip_noise(x, -2.0, clips, gen)


def test_silent_clip_segments_are_redrawn(gen):
    clips = torch.randn(4, 2000)
    clips[:3] = 0  # mostly digital silence, as at the end of many ESC-50 clips
    x = torch.randn(16, 500)
    y = add_clip_noise(x, 2.0, clips, gen)
    assert torch.allclose(_snr(x, y), torch.full((16,), 2.0), rtol=1e-4)
    with pytest.raises(ValueError, match="silent"):
        add_clip_noise(x, 2.0, torch.zeros(2, 2000), gen)


@pytest.mark.parametrize("snr", [0.125, 0.5, 2.0])
def test_snr_kind_power_vs_amplitude(snr):
    # front-padded waveforms (audio) and images: the same draws, scaled by sqrt(P / snr) for a
    # power ratio and by sqrt(P) / snr for an amplitude ratio -- noise variance P / snr vs P / snr^2
    wave = torch.cat([torch.zeros(8, 300), torch.randn(8, 20000) * 0.2], dim=1)
    image = torch.rand(8, 1, 28, 28)
    for x, name in ((wave, "audio"), (image, "image")):
        power, amplitude = (
            fd.AVMNISTNoise(snr_kind=kind)(x, snr, torch.Generator().manual_seed(3), name) - x
            for kind in ("power", "amplitude")
        )
        torch.testing.assert_close(amplitude, power / math.sqrt(snr))
        valid = x.flatten(1) != 0
        p_signal = (x.flatten(1).pow(2).sum(1) / valid.sum(1)).mean()
        p_amp = amplitude.flatten(1).pow(2).sum(1).div(valid.sum(1)).mean()
        assert math.isclose(p_amp / p_signal, 1 / snr**2, rel_tol=0.05)
    assert fd.power_ratio(snr, "power") == snr and fd.power_ratio(snr, "amplitude") == snr**2
    with pytest.raises(ValueError, match=r"snr_kind' must be one of \['power', 'amplitude'\], got 'db'"):
        fd.AVMNISTNoise(snr_kind="db")
