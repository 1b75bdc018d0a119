"""Precomputed transforms: run a dataset's per-batch ``transform`` once, when no noise precedes it.

A dataset such as AV-MNIST stores raw waveforms ``(R, L)`` and featurizes every batch
(``transform``: waveform -> ``(B, 1, 201, T)`` spectrogram) because noise must be added to the raw
signal first. When a split is used clean (validation every epoch, training without
``train_snr`` on that modality) the same spectrograms would be recomputed every epoch; this
module computes them once per *stored row* (so row sharing via ``index`` keeps memory small) and
returns a dataset without ``transform`` whose batches are identical.

``fit`` does this when ``TrainConfig.precompute_transforms`` is on. (Not to be confused with
:class:`fuselab.data.FeatureCache`, which stores a frozen encoder's *outputs* on disk.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import Tensor

from fuselab.data.dataset import MultimodalDataset

#: Rows featurized per call, bounding the temporary memory of the transform.
CHUNK = 256


def _featurize(data: MultimodalDataset, name: str) -> Tensor:
    assert data.transform is not None
    x = data.modalities[name]
    parts = [data.transform({name: x[i : i + CHUNK]})[name] for i in range(0, x.shape[0], CHUNK)]
    return torch.cat(parts) if parts else x


def precompute_transform(
    data: MultimodalDataset,
    snr: Mapping[str, float | None] | None = None,
    max_bytes: int = 2 << 30,
) -> MultimodalDataset:
    """``data`` with its ``transform`` precomputed, or ``data`` itself when that is not possible.

    Not possible (returned unchanged): no ``transform``; a modality is noised (``snr`` value not
    ``None``), since noise must come before the transform; the cached tensors would exceed
    ``max_bytes``; or the transform is not row-wise (checked: cached rows must equal
    ``data.prepare`` of the first batch).
    """
    if data.transform is None or len(data) == 0:
        return data
    if any(v is not None for v in (snr or {}).values()):
        return data
    try:
        probe = {m: data.transform({m: x[:1]})[m] for m, x in data.modalities.items()}
    except Exception:
        # A transform that needs every modality at once cannot run per modality: no cache.
        return data
    size = sum(probe[m][0].numel() * probe[m].element_size() * x.shape[0] for m, x in data.modalities.items())
    if size > max_bytes:
        return data
    # Modalities the transform passes through unchanged are kept as they are.
    cached = {
        m: x if torch.equal(probe[m], x[:1]) else _featurize(data, m)
        for m, x in data.modalities.items()
    }
    out = dataclasses.replace(data, modalities=cached, transform=None)
    # The cache is only valid when the transform works row by row: compare one real batch.
    n = min(len(data), 8)
    want, _ = next(data.batches(n))
    got, _ = next(out.batches(n))
    for m in want:
        if want[m].shape != got[m].shape or not torch.allclose(want[m], got[m], rtol=1e-4, atol=1e-5):
            return data
    return out
