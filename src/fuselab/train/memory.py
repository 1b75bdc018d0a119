"""Keep freed tensor memory in the process heap, so training steps stop page-faulting.

With glibc's default malloc every allocation above the mmap threshold (at most 32 MiB) gets fresh
pages from the kernel and returns them on free: each step of a CNN on spectrograms maps, zeroes
and unmaps its largest activations and gradients again. On the AV-MNIST LeNet (55 MB per
first-stage activation at batch 128) that is about 45 % of a plain PyTorch step. Setting
``M_MMAP_MAX = 0`` (serve every request from the heap) and a large ``M_TRIM_THRESHOLD`` (keep
freed heap memory) lets step ``n + 1`` reuse step ``n``'s pages, which is what the jemalloc /
tcmalloc preloads of PyTorch's CPU performance guide achieve, without a preload.

The setting is process-wide and permanent (glibc cannot restore its adaptive thresholds): the
process keeps its peak heap instead of returning it to the system. ``fit`` applies it unless
``TrainConfig(retain_memory=False)``; elsewhere (macOS, musl) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import threading

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP = 1 << 30  # freed memory kept before glibc trims the heap top (1 GiB)
_lock = threading.Lock()
_applied: list[bool] = []


def retain_freed_memory() -> bool:
    """Apply the heap settings once per process; returns whether they are in effect."""
    with _lock:
        if not _applied:
            _applied.append(_apply())
        return _applied[0]


def _apply() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP))
    except (OSError, AttributeError):
        return False
