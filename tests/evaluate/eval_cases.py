"""Tiny models and datasets for the evaluation tests (real ones are built elsewhere).

* ``sign_dataset``: audio ``(N, D)`` = ``y_pm * 1`` (so ``P_signal = 1``), image ``(N, 3)`` random;
  ``SignModel`` predicts ``sign(mean(audio))`` and ignores the image, so under white noise at linear
  SNR ``s`` its accuracy is ``Phi(sqrt(s * D))`` exactly in expectation.
* ``AdditiveModel``: ``f(a, b) = g(a) + h(b)`` with random linear ``g, h``.
* ``xor_dataset`` / ``XorModel``: label = ``a XOR b`` for bits ``a, b``; the hand-built model is
  exact and purely interactive.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fuselab.data import MultimodalDataset


def sign_dataset(n: int, d: int = 4, seed: int = 0) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    audio = (2.0 * y - 1.0)[:, None].repeat(1, d)
    image = torch.randn(n, 3, generator=g)
    return MultimodalDataset({"audio": audio, "image": image}, y, num_classes=2, name="sign")


class SignModel(nn.Module):
    """``{audio: (B, D), image: (B, 3)} -> (B, 2)`` logits ``[-m, m]``, ``m = mean(audio)``."""

    modalities = ("audio", "image")

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        m = inputs["audio"].mean(1) * self.scale
        return torch.stack([-m, m], dim=1) + 0.0 * inputs["image"].sum(1, keepdim=True)


class AdditiveModel(nn.Module):
    """``f(a, b) = g(a) + h(b)``: ``{a: (B, 5), b: (B, 3)} -> (B, 4)``."""

    modalities = ("a", "b")

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.g = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4))
        self.h = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.g(inputs["a"]) + self.h(inputs["b"])


class MultiplicativeModel(nn.Module):
    """``f(a, b) = g(a) * h(b)`` (non-additive): ``{a: (B, 5), b: (B, 3)} -> (B, 4)``."""

    modalities = ("a", "b")

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.g = nn.Linear(5, 4)
        self.h = nn.Linear(3, 4)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.g(inputs["a"]) * self.h(inputs["b"])


def additive_dataset(n: int, seed: int = 0) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, 5, generator=g), torch.randn(n, 3, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return MultimodalDataset({"a": a, "b": b}, y, num_classes=4, name="additive")


def xor_dataset(n: int, seed: int = 0, jitter: float = 0.1) -> MultimodalDataset:
    """Bits ``a, b`` as ``(N, 2)`` features (bit + jitter); balanced over the four bit pairs."""
    g = torch.Generator().manual_seed(seed)
    bits = torch.arange(n) % 4
    a_bit, b_bit = (bits // 2).float(), (bits % 2).float()
    a = torch.stack([a_bit, 1 - a_bit], 1) + jitter * torch.randn(n, 2, generator=g)
    b = torch.stack([b_bit, 1 - b_bit], 1) + jitter * torch.randn(n, 2, generator=g)
    y = (a_bit != b_bit).long()
    return MultimodalDataset({"a": a, "b": b}, y, num_classes=2, name="xor")


class XorModel(nn.Module):
    """Exact XOR of the two bits: logit of class 1 is ``4 (a + b - 2ab) - 2``."""

    modalities = ("a", "b")

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        a, b = inputs["a"][:, 0], inputs["b"][:, 0]
        z = 4 * (a + b - 2 * a * b) - 2
        return torch.stack([torch.zeros_like(z), z], 1)


class MLP(nn.Module):
    """A small trainable classifier over concatenated modalities ``{m: (B, D_m)} -> (B, C)``."""

    def __init__(self, dims: dict[str, int], classes: int, hidden: int = 16) -> None:
        super().__init__()
        self.modalities = tuple(dims)
        self.net = nn.Sequential(
            nn.Linear(sum(dims.values()), hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.net(torch.cat([inputs[m] for m in self.modalities], 1))


class Late(nn.Module):
    """``P(F(G_audio(x_a), G_image(x_i)))`` with call counters; ``couple`` mixes the features."""

    modalities = ("audio", "image")

    def __init__(self, couple: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.g = nn.ModuleDict({"audio": nn.Linear(4, 6), "image": nn.Linear(3, 6)})
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(12, 2))
        self.couple = couple
        self.encoder_calls = 0
        self.forward_calls = 0

    def unimodal_features(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        self.encoder_calls += 1
        f = {m: torch.tanh(self.g[m](inputs[m])) for m in self.modalities}
        if self.couple:  # a cross-modal recalibration (like MSAF) before the late merge
            f["audio"] = f["audio"] * torch.sigmoid(f["image"])
        return f

    def fuse(self, features: dict[str, Tensor]) -> Tensor:
        return torch.cat([features["audio"], features["image"]], 1)

    def predict(self, fused: Tensor) -> Tensor:
        return self.head(fused)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        self.forward_calls += 1
        return self.predict(self.fuse(self.unimodal_features(inputs)))


def train_classifier(model: nn.Module, ds: MultimodalDataset, epochs: int = 60) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for x, y in ds.batches(64, shuffle=True, generator=g):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model.eval()
