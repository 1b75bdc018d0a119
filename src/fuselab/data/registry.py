"""The dataset registry: ``load(name, split=..., **options)``, ``load_splits(name, **options)``.

A dataset builder is registered as a function ``builder(split: str, root: Path | None, **options)
-> MultimodalDataset``. All splits of one dataset built with the same options share a seed, so a
test split is never built differently from its training split.

A dataset read from files may also register an *identity* function ``(root, **options) -> str``:
a digest of the list of source files (and their checksums) the builder would read, computed
without decoding them. ``identity(name, root=..., **options)`` returns it ("" for datasets
whose options alone fix the data, e.g. the synthetic ones); a study keeps it, so a resumed study
refuses data that changed under the same config.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuselab._registry import Registry
from fuselab.data.dataset import MultimodalDataset
from fuselab.data.splits import SPLITS

DATASETS: Registry[MultimodalDataset] = Registry("dataset")
"""Dataset builders by name; ``load(name, ...)`` calls them."""
register = DATASETS.register
"""Decorator registering a dataset builder ``builder(split, root, **options)`` under a name."""
IdentityFn = Callable[..., str]
_IDENTITIES: dict[str, IdentityFn] = {}


def register_identity(name: str) -> Callable[[IdentityFn], IdentityFn]:
    """Decorator: register the identity function of dataset ``name`` (module docstring)."""

    def deco(fn: IdentityFn) -> IdentityFn:
        _IDENTITIES[name] = fn
        return fn

    return deco


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


def identity(name: str, *, root: str | Path | None = None, **options: Any) -> str:
    """Data identity of dataset ``name`` with ``options`` (module docstring); "" when it has none
    (an unknown name too: building it is what reports that)."""
    fn = _IDENTITIES.get(name)
    if fn is None:
        return ""
    root_path = Path(root) if root is not None else default_data_dir()
    return fn(root_path, **options)


def available() -> list[str]:
    """Names of every registered dataset."""
    return DATASETS.available()
