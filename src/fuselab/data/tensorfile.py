"""A small on-disk cache of named tensors keyed by a hash of the config that built them.

``cached_tensors(cache_dir, kind, config, build)`` returns ``build()``'s tensors, writing them once
to ``<cache_dir>/<kind>-<sha256(config)[:20]>.safetensors`` (atomically, via a temporary file)
and memory-mapping them on later calls. String lists travel in the safetensors metadata as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

CACHE_VERSION = 1
Built = tuple[dict[str, Tensor], dict[str, Any]]


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
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
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
