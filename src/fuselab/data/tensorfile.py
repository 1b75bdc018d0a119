"""A small on-disk cache of named tensors keyed by a hash of the config that built them.

``cached_tensors(cache_dir, kind, config, build)`` returns ``build()``'s tensors, writing them once
to ``<cache_dir>/<kind>-<sha256(config)[:20]>.safetensors`` (atomically, via a temporary file)
and memory-mapping them (copy-on-write, so only the rows a split uses are ever read) on later
calls. String lists travel in the safetensors metadata as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

CACHE_VERSION = 1
Built = tuple[dict[str, Tensor], dict[str, Any]]
_DTYPES = {
    "U8": np.uint8,
    "I8": np.int8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "BOOL": np.bool_,
}


def mmap_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Memory-map a safetensors file: ``(tensors, metadata)``; ``ValueError`` if it is damaged."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n <= 0 or 8 + n > size:
            raise ValueError(f"{path}: bad safetensors header length {n}")
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out: dict[str, Tensor] = {}
    for name, info in header.items():
        start, stop = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]])
        shape = tuple(info["shape"])
        if base + stop > size or stop - start != int(np.prod(shape)) * dtype.itemsize:
            raise ValueError(f"{path}: tensor {name!r} lies outside the file (truncated?)")
        if stop == start:
            out[name] = torch.from_numpy(np.zeros(shape, dtype=dtype))
            continue
        arr = np.memmap(path, dtype=dtype, mode="c", offset=base + start, shape=shape)
        out[name] = torch.from_numpy(arr)
    return out, meta


def default_cache_dir() -> Path:
    """``$FUSELAB_CACHE`` if set, else ``~/.cache/fuselab``."""
    env = os.environ.get("FUSELAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fuselab"


def config_key(config: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config."""
    blob = json.dumps({"v": CACHE_VERSION, **config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached_tensors(
    cache_dir: Path | None, kind: str, config: Mapping[str, Any], build: Callable[[], Built]
) -> Built:
    """``(tensors, extras)`` for ``config``: read from the cache, or built and written once.

    ``extras`` must be JSON-serialisable (file names, speaker lists). ``cache_dir=None`` uses
    :func:`default_cache_dir`; a corrupt or unreadable cache file is rebuilt.
    """
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir)
    path = folder / f"{kind}-{config_key(config)}.safetensors"
    if path.is_file():
        try:
            tensors, meta = mmap_safetensors(path)
            return tensors, json.loads(meta.get("extras", "{}"))
        except Exception:  # a truncated/corrupt cache is just rebuilt, never trusted
            path.unlink(missing_ok=True)
    tensors, extras = build()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            tmp,
            metadata={
                "extras": json.dumps(extras),
                "config": json.dumps(dict(config), default=str),
            },
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return tensors, extras
