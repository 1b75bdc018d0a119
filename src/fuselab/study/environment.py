"""Where and how a study ran: machine, software, command and wall time, kept in its store.

:class:`Invocation` is started when ``run_study`` starts; it records the environment in the
store's study table (key ``environment``, read back as ``store.study()["environment"]``) once
the study directory is accepted, and the end time and wall time when the invocation ends. Wall
times add up over resumed invocations (``total_wall_s``, ``invocations``); ``--force`` starts
the count again. :func:`describe_environment` turns the stored dict into labelled lines for
``fuselab show``, the report and ``RESULTS.md``.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

ENV_KEY = "environment"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` else)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _torch_build() -> dict[str, Any]:
    import torch

    cuda = torch.version.cuda
    out: dict[str, Any] = {"torch": torch.__version__,
                           "torch_build": f"cuda {cuda}" if cuda else "cpu"}
    if cuda and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def collect_environment(command: str, device: str = "cpu") -> dict[str, Any]:
    """Host, platform, CPU, torch build, fuselab and Python versions and the command line."""
    from fuselab import __version__

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_model(),
        "cpu_count": os.cpu_count(), "cpus_available": cpus, **_torch_build(),
        "device": device, "fuselab": __version__, "python": platform.python_version(),
        "command": command,
    }


class Invocation:
    """One call of ``run_study``: started on creation, recorded by :meth:`record_start` and
    :meth:`record_end` (the latter also when the invocation is interrupted)."""

    def __init__(self, command: str | None = None, device: str = "cpu") -> None:
        import shlex

        self.command = command if command is not None else shlex.join(sys.argv)
        self.device = device
        self.started_at = _utc_now()
        self._t0 = time.perf_counter()
        self._env: dict[str, Any] | None = None

    def record_start(self, store: Any, overrides: Mapping[str, Any] | None = None) -> None:
        """Write the environment with this start time; keeps the earlier invocations' total."""
        old = store.study().get(ENV_KEY) or {}
        self._env = {
            **collect_environment(self.command, self.device),
            "overrides": dict(overrides or {}),
            "started_at": self.started_at, "finished_at": None, "wall_s": None,
            "previous_wall_s": float(old.get("total_wall_s") or 0.0),
            "invocations": int(old.get("invocations") or 0) + 1,
            "total_wall_s": float(old.get("total_wall_s") or 0.0),
        }
        store.write_meta({ENV_KEY: self._env})

    def record_end(self, store: Any, interrupted: bool = False) -> None:
        """Write the end time, this invocation's wall time and the running total."""
        if self._env is None:
            return
        wall = time.perf_counter() - self._t0
        self._env.update(finished_at=_utc_now(), wall_s=wall, interrupted=interrupted,
                         total_wall_s=self._env["previous_wall_s"] + wall)
        store.write_meta({ENV_KEY: self._env})


def fmt_duration(seconds: float | None) -> str:
    """``"41 min 3 s"``, ``"2 h 05 min"``, ``"12.3 s"``; ``"—"`` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def describe_environment(env: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(label, text)]``: command, machine, software, start/end and wall times."""
    if not env:
        return []
    cpus = env.get("cpus_available")
    cpu = f"{env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores" + (
        f" ({cpus} available)" if cpus not in (None, env.get("cpu_count")) else "")
    gpu = f", GPU {env['gpu']}" if env.get("gpu") else ""
    rows = [
        ("command", str(env.get("command", "—"))),
        ("machine", f"{env.get('host', '?')}: {env.get('platform', '?')}; {cpu}{gpu}; "
                    f"device {env.get('device', '?')}"),
        ("software", f"fuselab {env.get('fuselab', '?')}, torch {env.get('torch', '?')} "
                     f"({env.get('torch_build', '?')}), Python {env.get('python', '?')}"),
        ("last invocation", f"{env.get('started_at', '?')} -> {env.get('finished_at') or 'not finished'}"
                            + (" (interrupted)" if env.get("interrupted") else "")),
        ("wall time", f"{fmt_duration(env.get('wall_s'))} (last invocation); "
                      f"{fmt_duration(env.get('total_wall_s'))} over "
                      f"{env.get('invocations', 1)} invocation(s)"),
    ]
    if env.get("overrides"):
        rows.insert(1, ("overrides", ", ".join(f"{k} = {v!r}" for k, v in env["overrides"].items())))
    return rows
