"""What the machine offers a study, checked before any run: the device and the memory a model needs.

* ``execution.device = "cuda"`` without a usable CUDA device fails every run, so it is refused
  up front (local backend; on Ray the GPUs live on the cluster's nodes, not the driver).
* A model is first built on torch's ``meta`` device (shapes only, no memory), so a variant whose
  weights, gradients and optimizer state (about 4x the weights) cannot fit in the memory this
  process may use is refused with its size, instead of failing (or being OOM-killed) later.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuselab.study.errors import ConfigError

#: Weights + gradients + two Adam moments: the training footprint of the parameters alone.
TRAINING_COPIES = 4


def check_device(device: str) -> None:
    """``ConfigError`` at ``execution.device`` when the device is not on this machine."""
    from fuselab.device import DeviceError, resolve_device

    try:
        resolve_device(device)
    except DeviceError as e:
        raise ConfigError("execution.device", str(e)) from None


def available_memory() -> int | None:
    """Bytes this process may still allocate: the least of free RAM, the cgroup limit and the
    address-space limit (``None`` when none is known)."""
    known: list[int] = []
    meminfo = _read("/proc/meminfo")
    for line in (meminfo or "").splitlines():
        if line.startswith("MemAvailable:"):
            known.append(int(line.split()[1]) * 1024)
    limit, used = _read("/sys/fs/cgroup/memory.max"), _read("/sys/fs/cgroup/memory.current")
    if limit and used and limit.strip().isdigit() and used.strip().isdigit():
        known.append(int(limit) - int(used))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        known.append(soft)
    return min(known) if known else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_model_size(build: Callable[[], Any], where: str) -> None:
    """Build with ``build()`` on the meta device and refuse a model too large to train here.

    A builder that cannot run on the meta device is not measured (the real build follows)."""
    import torch

    try:
        with torch.device("meta"):
            model = build()
        tensors = [*model.parameters(), *model.buffers()]
        size = sum(t.numel() * t.element_size() for t in tensors)
        params = sum(p.numel() for p in model.parameters())
    except Exception:
        return
    free = available_memory()
    if free is not None and TRAINING_COPIES * size > free:
        raise ConfigError(where, f"the model has {params:,} parameters ({human_bytes(size)}); "
                                 f"training it needs about {human_bytes(TRAINING_COPIES * size)}"
                                 f", more than the {human_bytes(free)} of memory available")
