"""The in-memory multimodal dataset every fuselab component exchanges.

A :class:`MultimodalDataset` holds whole tensors, not per-sample files, so batching is a single
index-select per modality (no per-sample Python work in training loops)::

    ds.modalities   # {"image": (N, 1, 28, 28), "audio": (N, 1, 201, T)}
    ds.labels       # (N,) int64 for classification, (N,) / (N, K) float for regression,
                    # (N, L) int64 answer token ids for generation
    for x, y in ds.batches(256, shuffle=True, generator=g):
        ...         # x: {"image": (256, 1, 28, 28), ...}, y: (256,)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

TASKS = ("classification", "regression", "generation")


@dataclass
class MultimodalDataset:
    """Named modality tensors sharing a first (sample) dimension, plus labels.

    Attributes:
        modalities: ``{name: (N, *shape_m)}``.
        labels: ``(N,)`` or ``(N, ...)``; int64 class indices for classification.
        task: one of ``"classification"``, ``"regression"``, ``"generation"``.
        num_classes: number of classes (classification) or vocabulary size (generation).
        source_ids: optional provenance per modality, ``{name: [id of sample 0, ...]}``.
        name: dataset name, for messages and reports.
        meta: free-form extras (e.g. the tokenizer vocabulary of a generation task).
    """

    modalities: dict[str, Tensor]
    labels: Tensor
    task: str = "classification"
    num_classes: int | None = None
    source_ids: dict[str, list[Any]] | None = None
    name: str = "dataset"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.modalities:
            raise ValueError(f"{self.name}: a dataset needs at least one modality")
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task must be one of {TASKS}, got {self.task!r}")
        n = int(self.labels.shape[0])
        for m, x in self.modalities.items():
            if not isinstance(x, Tensor):
                raise TypeError(f"{self.name}: modality {m!r} must be a Tensor, got {type(x).__name__}")
            if x.shape[0] != n:
                raise ValueError(
                    f"{self.name}: modality {m!r} has {x.shape[0]} samples, labels have {n}"
                )
        if self.source_ids is not None:
            for m, ids in self.source_ids.items():
                if len(ids) != n:
                    raise ValueError(
                        f"{self.name}: source_ids[{m!r}] has {len(ids)} entries, labels have {n}"
                    )
        if self.task == "classification":
            if self.labels.dtype != torch.int64:
                raise TypeError(f"{self.name}: classification labels must be int64, got {self.labels.dtype}")
            if self.num_classes is None:
                self.num_classes = int(self.labels.max().item()) + 1 if n else 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[dict[str, Tensor], Tensor]:
        return {m: x[i] for m, x in self.modalities.items()}, self.labels[i]

    @property
    def names(self) -> tuple[str, ...]:
        """Modality names in declaration order."""
        return tuple(self.modalities)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of every modality (without the sample dimension)."""
        return {m: tuple(x.shape[1:]) for m, x in self.modalities.items()}

    def subset(self, index: Tensor | Sequence[int]) -> MultimodalDataset:
        """A new dataset holding the samples at ``index`` (same order)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        ids = None
        if self.source_ids is not None:
            pos = idx.tolist()
            ids = {m: [v[i] for i in pos] for m, v in self.source_ids.items()}
        return MultimodalDataset(
            modalities={m: x[idx] for m, x in self.modalities.items()},
            labels=self.labels[idx],
            task=self.task,
            num_classes=self.num_classes,
            source_ids=ids,
            name=self.name,
            meta=dict(self.meta),
        )

    def select(self, names: Sequence[str]) -> MultimodalDataset:
        """A view keeping only the modalities in ``names`` (for unimodal ablations)."""
        for m in names:
            if m not in self.modalities:
                raise ValueError(f"{self.name}: no modality {m!r}; available: {list(self.modalities)}")
        return MultimodalDataset(
            modalities={m: self.modalities[m] for m in names},
            labels=self.labels,
            task=self.task,
            num_classes=self.num_classes,
            source_ids=None if self.source_ids is None else {m: self.source_ids[m] for m in names if m in self.source_ids},
            name=self.name,
            meta=dict(self.meta),
        )

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
        """Yield ``(inputs, labels)`` batches; one index-select per modality per batch."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            if order is None:
                sl = slice(start, min(start + batch_size, n))
                yield {m: x[sl] for m, x in self.modalities.items()}, self.labels[sl]
            else:
                idx = order[start : start + batch_size]
                yield {m: x[idx] for m, x in self.modalities.items()}, self.labels[idx]

    def to(self, device: torch.device | str) -> MultimodalDataset:
        """A copy with every tensor moved to ``device``."""
        return MultimodalDataset(
            modalities={m: x.to(device) for m, x in self.modalities.items()},
            labels=self.labels.to(device),
            task=self.task,
            num_classes=self.num_classes,
            source_ids=self.source_ids,
            name=self.name,
            meta=self.meta,
        )


def check_has_modalities(data: Mapping[str, Tensor] | MultimodalDataset, needed: Sequence[str], who: str) -> None:
    """``ValueError`` naming the missing modality when ``data`` lacks one that ``who`` needs."""
    have = data.names if isinstance(data, MultimodalDataset) else tuple(data)
    for m in needed:
        if m not in have:
            raise ValueError(f"{who} needs modality {m!r}, but the data has only {list(have)}")
