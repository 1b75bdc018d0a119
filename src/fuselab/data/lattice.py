"""Lattice lookup, the synthetic task of paper 001 ("Synthetic Dataset" section).

Modality ``"x1"`` ``(N, D)`` holds a fresh smooth random function per sample, sampled at the
lattice points ``t_d = d / D`` (``d = 0 .. D-1``); modality ``"x2"`` ``(N, E)`` is the sinusoidal
position embedding of a random lattice index ``l``; the label is the first non-zero digit of
``x1[l]`` (1..9), stored as class ``digit - 1`` (9 classes). Solving it needs ``x1`` read *at* the
position given by ``x2``, which a late-fusion bottleneck loses::

    ds = fuselab.data.load("lattice", split="train", sizes=4000, dim=32)
    ds.modalities["x1"].shape, ds.modalities["x2"].shape, ds.labels.shape  # (4000, 32) (4000, 32) (4000,)

The function is ``f(t) = sum_k a_k / k * sin(2 pi k t + phi_k)`` with ``a_k ~ N(0, 1)``,
``phi_k ~ U[0, 2 pi)``, ``k = 1 .. harmonics``: smooth (coefficients decay like ``1/k``) and
different for every sample, so no fixed function can be memorised. ``x1 = offset + scale * f``
(defaults 0 and 1): a zero-mean ``f`` spans decades, so its first digit is log-periodic in the
value; an offset keeping it in one decade makes the label a staircase of the value
(``docs/data.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from fuselab.data.dataset import MultimodalDataset
from fuselab.data.registry import register
from fuselab.data.splits import split_generator, split_size

DEFAULT_SIZES = {"train": 4000, "val": 1000, "test": 1000}


def position_embedding(position: Tensor, dim: int) -> Tensor:
    """Transformer sinusoidal embedding of integer positions ``(N,)`` -> ``(N, dim)``.

    Column ``2i`` is ``sin(p / 10000^(2i/dim))`` and ``2i+1`` the cosine, so every position in
    ``0 .. 10000`` gets a distinct vector.
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"lattice: option 'embed_dim' must be a positive even number, got {dim}")
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angle = position.to(torch.float64)[:, None] * freq[None, :]
    out = torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(len(position), dim)
    return out.to(torch.float32)


def first_nonzero_digit(x: Tensor) -> Tensor:
    """First non-zero decimal digit of ``|x|`` (1..9), ``(N,)`` int64; ``x`` must be non-zero.

    ``0.0372 -> 3``, ``-5.1 -> 5``. Computed in float64 and clamped so rounding at a power of
    ten can never produce 0 or 10.
    """
    a = x.to(torch.float64).abs()
    if bool((a == 0).any()):
        raise ValueError("first_nonzero_digit: x contains an exact zero, which has no such digit")
    scaled = a / torch.pow(10.0, torch.floor(torch.log10(a)))
    return torch.floor(scaled).clamp(1, 9).to(torch.int64)


def smooth_functions(n: int, dim: int, harmonics: int, generator: torch.Generator) -> Tensor:
    """``(n, dim)`` samples of ``n`` random smooth functions at ``t_d = d / dim``."""
    t = torch.arange(dim, dtype=torch.float64) / dim
    k = torch.arange(1, harmonics + 1, dtype=torch.float64)
    amp = torch.randn(n, harmonics, generator=generator, dtype=torch.float64) / k
    phase = torch.rand(n, harmonics, generator=generator, dtype=torch.float64) * 2 * math.pi
    # (n, K, D): one sinusoid per harmonic per sample, summed over harmonics.
    waves = torch.sin(2 * math.pi * k[None, :, None] * t[None, None, :] + phase[:, :, None])
    return (amp[:, :, None] * waves).sum(dim=1)


@register("lattice")
def build_lattice(
    split: str,
    root: Path | None = None,
    *,
    sizes: int | Mapping[str, int] | None = None,
    dim: int = 32,
    embed_dim: int = 32,
    harmonics: int = 8,
    scale: float = 1.0,
    offset: float = 0.0,
    seed: int = 0,
) -> MultimodalDataset:
    """Build one split of the lattice task (no files needed; ``root`` is ignored).

    Options: ``sizes`` (int or ``{"train": .., "val": .., "test": ..}``, default 4000/1000/1000),
    ``dim`` (D, lattice points), ``embed_dim`` (E, even), ``harmonics``, ``scale`` and ``offset``
    (``x1 = offset + scale * f``), ``seed``.
    """
    n = split_size(sizes, split, DEFAULT_SIZES, "lattice")
    if dim < 2:
        raise ValueError(f"lattice: option 'dim' must be >= 2, got {dim}")
    if harmonics < 1:
        raise ValueError(f"lattice: option 'harmonics' must be >= 1, got {harmonics}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"lattice: option 'scale' must be a finite number > 0, got {scale}")
    if not math.isfinite(offset):
        raise ValueError(f"lattice: option 'offset' must be a finite number, got {offset}")
    g = split_generator(seed, split, salt=11)
    x1 = offset + scale * smooth_functions(n, dim, harmonics, g)
    position = torch.randint(0, dim, (n,), generator=g)
    value = x1.gather(1, position[:, None])[:, 0]
    labels = first_nonzero_digit(value) - 1
    return MultimodalDataset(
        modalities={"x1": x1.to(torch.float32), "x2": position_embedding(position, embed_dim)},
        labels=labels,
        task="classification",
        num_classes=9,
        name="lattice",
        meta={"position": position, "class_names": [str(d) for d in range(1, 10)], "seed": seed},
    )
