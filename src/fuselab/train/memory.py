"""Keep freed tensor memory in the process heap, so training steps stop page-faulting.

With glibc's default malloc every allocation above the mmap threshold (at most 32 MiB) gets fresh
pages from the kernel and returns them on free: each step of a CNN on spectrograms maps, zeroes
and unmaps its largest activations and gradients again. On the AV-MNIST LeNet (55 MB per
first-stage activation at batch 128) that is about 45 % of a plain PyTorch step. Setting
``M_MMAP_MAX = 0`` (serve every request from the heap) and a large ``M_TRIM_THRESHOLD`` (keep
freed heap memory) lets step ``n + 1`` reuse step ``n``'s pages, which is what the jemalloc /
tcmalloc preloads of PyTorch's CPU performance guide achieve, without a preload.

The setting is process-wide and permanent (glibc cannot restore its adaptive thresholds): the
process keeps its peak heap instead of returning it to the system. So fuselab applies it only
where it owns the process: the ``fuselab`` command and the study's worker processes call
:func:`fuselab._process.own_process`, and ``TrainConfig(retain_memory="auto")`` (the default)
is on there and off in anyone else's process (a notebook, a service). ``retain_memory=True``
opts in anywhere; the first application is logged once. Elsewhere (macOS, musl) it is a no-op.

Standard alternatives that leave fuselab's code out of it, set before Python starts:
``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824`` (the same two
settings), or ``LD_PRELOAD`` of jemalloc / tcmalloc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
import threading

from fuselab._process import process_owned

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP = 1 << 30  # freed memory kept before glibc trims the heap top (1 GiB)
_SETTINGS = (("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD, _KEEP), ("M_MMAP_MAX", _M_MMAP_MAX, 0))
_lock = threading.Lock()
_applied: list[bool] = []
log = logging.getLogger(__name__)


def wants_retained_heap(setting: bool | str) -> bool:
    """``TrainConfig.retain_memory`` resolved: ``"auto"`` is on only in a fuselab-owned process."""
    return process_owned() if setting == "auto" else bool(setting)


def retain_freed_memory() -> bool:
    """Apply the heap settings once per process; returns whether they are in effect."""
    with _lock:
        if not _applied:
            _applied.append(_apply())
            if _applied[0]:
                level = logging.INFO if process_owned() else logging.WARNING
                log.log(level, "fuselab: glibc malloc now keeps freed memory in this process "
                        "(mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB) until it exits; "
                        "TrainConfig(retain_memory=False) avoids it (docs/training.md)")
        return _applied[0]


def _apply() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # Every setting is attempted: a failure of one must not hide that the others took effect.
        done = {name: bool(libc.mallopt(param, value)) for name, param, value in _SETTINGS}
    except (OSError, AttributeError):
        return False
    if not all(done.values()):
        applied = [k for k, ok in done.items() if ok]
        log.warning("fuselab: mallopt applied only %s of %s; freed memory may still go back to "
                    "the system", applied or "none", list(done))
    return all(done.values())
