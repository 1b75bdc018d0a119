"""Optional TensorBoard / MLflow logging of a run: what is logged can be read back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fuselab.study import ConfigError
from fuselab.study.tracking import Tracker, check_available
from fuselab.study.worker import RunTask

ROWS = [{"epoch": 1, "train_loss": 2.0, "val_accuracy": 0.25},
        {"epoch": 2, "train_loss": 1.5, "val_accuracy": 0.5}]


def _task(tmp_path: Path, **on: bool) -> RunTask:
    return RunTask(run_id="abc123", variant="late · concat", seed=0, config={},
                   log_dir=str(tmp_path / "logs"), **on)


def _log(task: RunTask) -> None:
    tracker = Tracker(task)
    for row in ROWS:
        tracker.epoch(dict(row))
    tracker.final({"test_accuracy": 0.75, "status": "done"})
    tracker.close()


def test_tensorboard_scalars_read_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _log(_task(tmp_path, tensorboard=True))
    acc = EventAccumulator(str(tmp_path / "logs" / "tensorboard" / "abc123"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("val_accuracy")] == [(1, 0.25), (2, 0.5)]
    assert [e.value for e in acc.Scalars("final/test_accuracy")] == [0.75]


def test_mlflow_run_read_back(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    _log(_task(tmp_path, mlflow=True))
    client = mlflow.tracking.MlflowClient((tmp_path / "logs" / "mlruns").resolve().as_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].data.params["run_id"] == "abc123"
    history = client.get_metric_history(runs[0].info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.5)]
    assert runs[0].data.metrics["test_accuracy"] == 0.75


def test_missing_logger_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "mlflow") else real(name, *a))
    with pytest.raises(ConfigError, match=r"execution.tensorboard: needs the 'tensorboard'"):
        check_available(tensorboard=True, mlflow=False)
    with pytest.raises(ConfigError, match=r"execution.mlflow: needs the 'mlflow'"):
        check_available(tensorboard=False, mlflow=True)
