"""Deprecated module (one release): moved to :mod:`fuselab.data.precompute`.

``cache_features`` is now :func:`fuselab.data.precompute_transform`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from fuselab.data.dataset import MultimodalDataset
from fuselab.data.precompute import CHUNK, precompute_transform  # noqa: F401  (old import path)


def cache_features(
    data: MultimodalDataset,
    snr: Mapping[str, float | None] | None = None,
    max_bytes: int = 2 << 30,
) -> MultimodalDataset:
    """Deprecated alias of :func:`fuselab.data.precompute_transform`."""
    warnings.warn("fuselab.train.features.cache_features is deprecated; use "
                  "fuselab.data.precompute_transform", DeprecationWarning, stacklevel=2)
    return precompute_transform(data, snr, max_bytes)
