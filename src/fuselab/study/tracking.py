"""Optional per-run logging to TensorBoard and MLflow (local file store); off by default.

Neither package is a fuselab dependency: they are imported only when ``[execution]`` turns them
on (``tensorboard = true`` needs the ``tensorboard`` package, ``mlflow = true`` needs ``mlflow``),
and :func:`check_available` fails before any run when one is missing. Logs go to
``<study>/logs/tensorboard/<run_id>`` and ``<study>/logs/mlruns``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from fuselab.study.errors import ConfigError
from fuselab.study.worker import RunTask


def check_available(tensorboard: bool, mlflow: bool) -> None:
    """``ConfigError`` naming the missing package when a logger is on but not installed."""
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("execution.tensorboard", "needs the 'tensorboard' package "
                                                   "(pip install 'fuselab[tracking]')")
    if mlflow and importlib.util.find_spec("mlflow") is None:
        raise ConfigError("execution.mlflow", "needs the 'mlflow' package (pip install 'fuselab[tracking]')")


class Tracker:
    """Forwards epoch rows and final metrics of one run to the enabled loggers."""

    def __init__(self, task: RunTask) -> None:
        self.tb: Any = None
        self.mlflow: Any = None
        self.step = 0
        logs = Path(task.log_dir or "logs")
        if task.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(logs / "tensorboard" / task.run_id))
        if task.mlflow:
            # MLflow 3 refuses its file store unless asked; a local folder of files is what a
            # study (several worker processes, no server) needs, so ask.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            import mlflow

            mlflow.set_tracking_uri((logs / "mlruns").resolve().as_uri())
            mlflow.start_run(run_name=f"{task.variant} seed {task.seed}")
            mlflow.log_params({"run_id": task.run_id, "variant": task.variant, "seed": task.seed})
            self.mlflow = mlflow

    def epoch(self, row: dict[str, Any]) -> None:
        self.step = int(row.get("epoch", self.step + 1))
        scalars = {k: float(v) for k, v in row.items()
                   if isinstance(v, (int, float)) and k != "epoch"}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, self.step)
        if self.mlflow is not None:
            self.mlflow.log_metrics(scalars, step=self.step)

    def final(self, metrics: dict[str, Any]) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"final/{k}", v, self.step)
        if self.mlflow is not None:
            self.mlflow.log_metrics(scalars)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.mlflow is not None:
            self.mlflow.end_run()
