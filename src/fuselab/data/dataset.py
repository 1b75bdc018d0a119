"""The in-memory multimodal dataset every fuselab component exchanges.

A :class:`MultimodalDataset` holds whole tensors, not per-sample files, so batching is a single
index-select per modality (no per-sample Python work in training loops)::

    ds.modalities   # {"image": (N, 1, 28, 28), "audio": (N, 1, 201, T)}
    ds.labels       # (N,) int64 for classification, (N,) / (N, K) float for regression,
                    # (N, L) int64 answer token ids for generation
    for x, y in ds.batches(256, shuffle=True, generator=g):
        ...         # x: {"image": (256, 1, 28, 28), ...}, y: (256,)
    for x, y in ds.batches(256, device="cuda"):
        ...         # raw rows copied (pinned, non-blocking), then noise and transform on the GPU
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from fuselab import device as D
from fuselab.data.noise import add_white_noise

#: A per-batch featurizer, ``{name: raw batch} -> {name: model input batch}`` (e.g. waveform ->
#: spectrogram). It runs *after* noise, so noise is added to the raw signal as in paper 000.
Transform = Callable[[dict[str, Tensor]], dict[str, Tensor]]
#: A noise function ``(raw batch, snr, generator, name) -> noisy raw batch``.
NoiseFn = Callable[[Tensor, float, "torch.Generator | None", str], Tensor]


def white_noise(x: Tensor, snr: float, generator: torch.Generator | None, name: str) -> Tensor:
    """Default noise: white Gaussian noise at linear SNR ``snr`` (see :func:`add_white_noise`)."""
    return add_white_noise(x, snr, generator)


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
        index: optional ``{name: (N,) int64}``: sample ``i`` of modality ``name`` is row
            ``modalities[name][index[name][i]]``. Lets 60k pairs share 3k recordings in memory.
        transform: per-batch featurizer applied after noise (``None``: inputs are model-ready).
        noise_fn: how noise at a given SNR is added to a raw batch of one modality.
    """

    modalities: dict[str, Tensor]
    labels: Tensor
    task: str = "classification"
    num_classes: int | None = None
    source_ids: dict[str, list[Any]] | None = None
    name: str = "dataset"
    meta: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Tensor] | None = None
    transform: Transform | None = None
    noise_fn: NoiseFn = white_noise

    def __post_init__(self) -> None:
        if not self.modalities:
            raise ValueError(f"{self.name}: a dataset needs at least one modality")
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task must be one of {TASKS}, got {self.task!r}")
        n = int(self.labels.shape[0])
        index = self.index or {}
        for m in index:
            if m not in self.modalities:
                raise ValueError(f"{self.name}: index names unknown modality {m!r}")
        for m, x in self.modalities.items():
            if not isinstance(x, Tensor):
                raise TypeError(
                    f"{self.name}: modality {m!r} must be a Tensor, got {type(x).__name__}"
                )
            if m in index:
                if index[m].shape != (n,):
                    raise ValueError(
                        f"{self.name}: index[{m!r}] must have shape ({n},), got {tuple(index[m].shape)}"
                    )
                if n and (int(index[m].min()) < 0 or int(index[m].max()) >= x.shape[0]):
                    raise ValueError(
                        f"{self.name}: index[{m!r}] points outside its {x.shape[0]} rows"
                    )
            elif x.shape[0] != n:
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
                raise TypeError(
                    f"{self.name}: classification labels must be int64, got {self.labels.dtype}"
                )
            if self.num_classes is None:
                self.num_classes = int(self.labels.max().item()) + 1 if n else 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _rows(self, m: str, idx: Tensor | slice) -> Tensor:
        if self.index is not None and m in self.index:
            return self.modalities[m][self.index[m][idx]]
        return self.modalities[m][idx]

    def __getitem__(self, i: int) -> tuple[dict[str, Tensor], Tensor]:
        """Raw (un-noised, un-transformed) sample ``i``."""
        return {m: self._rows(m, torch.tensor([i]))[0] for m in self.modalities}, self.labels[i]

    @property
    def names(self) -> tuple[str, ...]:
        """Modality names in declaration order."""
        return tuple(self.modalities)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of every modality *as the model sees it* (after ``transform``)."""
        if len(self) == 0:
            return {m: tuple(x.shape[1:]) for m, x in self.modalities.items()}
        x = self.prepare({m: self._rows(m, slice(0, 1)) for m in self.modalities})
        return {m: tuple(v.shape[1:]) for m, v in x.items()}

    def materialize(self, name: str) -> Tensor:
        """The raw ``(N, ...)`` tensor of modality ``name`` (resolving ``index``)."""
        return self._rows(name, slice(None))

    def prepare(
        self,
        raw: dict[str, Tensor],
        snr: Mapping[str, float | None] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Noise (per modality, linear SNR; ``None`` = clean) then ``transform`` a raw batch."""
        out = dict(raw)
        for m, value in (snr or {}).items():
            if m not in out:
                raise ValueError(
                    f"{self.name}: SNR given for unknown modality {m!r}; modalities: {list(out)}"
                )
            if value is not None:
                out[m] = self.noise_fn(out[m], value, generator, m)
        return self.transform(out) if self.transform is not None else out

    def subset(self, index: Tensor | Sequence[int]) -> MultimodalDataset:
        """A new dataset holding the samples at ``index`` (same order; storage is shared)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        ids = None
        if self.source_ids is not None:
            pos = idx.tolist()
            ids = {m: [v[i] for i in pos] for m, v in self.source_ids.items()}
        own = self.index or {}
        return self._replace(
            modalities={m: x if m in own else x[idx] for m, x in self.modalities.items()},
            labels=self.labels[idx],
            source_ids=ids,
            index={m: own[m][idx] for m in own} or None,
        )

    def select(self, names: Sequence[str]) -> MultimodalDataset:
        """A dataset keeping only the modalities in ``names`` (for unimodal ablations)."""
        for m in names:
            if m not in self.modalities:
                raise ValueError(
                    f"{self.name}: no modality {m!r}; available: {list(self.modalities)}"
                )
        keep = list(names)
        return self._replace(
            modalities={m: self.modalities[m] for m in keep},
            source_ids=None
            if self.source_ids is None
            else {m: v for m, v in self.source_ids.items() if m in keep},
            index=None
            if self.index is None
            else ({m: v for m, v in self.index.items() if m in keep} or None),
        )

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        snr: Mapping[str, float | None] | None = None,
        noise_generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
        """Yield model-ready ``(inputs, labels)`` batches.

        One index-select per modality per batch; noise at ``snr`` (seeded by ``noise_generator``)
        and ``transform`` are applied to the whole batch at once. With ``device``, each batch's
        raw rows and labels are moved there first (:func:`fuselab.device.move`: pinned and
        non-blocking from CPU to CUDA), so noise and ``transform`` run on that device; the noise
        functions draw on ``noise_generator``'s own device and move the draws.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        target = None if device is None else torch.device(device)
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            sel: Tensor | slice = (
                slice(start, min(start + batch_size, n))
                if order is None
                else order[start : start + batch_size]
            )
            raw = {m: self._rows(m, sel) for m in self.modalities}
            labels = self.labels[sel]
            if target is not None:
                raw, labels = D.move(raw, target), D.move_tensor(labels, target)
            yield self.prepare(raw, snr, noise_generator), labels

    def to(self, device: torch.device | str) -> MultimodalDataset:
        """A copy with every tensor moved to ``device``."""
        return self._replace(
            modalities={m: x.to(device) for m, x in self.modalities.items()},
            labels=self.labels.to(device),
            index=None if self.index is None else {m: v.to(device) for m, v in self.index.items()},
        )

    def _replace(self, **changes: Any) -> MultimodalDataset:
        return dataclasses.replace(self, **changes)


def check_has_modalities(
    data: Mapping[str, Tensor] | MultimodalDataset, needed: Sequence[str], who: str
) -> None:
    """``ValueError`` naming the missing modality when ``data`` lacks one that ``who`` needs."""
    have = data.names if isinstance(data, MultimodalDataset) else tuple(data)
    for m in needed:
        if m not in have:
            raise ValueError(f"{who} needs modality {m!r}, but the data has only {list(have)}")
