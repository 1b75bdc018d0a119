"""Execution options for studies spread over machines (docs/cluster.md).

``[execution.ray]`` says what each run asks Ray for, so that Ray places runs where the resources
are free::

    [execution.ray]
    num_cpus_per_run = 1      # default: execution.threads_per_run
    num_gpus_per_run = 0.25   # default: 1 when execution.device is CUDA, else 0; a fraction
                              # below 1 shares a GPU between runs, above 1 it must be whole

``execution.lease_s`` (default 60) is how long a run taken by a ``fuselab study --shared``
process stays its own without a heartbeat (:mod:`fuselab.study.lease`): the time after which a
run whose process vanished is taken over by another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fuselab import _validate as c
from fuselab.study.errors import ConfigError

#: Bounds that catch a typo (an extra zero) before it reaches the scheduler.
MAX_PER_RUN = 1024.0
LEASE_RANGE = (1.0, 86400.0)


@dataclass(frozen=True)
class RayResources:
    """Resources one run asks Ray for (``None``: derived from threads / device)."""

    num_cpus_per_run: float | None = None
    num_gpus_per_run: float | None = None

    def cpus(self, threads_per_run: int) -> float:
        return float(threads_per_run) if self.num_cpus_per_run is None else self.num_cpus_per_run

    def gpus(self, device: str) -> float:
        if self.num_gpus_per_run is not None:
            return self.num_gpus_per_run
        return 1.0 if device.startswith("cuda") else 0.0


def ray_resources(value: Any) -> RayResources:
    """Validate ``[execution.ray]`` (errors name ``execution.ray.<key>``)."""
    x = c.table(value, "execution.ray")
    c.known_keys(x, RayResources.__dataclass_fields__, "execution.ray")
    out: dict[str, float] = {}
    for key, minimum in (("num_cpus_per_run", 0.0), ("num_gpus_per_run", 0.0)):
        if key not in x:
            continue
        path = f"execution.ray.{key}"
        v = c.number(x[key], path, minimum)
        if key == "num_cpus_per_run" and v == 0:
            raise ConfigError(path, "expected a number > 0 (a run needs some CPU), got 0")
        if v > MAX_PER_RUN:
            raise ConfigError(path, f"expected at most {MAX_PER_RUN:g}, got {v:g}")
        if v > 1 and not v.is_integer():
            # Ray's rule: resource amounts above 1 must be whole numbers.
            raise ConfigError(path, f"expected a fraction below 1 or a whole number, got {v:g}")
        out[key] = v
    return RayResources(**out)


def lease_seconds(value: Any) -> float:
    """Validate ``execution.lease_s``."""
    v = c.number(value, "execution.lease_s", LEASE_RANGE[0])
    if v > LEASE_RANGE[1]:
        raise ConfigError("execution.lease_s", f"expected at most {LEASE_RANGE[1]:g} seconds, "
                                               f"got {v:g}")
    return v
