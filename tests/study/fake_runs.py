"""Stand-in run functions for runner tests (importable by spawned workers and Ray tasks).

They honour the run-function contract of fuselab.study.worker without training anything, so
the runner, store and backends are tested quickly and deterministically.
"""

from __future__ import annotations

import errno
import math
import os
import time
from pathlib import Path

from fuselab.study.worker import Reporter, RunResult, RunTask

HERE = Path(__file__).resolve().parent


def _score(task: RunTask) -> float:
    # A deterministic "accuracy" from the config, so a test can predict every metric.
    return (int(task.run_id[:4], 16) % 1000) / 1000.0


def ok_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """Reports two epochs, writes a checkpoint, returns a test record and an SNR curve.

    It sleeps ``train.sleep`` seconds, or ``$FAKE_SLEEP`` when set (which, unlike the config,
    leaves the run ids unchanged: a test can resume a slow study quickly)."""
    sleep = float(os.environ.get("FAKE_SLEEP") or task.config["train"].get("sleep", 0.0))
    for epoch in (1, 2):
        time.sleep(sleep / 2)
        report({"kind": "epoch", "run_id": task.run_id, "epoch": epoch, "epochs": 2,
                "metrics": {"loss": 1.0 / epoch}})
    if task.config["train"].get("nan"):
        raise FloatingPointError("training loss became nan at step 3 (epoch 1)")
    acc = _score(task)
    path = None
    if ckpt is not None:
        ckpt.write_bytes(b"weights-" + task.run_id.encode())
        path = str(ckpt)
    slope = float(task.config["model"].get("slope", 0.1))
    records = [{"evaluation": "test", "metric": "accuracy", "value": acc, "split": "test"}]
    for m in ("a", "all"):
        for i, snr in enumerate([None, 1.0, 0.5]):
            records.append({"evaluation": "snr_curve", "metric": "accuracy", "modality": m,
                            "snr": snr, "value": acc - slope * i})
    return RunResult({"test_accuracy": acc, "params": 10, "nan_metric": math.nan}, records, path)


def marker_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """Appends the run id to $FAKE_MARKERS (one line per execution), then behaves like ok_run."""
    with open(os.environ["FAKE_MARKERS"], "a") as fh:
        fh.write(task.run_id + "\n")
    return ok_run(task, ckpt, report)


def _traced(task: RunTask, ckpt: Path | None, report: Reporter, where: str,
            end_where: str = "") -> RunResult:
    """ok_run between ``start <run_id> <where>`` and ``end <run_id> <end_where>`` lines
    appended to $FAKE_MARKERS."""
    with open(os.environ["FAKE_MARKERS"], "a") as fh:
        fh.write(f"start {task.run_id} {where}\n")
    result = ok_run(task, ckpt, report)
    with open(os.environ["FAKE_MARKERS"], "a") as fh:
        fh.write(f"end {task.run_id} {end_where}".rstrip() + "\n")
    return result


def traced_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """Like ok_run; appends ``start <run_id> <pid>`` and ``end <run_id>`` to $FAKE_MARKERS."""
    return _traced(task, ckpt, report, str(os.getpid()))


def crash_once_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """The worker process dies (os._exit) on the first attempt of each run, succeeds after."""
    marker = Path(os.environ["FAKE_MARKERS"]) / f"{task.run_id}.tried"
    if not marker.exists():
        marker.write_text("1")
        os._exit(17)
    return ok_run(task, ckpt, report)


def disk_full_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """Starts writing its checkpoint, then the disk is full."""
    assert ckpt is not None
    with open(ckpt, "wb") as fh:
        fh.write(b"half")
    raise OSError(errno.ENOSPC, "No space left on device", str(ckpt))


FAKE_TOML = """
[study]
name = "fake"
seeds = [0, 1]
baseline = "late"

[data]
name = "none"

[model]
name = "fake"

[train]
sleep = {sleep}

[[grid.fusion]]
label = "late"

[[grid.fusion]]
label = "early"
model = {{ slope = 0.05 }}

[evaluate]
robustness = true
"""


def write_fake(path: Path, sleep: float = 0.0, extra: str = "") -> Path:
    path.write_text(FAKE_TOML.format(sleep=sleep) + extra)
    return path


def node_traced_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """Like ok_run; appends ``start <run_id> <ray node id>`` and ``end <run_id> <node id>`` to
    $FAKE_MARKERS (one file shared by every node of a one-machine Ray cluster)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    return _traced(task, ckpt, report, node, node)


def chatty_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """Reports 40 epoch events of ~4 KB each (more than a pipe holds) before returning."""
    for epoch in range(1, 41):
        report({"kind": "epoch", "run_id": task.run_id, "epoch": epoch, "epochs": 40,
                "metrics": {"loss": 1.0 / epoch}, "note": "x" * 4096})
    return RunResult({"test_accuracy": _score(task)}, [], None)


def lingering_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """Returns at once but leaves a non-daemon thread that never ends: its worker process
    cannot exit (interpreter teardown waits for the thread)."""
    import threading

    threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
    return RunResult({"test_accuracy": _score(task)}, [], None)
