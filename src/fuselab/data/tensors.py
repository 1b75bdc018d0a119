"""User data as named tensors: ``load("tensors", split=..., data=..., labels=...)`` or a file.

Sources, in order of precedence:

* in memory: ``data={"eeg": (N, ...), "video": (N, ...)}`` and ``labels=(N, ...)``, arrays or
  tensors;
* a file ``path=`` (``.npz`` read with ``allow_pickle=False``, or ``.safetensors``) whose keys are
  modality names plus ``"labels"``, or ``"<split>/<name>"`` for files that already hold splits.

Data without explicit splits is shuffled with ``seed`` and cut 8:1:1 (``fractions=``). Labels are
int64 classes for ``task="classification"`` (``num_classes`` inferred), float for regression::

    ds = fuselab.data.load("tensors", split="train", data={"a": a, "b": b}, labels=y)
    ds.modalities["a"].shape   # (0.8 N, ...)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file
from torch import Tensor

from fuselab.data.dataset import MultimodalDataset
from fuselab.data.registry import register
from fuselab.data.splits import SPLITS, check_split, partition, split_generator


def _tensor(x: Any, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(
                f"tensors: {what} is an object array; only numeric arrays are supported"
            )
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(
        f"tensors: {what} must be a numpy array or torch Tensor, got {type(x).__name__}"
    )


def read_file(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a ``.npz`` (no pickle) or ``.safetensors`` file."""
    if not path.is_file():
        raise FileNotFoundError(f"tensors: no file at {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if path.suffix == ".safetensors":
        return load_file(str(path))
    raise ValueError(
        f"tensors: unsupported file type {path.suffix!r} for {path}; use .npz or .safetensors"
    )


@register("tensors")
def build_tensors(
    split: str,
    root: Path | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    labels: Any = None,
    path: str | Path | None = None,
    task: str = "classification",
    num_classes: int | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    name: str = "tensors",
) -> MultimodalDataset:
    """Build split ``split`` of user tensors (see the module docstring).

    Options: ``data`` + ``labels`` or ``path`` (relative paths resolve against ``root``),
    ``task``, ``num_classes``, ``fractions``, ``seed``, ``name``.
    """
    check_split(split, name)
    if data is None:
        if path is None:
            raise ValueError(
                "tensors: give data= (a dict of arrays) and labels=, or path= to a .npz/.safetensors file"
            )
        file = Path(path)
        if not file.is_absolute() and root is not None:
            file = Path(root) / file
        flat = read_file(file)
        if any("/" in k for k in flat):
            part = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(f"{split}/")}
            if not part:
                raise ValueError(
                    f"tensors: {file} has split keys but none for {split!r} (keys like '{split}/<name>')"
                )
            return _build(part, split, task, num_classes, name, None, seed, file)
        data = flat
    elif labels is not None:
        data = {**data, "labels": labels}
    return _build(dict(data), split, task, num_classes, name, tuple(fractions), seed, path)


def _build(
    arrays: dict[str, Any],
    split: str,
    task: str,
    num_classes: int | None,
    name: str,
    fractions: tuple[float, ...] | None,
    seed: int,
    origin: Any,
) -> MultimodalDataset:
    if "labels" not in arrays:
        raise ValueError(
            f"tensors: no 'labels' given (source: {origin or 'data='}); keys: {sorted(arrays)}"
        )
    y = _tensor(arrays.pop("labels"), "labels")
    if not arrays:
        raise ValueError("tensors: at least one modality besides 'labels' is needed")
    mods = {m: _tensor(v, f"modality {m!r}") for m, v in arrays.items()}
    for m, x in mods.items():
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"tensors: modality {m!r} has {x.shape[0]} samples, labels have {y.shape[0]}"
            )
        if x.is_floating_point() and x.dtype != torch.float32:
            mods[m] = x.float()
    if task == "classification":
        if y.is_floating_point() and not torch.equal(y, y.round()):
            raise TypeError(
                "tensors: classification labels must be integers; use task='regression' for real values"
            )
        y = y.long()
    elif y.dtype != torch.float32 and task == "regression":
        y = y.float()
    if fractions is not None:
        idx = (
            partition(int(y.shape[0]), split_generator(seed, "all", 51), fractions)[split]
            .sort()
            .values
        )
        mods = {m: x[idx] for m, x in mods.items()}
        y_full, y = y, y[idx]
        if task == "classification" and num_classes is None and len(y_full):
            num_classes = int(y_full.max()) + 1  # from all splits, so every split agrees
    return MultimodalDataset(
        modalities=mods,
        labels=y,
        task=task,
        num_classes=num_classes,
        name=name,
        meta={"source": str(origin) if origin is not None else "memory", "splits": SPLITS},
    )
