"""Tiny late-fusion models and synthetic datasets for the training tests (seconds on 2 cores)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fuselab.data import MultimodalDataset


class TinyLate(nn.Module):
    """Two MLP encoders + concat + linear head: ``{"a": (B, Da), "b": (B, Db)} -> (B, out)``."""

    def __init__(self, dims: dict[str, int], out: int, hidden: int = 16) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, hidden), nn.ReLU()) for m, d in dims.items()}
        )
        self.head = nn.Linear(hidden * len(dims), out)
        self.modalities = tuple(dims)
        self.feature_dims = {m: hidden for m in dims}

    def unimodal_features(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: enc(inputs[m]) for m, enc in self.encoders.items()}

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        feats = self.unimodal_features(inputs)
        return self.head(torch.cat([feats[m] for m in self.modalities], dim=1))


def make_classification(
    n: int, seed: int, *, classes: int = 3, da: int = 4, db: int = 6, noise_b: bool = False,
    sep: float = 2.0, name: str = "tiny",
) -> MultimodalDataset:
    """Gaussian class clusters in "a" (and in "b" unless ``noise_b``: then "b" is pure noise)."""
    g = torch.Generator().manual_seed(seed)
    # Class means come from a fixed generator so every split shares them.
    means = torch.randn(classes, da + db, generator=torch.Generator().manual_seed(1234)) * sep
    y = torch.randint(0, classes, (n,), generator=g)
    x = means[y] + torch.randn(n, da + db, generator=g)
    b = torch.randn(n, db, generator=g) if noise_b else x[:, da:]
    return MultimodalDataset(
        {"a": x[:, :da].contiguous(), "b": b.contiguous()}, y, num_classes=classes, name=name
    )


def make_regression(n: int, seed: int, *, scale: float = 1.0) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(7, generator=torch.Generator().manual_seed(99))
    x = torch.randn(n, 7, generator=g)
    y = (x @ w) * scale / w.norm() + 0.05 * torch.randn(n, generator=g)
    return MultimodalDataset(
        {"a": x[:, :3].contiguous(), "b": x[:, 3:].contiguous()}, y, task="regression", name="reg"
    )


def tiny_model(dims: dict[str, int] | None = None, out: int = 3, seed: int = 0) -> TinyLate:
    """A freshly initialised :class:`TinyLate` (seeded, so two calls give equal weights)."""
    torch.manual_seed(seed)
    return TinyLate(dims or {"a": 4, "b": 6}, out)
