"""What runs in a worker: one :class:`RunTask` in, one :class:`Outcome` out, never an exception.

The wrapper :func:`run_task` owns the parts every backend needs: the torch thread count, timing,
turning exceptions (NaN loss, disk full, bad config) into a failed outcome with its message, and
checkpoint atomicity: a run writes into ``checkpoints/.partial-<run_id>-<nonce>/`` and only a run
that finished has its file moved (``os.replace``) to ``checkpoints/<run_id><suffix>``, so a
half-written checkpoint is never where anything looks for one.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Event = dict[str, Any]
Reporter = Callable[[Event], None]
PARTIAL_PREFIX = ".partial-"
#: The name of a partial checkpoint folder: prefix, run id, 8-hex nonce (``run_task``).
PARTIAL_RE = re.compile(r"\.partial-[0-9a-f]{16}-[0-9a-f]{8}")


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs for one run (picklable; sent to processes and Ray tasks)."""

    run_id: str
    variant: str
    seed: int
    config: dict[str, Any]
    data_root: str | None = None
    checkpoint_dir: str | None = None
    threads: int = 1
    device: str = "cpu"
    log_dir: str | None = None
    tensorboard: bool = False
    mlflow: bool = False
    #: inputs of the run function that are not part of the run (e.g. the Optuna trial a search
    #: trial reports its epochs to, see fuselab.search.trial); plain, picklable values
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """What a run function returns: final scalars, tidy records, its checkpoint (if any)."""

    metrics: dict[str, Any]
    records: list[dict[str, Any]]
    checkpoint_path: str | None = None


@dataclass
class Outcome:
    """A finished run as the parent records it (``host``: the machine it ran on; ``node``: its
    Ray node id, ``None`` off Ray)."""

    run_id: str
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    checkpoint_path: str | None = None
    host: str | None = None
    node: str | None = None


#: ``run_fn(task, checkpoint_path, report) -> RunResult``; ``checkpoint_path`` is None when off.
RunFn = Callable[[RunTask, "Path | None", Reporter], RunResult]


def _error_text(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"disk full while saving: {e}"
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(e).__name__}: {e}{where}"


def run_task(task: RunTask, run_fn: RunFn, report: Reporter) -> Outcome:
    """Run ``task`` with ``run_fn``; always returns an :class:`Outcome`."""
    import torch

    torch.set_num_threads(task.threads)
    start = time.perf_counter()
    partial: Path | None = None
    if task.checkpoint_dir is not None:
        partial = Path(task.checkpoint_dir) / f"{PARTIAL_PREFIX}{task.run_id}-{uuid.uuid4().hex[:8]}"
        partial.mkdir(parents=True, exist_ok=True)
    report({"kind": "start", "run_id": task.run_id, "pid": os.getpid(),
            "host": socket.gethostname()})
    try:
        ckpt_in = None if partial is None else partial / "model.pt"
        result = run_fn(task, ckpt_in, report)
        final = _publish(task, result.checkpoint_path, partial)
        return Outcome(task.run_id, "done", dict(result.metrics), list(result.records), None,
                       time.perf_counter() - start, final, host=socket.gethostname())
    except Exception as e:  # a failed run is a result, not a crash of the study
        return Outcome(task.run_id, "failed", error=_error_text(e),
                       duration_s=time.perf_counter() - start, host=socket.gethostname())
    finally:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)


def _publish(task: RunTask, written: str | None, partial: Path | None) -> str | None:
    """Move a finished checkpoint from the partial dir to its final name, atomically."""
    if written is None or partial is None:
        return written
    src = Path(written)
    if not src.is_file():
        raise FileNotFoundError(f"run reported checkpoint {src}, which does not exist")
    final = Path(task.checkpoint_dir or partial.parent) / f"{task.run_id}{src.suffix or '.pt'}"
    os.replace(src, final)
    return str(final)


def clean_partials(checkpoint_dir: Path) -> int:
    """Delete leftovers of runs killed mid-save (only folders named like :data:`PARTIAL_RE`);
    returns how many were removed."""
    if not checkpoint_dir.is_dir():
        return 0
    n = 0
    for p in checkpoint_dir.iterdir():
        if PARTIAL_RE.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n
