"""Live progress of a study: runs done / failed / remaining with an ETA, and per-run epochs.

On a terminal this is a ``rich`` display (one overall bar, one bar per run in flight); otherwise
(CI logs, pipes) one plain line per finished run, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from fuselab.study.worker import Outcome


def _fmt_s(seconds: float) -> str:
    seconds = max(0, round(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class StudyProgress:
    """Counts outcomes and estimates the time left; renders with rich or plain lines.

    Args:
        total: number of runs this invocation executes.
        names: ``{run_id: variant · seed}`` for display.
        enabled: ``False`` prints nothing (library use, tests).
        stream: where to write (default ``sys.stderr``).
        clock: seconds counter for the ETA (a fake one in tests).
    """

    def __init__(self, total: int, names: dict[str, str], *, enabled: bool = True,
                 stream: TextIO | None = None, workers: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.names, self.enabled = total, names, enabled
        self.stream = stream or sys.stderr
        self.workers = max(1, workers)
        self.done = self.failed = 0
        self.clock = clock
        self.start = clock()
        self._rich: Any = None
        self._tasks: dict[str, Any] = {}
        if enabled and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._rich = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                  console=Console(file=self.stream), transient=False)
            self._overall = self._rich.add_task("study", total=total, info="")
            self._rich.start()

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def eta_s(self) -> float | None:
        """Mean wall time per finished run x remaining runs (``None`` before the first)."""
        finished = self.done + self.failed
        if not finished:
            return None
        return (self.clock() - self.start) / finished * self.remaining

    def summary(self) -> str:
        eta = self.eta_s()
        return (f"{self.done} done, {self.failed} failed, {self.remaining} remaining"
                + ("" if eta is None or not self.remaining else f", ETA {_fmt_s(eta)}"))

    def event(self, ev: dict[str, Any]) -> None:
        """A worker event: ``start`` or ``epoch`` (``epoch``, ``epochs``, ``metrics``)."""
        if self._rich is None:
            return
        rid = ev.get("run_id", "")
        if ev.get("kind") == "start" and rid not in self._tasks:
            self._tasks[rid] = self._rich.add_task(f"  {self.names.get(rid, rid)}", total=None,
                                                   info="starting")
        elif ev.get("kind") == "epoch" and rid in self._tasks:
            metrics = ev.get("metrics") or {}
            info = " ".join(f"{k}={v:.3g}" for k, v in metrics.items()
                            if isinstance(v, (int, float)))[:60]
            self._rich.update(self._tasks[rid], completed=ev.get("epoch", 0),
                              total=ev.get("epochs"), info=info)

    def finished(self, out: Outcome) -> None:
        if out.status == "done":
            self.done += 1
        else:
            self.failed += 1
        if not self.enabled:
            return
        name = self.names.get(out.run_id, out.run_id)
        first = next((f"{k}={v:.4g}" for prefix in ("test_", "val_")
                      for k, v in out.metrics.items() if k.startswith(prefix)
                      and isinstance(v, (int, float))), "")  # a search trial has val_ only
        if out.metrics.get("pruned"):
            first += f" (pruned at epoch {out.metrics.get('pruned_at_epoch')})"
        what = first if out.status == "done" else f"FAILED: {out.error}"
        line = f"[{self.summary()}] {out.run_id} {name}: {what} ({_fmt_s(out.duration_s)})"
        if self._rich is not None:
            task = self._tasks.pop(out.run_id, None)
            if task is not None:
                self._rich.remove_task(task)
            self._rich.update(self._overall, completed=self.done + self.failed,
                              info=self.summary())
            self._rich.console.print(line)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
