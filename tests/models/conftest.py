"""Tiny AV-MNIST-like shapes and configs for the staged / C-LSTM / Pro-Fusion tests."""

from __future__ import annotations

import pytest
import torch

SHAPES = {"image": (1, 12, 12), "audio": (1, 16, 8)}


@pytest.fixture
def shapes() -> dict[str, tuple[int, ...]]:
    return dict(SHAPES)


@pytest.fixture
def encoders() -> dict[str, dict]:
    """LeNets like the paper-001 presets (image 4 stages, audio 6 stages), two channels wide."""
    return {
        "image": {"preset": "avmnist_image", "channels": 2},
        "audio": {"preset": "avmnist_audio", "channels": 2},
    }


@pytest.fixture
def batch(gen) -> dict[str, torch.Tensor]:
    return {m: torch.randn(4, *s, generator=gen) for m, s in SHAPES.items()}
