"""Deterministic split helpers shared by every builder: sizes, per-split generators, 8:1:1 cuts.

Every builder draws split ``s`` from its own generator seeded by ``(seed, s)``, so building the
test split alone gives exactly the test split of :func:`fuselab.data.load_splits`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

SPLITS = ("train", "val", "test")
"""The split names every dataset builds."""


def check_split(split: str, dataset: str) -> int:
    """Position of ``split`` in :data:`SPLITS`; ``ValueError`` naming the dataset otherwise."""
    if split not in SPLITS:
        raise ValueError(f"{dataset}: unknown split {split!r}; expected one of {SPLITS}")
    return SPLITS.index(split)


def split_size(
    sizes: int | Mapping[str, int] | None, split: str, defaults: Mapping[str, int], dataset: str
) -> int:
    """Number of samples of ``split``: ``sizes`` as an int (every split) or per-split mapping."""
    check_split(split, dataset)
    if sizes is None:
        n = defaults[split]
    elif isinstance(sizes, Mapping):
        unknown = set(sizes) - set(SPLITS)
        if unknown:
            raise ValueError(
                f"{dataset}: option 'sizes' has unknown split(s) {sorted(unknown)}; "
                f"expected keys among {SPLITS}"
            )
        n = int(sizes.get(split, defaults[split]))
    else:
        n = int(sizes)
    if n <= 0:
        raise ValueError(f"{dataset}: option 'sizes' must be positive for split {split!r}, got {n}")
    return n


def split_generator(seed: int, split: str, salt: int = 0) -> torch.Generator:
    """A CPU generator private to ``(seed, split, salt)``."""
    offset = SPLITS.index(split) + 1 if split in SPLITS else 0
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + offset * 7919 + salt)


def partition(n: int, generator: torch.Generator, fractions=(0.8, 0.1, 0.1)) -> dict[str, Tensor]:
    """Shuffle ``range(n)`` and cut it ``fractions`` (8:1:1) into ``{"train","val","test"}`` indices.

    Cut points are rounded so the three parts always cover ``range(n)`` exactly once.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    order = torch.randperm(n, generator=generator)
    a = round(n * fractions[0])
    b = a + round(n * fractions[1])
    return {"train": order[:a], "val": order[a:b], "test": order[b:]}
