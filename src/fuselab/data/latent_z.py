"""Latent-Z regression, paper 001 appendix "Synthetic Experiments" (equations 1-5).

    Z ~ U[-2.5, 2.5]^d                           latent, (N, d)
    W1, W2 ~ N(0, I) (D x d),  Wy ~ N(0, I) (K x d)   fixed per seed, shared by all splits
    X1 = lReLU(W1 Z) - 2 |eta| sin(W2 Z) + eps1   modality "x1", (N, D)
    X2 = sin(W2 Z) + sigma2 * eps2                modality "x2", (N, D)
    Y  = Wy Z + eps_y                             labels, (N,) if K == 1 else (N, K)

All noise terms are standard normal (``noise_std`` scales eps1 and eps_y; 1 as in the paper).
``eta`` makes X1 depend on the part of Z only X2 carries cleanly; ``sigma2`` corrupts X2. The
latent and the matrices are kept in ``meta`` (``"latent"``, ``"W1"``, ``"W2"``, ``"Wy"``) so an
analysis can check the generative equations or compute an oracle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from fuselab.data.dataset import MultimodalDataset
from fuselab.data.registry import register
from fuselab.data.splits import split_generator, split_size

DEFAULT_SIZES = {"train": 4000, "val": 1000, "test": 1000}


@register("latent_z")
def build_latent_z(
    split: str,
    root: Path | None = None,
    *,
    sizes: int | Mapping[str, int] | None = None,
    latent_dim: int = 8,
    input_dim: int = 16,
    output_dim: int = 1,
    eta: float = 0.5,
    sigma2: float = 0.5,
    noise_std: float = 1.0,
    negative_slope: float = 0.01,
    seed: int = 0,
) -> MultimodalDataset:
    """Build one split of the latent-Z regression task (no files; ``root`` is ignored).

    Options: ``sizes``, ``latent_dim`` (d), ``input_dim`` (D), ``output_dim`` (K), ``eta``,
    ``sigma2`` (>= 0), ``noise_std`` (std of eps1 and eps_y), ``negative_slope`` (lReLU), ``seed``.
    """
    n = split_size(sizes, split, DEFAULT_SIZES, "latent_z")
    for key, value in (
        ("latent_dim", latent_dim),
        ("input_dim", input_dim),
        ("output_dim", output_dim),
    ):
        if int(value) < 1:
            raise ValueError(f"latent_z: option {key!r} must be >= 1, got {value}")
    for key, fvalue in (("sigma2", sigma2), ("noise_std", noise_std)):
        if not float(fvalue) >= 0:
            raise ValueError(f"latent_z: option {key!r} must be >= 0, got {fvalue}")
    gw = torch.Generator().manual_seed(int(seed) * 1_000_003 + 17)
    w1 = torch.randn(input_dim, latent_dim, generator=gw)
    w2 = torch.randn(input_dim, latent_dim, generator=gw)
    wy = torch.randn(output_dim, latent_dim, generator=gw)
    g = split_generator(seed, split, salt=23)
    z = (torch.rand(n, latent_dim, generator=g) * 2 - 1) * 2.5
    shared = torch.sin(z @ w2.T)
    x1 = (
        F.leaky_relu(z @ w1.T, negative_slope)
        - 2 * abs(float(eta)) * shared
        + noise_std * torch.randn(n, input_dim, generator=g)
    )
    x2 = shared + float(sigma2) * torch.randn(n, input_dim, generator=g)
    y = z @ wy.T + noise_std * torch.randn(n, output_dim, generator=g)
    return MultimodalDataset(
        modalities={"x1": x1, "x2": x2},
        labels=y[:, 0] if output_dim == 1 else y,
        task="regression",
        num_classes=None,
        name="latent_z",
        meta={
            "latent": z,
            "W1": w1,
            "W2": w2,
            "Wy": wy,
            "eta": eta,
            "sigma2": sigma2,
            "seed": seed,
        },
    )
