"""One real run: ``data.load_splits -> models.build -> train.fit -> evaluate.* -> records``.

This is the default run function of :func:`fuselab.study.run_study` (contract in
:mod:`fuselab.study.worker`). It runs inside a worker process or Ray task, never touches the
results store, and returns everything the parent records.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuselab.study.evaluate_table import CROSS_RUN, run_evaluation, summary_metrics
from fuselab.study.tracking import Tracker
from fuselab.study.worker import Reporter, RunResult, RunTask

#: Train-config keys the runner owns: the seed comes from the grid, threads from execution.
RUNNER_TRAIN_KEYS = ("seed", "threads", "progress")

_SPLIT_CACHE: dict[str, Any] = {}


class EvaluationError(RuntimeError):
    """An evaluation of a trained model failed (the message names the evaluation)."""


def num_outputs(ds: Any) -> int:
    """Classes (classification), label width (regression) or vocabulary size (generation)."""
    if ds.task == "regression":
        return 1 if ds.labels.dim() == 1 else int(ds.labels.shape[-1])
    if ds.num_classes is None:
        raise ValueError(f"dataset {ds.name!r} ({ds.task}) does not define num_classes")
    return int(ds.num_classes)


def load_splits(config: dict[str, Any], root: str | None) -> dict[str, Any]:
    """The run's data splits; a worker reuses them across runs with the same data config."""
    from fuselab import data
    from fuselab.study.grid import canonical_json

    key = canonical_json([config["data"], root])
    if key not in _SPLIT_CACHE:
        _SPLIT_CACHE.clear()  # one dataset per worker at a time: bounded memory
        _SPLIT_CACHE[key] = data.load_splits(config["data"]["name"], root=root,
                                             **config["data"]["options"])
    return _SPLIT_CACHE[key]  # type: ignore[no-any-return]


def train_config(config: dict[str, Any], seed: int, threads: int | None) -> Any:
    """``TrainConfig`` of a run: the config's ``train`` table plus the runner-owned keys."""
    from fuselab.train import TrainConfig

    values = {k: v for k, v in config["train"].items() if k not in RUNNER_TRAIN_KEYS}
    return TrainConfig.from_dict({**values, "seed": seed, "threads": threads, "progress": False})


def train_run(task: RunTask, train: Any, val: Any, checkpoint: Path | None, report: Reporter,
              tracker: Tracker, stop: Callable[[dict[str, Any]], bool] | None = None,
              ) -> tuple[Any, Any]:
    """Build the run's model and ``fit`` it on ``train``, selecting on ``val`` (both in host
    memory); every epoch is reported and logged, and ``stop(row) -> True`` ends
    training after that epoch. Returns ``(model, FitResult)``; the model holds the best epoch."""
    import torch

    from fuselab import models
    from fuselab.device import resolve_device
    from fuselab.train import fit

    tcfg = train_config(task.config, task.seed, task.threads)
    torch.manual_seed(task.seed)
    model = models.build(task.config["model"], input_shapes=train.shapes,
                         num_outputs=num_outputs(train))
    # The data stays in host memory: training and every evaluation move their batches to the
    # model's device (pinned, non-blocking), so nothing else needs the device.
    model = model.to(resolve_device(task.device))

    def on_epoch(row: dict[str, Any]) -> bool:
        report({"kind": "epoch", "run_id": task.run_id, "epoch": row.get("epoch", 0),
                "epochs": tcfg.epochs, "metrics": {k: v for k, v in row.items()
                                                   if k in ("train_loss", "val_loss")
                                                   or k.startswith("val_")}})
        tracker.epoch(row)
        return stop is not None and stop(row)

    result = fit(model, train, val, tcfg, progress=False,
                 checkpoint_path=None if checkpoint is None else str(checkpoint),
                 on_epoch=on_epoch)
    return model, result


def fit_metrics(result: Any) -> dict[str, Any]:
    """A run's scalars from its ``FitResult``: the monitored validation metric at the best
    epoch, the best epoch, training time and speed, why training stopped."""
    return {
        f"val_{result.metric}": result.best.get(result.metric, float("nan")),
        "best_epoch": result.best_epoch,
        "train_time_s": result.train_time_s,
        "train_samples_per_s": result.samples_per_s,
        "stop_reason": result.stop_reason,
    }


def execute_run(task: RunTask, checkpoint: Path | None, report: Reporter) -> RunResult:
    """Train and evaluate one grid point; raises on failure (the caller records the message)."""
    cfg = task.config
    splits = load_splits(cfg, task.data_root)
    tcfg = train_config(cfg, task.seed, task.threads)
    tracker = Tracker(task)
    try:
        model, result = train_run(task, splits["train"], splits["val"], checkpoint, report,
                                  tracker)
        records: list[dict[str, Any]] = list(result.records())
        for name, opts in cfg["evaluate"].items():
            if name in CROSS_RUN:
                continue
            try:
                records += run_evaluation(name, opts, model, splits, tcfg.eval_batch_size)
            except Exception as e:
                raise EvaluationError(f"evaluate.{name} failed: {type(e).__name__}: {e}") from e
        metrics = fit_metrics(result)
        metrics.update(summary_metrics(records))
        tracker.final(metrics)
    finally:
        tracker.close()
    ckpt = result.checkpoint_path
    return RunResult(metrics, records, ckpt if ckpt and Path(ckpt).is_file() else None)
