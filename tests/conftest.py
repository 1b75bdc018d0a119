"""Shared fixtures: the real public data in ../shared/data (or $FUSELAB_DATA), seeded generators."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    env = os.environ.get("FUSELAB_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / "mnist").is_dir() and (c / "fsdd").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real data (MNIST, FSDD, ESC-50); skips when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data not found at ../shared/data or $FUSELAB_DATA")
    return path


@pytest.fixture(scope="session")
def data_root() -> Path | None:
    """Root of the shared real data, or None when it is absent (no skip: the caller decides)."""
    return shared_data_dir()


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded CPU generator, so every test draws the same numbers."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def _few_threads():
    # Test models are tiny: intra-op threading costs more than it saves (and CI has 2 cores).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
