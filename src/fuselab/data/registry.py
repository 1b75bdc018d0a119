"""The dataset registry: ``load(name, split=..., **options)``, ``load_splits(name, **options)``.

A dataset builder is registered as a function ``builder(split: str, root: Path | None, **options)
-> MultimodalDataset``. All splits of one dataset built with the same options share a seed, so a
test split is never built differently from its training split.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fuselab._registry import Registry
from fuselab.data.dataset import MultimodalDataset
from fuselab.data.splits import SPLITS

DATASETS: Registry[MultimodalDataset] = Registry("dataset")
"""Dataset builders by name; ``load(name, ...)`` calls them."""
register = DATASETS.register
"""Decorator registering a dataset builder ``builder(split, root, **options)`` under a name."""


def default_data_dir() -> Path | None:
    """``$FUSELAB_DATA`` if set, else ``None`` (builders then look in their default place)."""
    env = os.environ.get("FUSELAB_DATA")
    return Path(env) if env else None


def load(
    name: str, *, root: str | Path | None = None, split: str = "train", **options: Any
) -> MultimodalDataset:
    """Build split ``split`` of dataset ``name`` (``"avmnist"``, ``"lattice"``, ...)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    root_path = Path(root) if root is not None else default_data_dir()
    return DATASETS.get(name)(split=split, root=root_path, **options)


def load_splits(
    name: str, *, root: str | Path | None = None, **options: Any
) -> dict[str, MultimodalDataset]:
    """All three splits of dataset ``name``: ``{"train": ..., "val": ..., "test": ...}``."""
    return {s: load(name, root=root, split=s, **options) for s in SPLITS}


def available() -> list[str]:
    """Names of every registered dataset."""
    return DATASETS.available()
