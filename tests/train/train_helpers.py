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


class TinyLateSplit(TinyLate):
    """TinyLate exposing the late-style ``fuse``/``predict`` pieces (docs/models.md)."""

    def fuse(self, feats: dict[str, Tensor]) -> Tensor:
        return torch.cat([feats[m] for m in self.modalities], dim=1)

    def predict(self, fused: Tensor) -> Tensor:
        return self.head(fused)


class Squares:
    """A row-wise per-batch transform (raw ``(B, D)`` -> ``(B, 1, D)`` of squares), counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        self.calls += 1
        return {m: x.pow(2).unsqueeze(1) if m == "a" else x for m, x in batch.items()}


class TinySeq2Seq(nn.Module):
    """Generation model: question tokens ``(B, Lq)`` -> answer logits ``(B, La, V)``.

    Not autoregressive (each answer position reads the pooled question), which is enough for a
    deterministic mapping task; ``generate`` is the argmax.
    """

    task = "generation"

    def __init__(self, vocab: int, answer_len: int, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.out = nn.Linear(dim, answer_len * vocab)
        self.vocab, self.answer_len = vocab, answer_len
        self.modalities = ("question",)

    def forward(self, inputs: dict[str, Tensor], labels: Tensor) -> Tensor:
        h = self.embed(inputs["question"]).mean(1)
        return self.out(torch.tanh(h)).view(-1, self.answer_len, self.vocab)

    def generate(self, inputs: dict[str, Tensor], max_len: int) -> Tensor:
        h = self.embed(inputs["question"]).mean(1)
        return self.out(torch.tanh(h)).view(-1, self.answer_len, self.vocab).argmax(-1)[:, :max_len]


def make_generation(n: int, seed: int) -> MultimodalDataset:
    """Question = one token t in 3..9 repeated; answer = [t, t + 1, EOS] or [t, EOS, PAD]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(3, 10, (n,), generator=g)
    q = t[:, None].repeat(1, 4)
    long = (t % 2 == 0)[:, None]
    a = torch.where(long, torch.stack([t, t + 1, torch.full_like(t, 2)], 1),
                    torch.stack([t, torch.full_like(t, 2), torch.zeros_like(t)], 1))
    return MultimodalDataset(
        {"question": q}, a, task="generation", num_classes=12, name="gen",
        meta={"pad_id": 0, "bos_id": 1, "eos_id": 2},
    )
