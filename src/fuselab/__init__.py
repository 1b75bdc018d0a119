"""fuselab: where and how to fuse modalities, as reproducible studies.

Subpackages are imported lazily so that ``import fuselab`` stays cheap::

    import fuselab as fl
    op = fl.fusion.build("lowrank", in_dims={"image": 64, "audio": 32}, out_dim=128, rank=4)
"""

from __future__ import annotations

import importlib
from typing import Any

from fuselab._registry import UnknownNameError

__version__ = "0.1.0"

_SUBPACKAGES = ("fusion", "models", "data", "train", "evaluate", "study", "report", "cli")

__all__ = ["UnknownNameError", "__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"fuselab.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'fuselab' has no attribute {name!r}")
