"""CMU-MOSI / CMU-MOSEI in the standard aligned layout (MulT, MultiBench ``mosi_data.pkl``).

The file holds ``{"train" | "valid" | "test": {"text": (N, T, Dt), "audio": (N, T, Da),
"vision": (N, T, Dv), "labels": (N, 1, 1) sentiment in [-3, 3], "id": (N, ...) optional}}``.
``load("mosi", root=..., split="val", path=..., trust_pickle=True)`` returns

    modalities  {"text": (N, T, Dt), "audio": (N, T, Da), "vision": (N, T, Dv)} float32
    labels      (N,) float sentiment (``label_mode="regression"``), or int64 classes
                (``"binary"``: sentiment > 0, samples with sentiment exactly 0 dropped, the
                Acc-2 convention of :func:`fuselab.train.metrics.acc2`; ``"binary_nonneg"``:
                sentiment >= 0, every sample kept; ``"7class"``: round(clip(y, -3, 3)) + 3)
    source_ids  {modality: [segment id]} when the file has ``"id"``

Non-finite feature values (the COVAREP audio features contain ``-inf``) are replaced by 0.

The published files are Python pickles, and unpickling can run arbitrary code, so a ``.pkl`` is
only opened when the caller passes ``trust_pickle=True`` for a file they trust; even then a
restricted unpickler accepts nothing but numpy arrays and plain containers. The same layout as
``.npz`` (keys ``"<split>/<modality>"``, read with ``allow_pickle=False``) or ``.safetensors``
needs no such flag.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file

from fuselab.data.dataset import MultimodalDataset
from fuselab.data.registry import register
from fuselab.data.splits import check_split

MODALITIES = ("text", "audio", "vision")
FILE_SPLIT = {"train": ("train",), "val": ("valid", "val", "dev"), "test": ("test",)}
_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    *(
        (m, f)
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")
        for f in ("_reconstruct", "scalar")
    ),
    *((m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: only numpy arrays are allowed"
        )


def read_layout(path: Path, trust_pickle: bool) -> dict[str, dict[str, np.ndarray]]:
    """``{file split: {key: array}}`` from a ``.pkl`` (trusted only), ``.npz`` or ``.safetensors``."""
    if not path.is_file():
        raise FileNotFoundError(
            f"mosi: no data file at {path}; pass path= or put it at <root>/mosi/mosi_data.pkl"
        )
    if path.suffix in (".pkl", ".pickle"):
        if not trust_pickle:
            raise ValueError(
                f"mosi: {path} is a pickle, which can execute code when loaded; pass trust_pickle=True "
                "only if you trust the file (or convert it to .npz/.safetensors)"
            )
        with open(path, "rb") as f:
            data = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        if not isinstance(data, dict):
            raise ValueError(
                f"mosi: {path} holds a {type(data).__name__}, expected a dict of splits"
            )
        return data
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
    elif path.suffix == ".safetensors":
        flat = load_file(str(path))
    else:
        raise ValueError(
            f"mosi: unsupported file type {path.suffix!r} for {path}; use .pkl, .npz or .safetensors"
        )
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        split, _, name = key.partition("/")
        out.setdefault(split, {})[name] = value
    return out


LABEL_MODES = ("regression", "binary", "binary_nonneg", "7class")


def _labels(raw: np.ndarray, mode: str) -> tuple[torch.Tensor, str, int | None, torch.Tensor]:
    """``(labels, task, classes, kept rows)``; ``"binary"`` keeps the non-zero sentiments only."""
    y = torch.from_numpy(np.asarray(raw, dtype=np.float32).reshape(len(raw), -1)[:, 0].copy())
    rows = torch.arange(len(y))
    if mode == "regression":
        return y, "regression", None, rows
    if mode == "binary":
        rows = torch.nonzero(y != 0)[:, 0]
        return (y[rows] > 0).long(), "classification", 2, rows
    if mode == "binary_nonneg":
        return (y >= 0).long(), "classification", 2, rows
    if mode == "7class":
        return (torch.round(y.clamp(-3, 3)) + 3).long(), "classification", 7, rows
    raise ValueError(f"mosi: option 'label_mode' must be one of {list(LABEL_MODES)}, got {mode!r}")


@register("mosi")
@register("mosei")
def build_mosi(
    split: str,
    root: Path | None = None,
    *,
    path: str | Path | None = None,
    trust_pickle: bool = False,
    label_mode: str = "regression",
    modalities: tuple[str, ...] = MODALITIES,
) -> MultimodalDataset:
    """Build one split from an aligned MOSI/MOSEI file (see the module docstring).

    Options: ``path`` (default ``<root>/mosi/mosi_data.pkl``), ``trust_pickle``, ``label_mode``,
    ``modalities`` (a subset of ``("text", "audio", "vision")``).
    """
    check_split(split, "mosi")
    if path is None:
        if root is None:
            raise ValueError(
                "mosi: give path= (the aligned data file) or root= holding mosi/mosi_data.pkl"
            )
        path = Path(root) / "mosi" / "mosi_data.pkl"
    file = Path(path)
    data = read_layout(file, trust_pickle)
    key = next((k for k in FILE_SPLIT[split] if k in data), None)
    if key is None:
        raise ValueError(
            f"mosi: {file} has no split {split!r} (looked for keys {FILE_SPLIT[split]}; found {sorted(data)})"
        )
    part = data[key]
    missing = [m for m in (*modalities, "labels") if m not in part]
    if missing:
        raise ValueError(f"mosi: {file} split {key!r} lacks {missing}; it has {sorted(part)}")
    labels, task, classes, rows = _labels(part["labels"], label_mode)
    n = len(part["labels"])
    keep = rows.numpy()
    mods = {}
    for m in modalities:
        x = np.asarray(part[m], dtype=np.float32)
        if x.ndim != 3 or len(x) != n:
            raise ValueError(f"mosi: {file} {key}/{m} must be (N={n}, T, D), got {x.shape}")
        mods[m] = torch.from_numpy(np.nan_to_num(x[keep], nan=0.0, posinf=0.0, neginf=0.0))
    ids = None
    if "id" in part:
        raw = np.asarray(part["id"])[keep]
        names = ["/".join(map(str, r)) if raw.ndim > 1 else str(r) for r in raw]
        ids = {m: names for m in modalities}
    return MultimodalDataset(
        modalities=mods,
        labels=labels,
        task=task,
        num_classes=classes,
        source_ids=ids,
        name=file.stem,
        meta={"path": str(file), "label_mode": label_mode, "dropped_zero_labels": n - len(keep)},
    )
