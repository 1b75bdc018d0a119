"""``fit``: epochs, validation, schedule, early stopping, best restore, checkpoints, blending.

Inputs are ``{modality: (B, *shape_m)}`` batches of a :class:`MultimodalDataset` held in memory;
the per-step work lives in :class:`fuselab.train.trainer.Trainer`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from fuselab.data import MultimodalDataset
from fuselab.tasks import DEFAULT_METRIC, TASK_METRICS, higher_is_better
from fuselab.train import blending as B
from fuselab.train.checkpoint import save_checkpoint
from fuselab.train.config import TrainConfig
from fuselab.train.optim import make_scheduler
from fuselab.train.result import FitResult
from fuselab.train.scoring import score_split
from fuselab.train.trainer import Trainer

EpochCallback = Callable[[dict[str, Any]], "bool | None"]


@contextlib.contextmanager
def run_settings(config: TrainConfig) -> Iterator[None]:
    """Seed, thread count and deterministic algorithms for the run; the caller's are restored."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        try:
            if config.threads is not None:
                torch.set_num_threads(config.threads)
            if config.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
                # Deterministic mode NaN-fills every new tensor to expose reads of uninitialized
                # memory; no correct op reads it, and the fills cost ~20% of a LeNet step.
                torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(det, warn_only=det_warn)
            torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]


def monitored_metric(config: TrainConfig, task: str) -> str:
    """The validation metric ``fit`` selects the best epoch by (``config.metric``, ``"auto"``
    resolved for ``task``); ``ValueError`` when the task does not report it."""
    name = DEFAULT_METRIC[task] if config.metric == "auto" else config.metric
    allowed = ("loss", *TASK_METRICS[task])
    if name not in allowed:
        raise ValueError(
            f"train config 'metric': {name!r} is not reported for {task} tasks; allowed: "
            f"{['auto', *allowed]}"
        )
    return name


def _check_args(model: nn.Module, train: object, val: object, config: TrainConfig) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"fit: config must be a TrainConfig, got {type(config).__name__}")
    for what, ds in (("train", train), ("val", val)):
        if ds is None and what == "val":
            continue
        if not isinstance(ds, MultimodalDataset):
            raise TypeError(f"fit: {what} must be a MultimodalDataset, got {type(ds).__name__}")
        if len(ds) == 0:
            raise ValueError(f"fit: the {what} dataset {ds.name!r} is empty")
    assert isinstance(train, MultimodalDataset)
    if isinstance(val, MultimodalDataset) and val.task != train.task:
        raise ValueError(f"fit: train task {train.task!r} but val task {val.task!r}")
    if val is None and (config.patience is not None or config.schedule == "plateau"):
        raise ValueError("fit: early stopping ('patience') and schedule 'plateau' need a val set")
    for m in config.train_snr:
        if m not in train.names:
            raise ValueError(
                f"train config 'train_snr': unknown modality {m!r}; {train.name!r} has {list(train.names)}"
            )
    if config.grad_blend != "off" and train.task == "generation":
        raise ValueError("train config 'grad_blend': not supported for generation tasks")


def _better(value: float, best: float | None, maximize: bool) -> bool:
    if math.isnan(value):
        return False
    return best is None or (value > best if maximize else value < best)


@dataclass
class _Best:
    """The best epoch so far: its metrics, monitored value and weights; epochs since it."""

    maximize: bool
    scores: dict[str, float] = field(default_factory=dict)
    value: float | None = None
    state: dict[str, Tensor] | None = None
    since: int = 0

    def update(self, model: nn.Module, epoch: int, scores: dict[str, float], value: float) -> bool:
        """Keep this epoch if it improves on the best (the first epoch always counts)."""
        if not (_better(value, self.value, self.maximize) or self.state is None):
            self.since += 1
            return False
        if not math.isnan(value):
            self.value = value
        self.scores = {**scores, "epoch": float(epoch)}
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.since = 0
        return True


def fit(
    model: nn.Module,
    train: MultimodalDataset,
    val: MultimodalDataset | None,
    config: TrainConfig | None = None,
    *,
    progress: bool | None = None,
    checkpoint_path: str | None = None,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train ``model`` on ``train``, select the best epoch on ``val``, return the curve.

    Args:
        model: classification/regression ``model(inputs) -> (B, num_outputs)``; generation
            ``model(inputs, labels) -> (B, L, V)`` with ``model.generate``.
        train: the training dataset.
        val: a dataset of the same task (``None``: no validation, the training loss is the
            monitored metric and early stopping/plateau are unavailable).
        config: hyper-parameters (default ``TrainConfig()``).
        progress: show the progress bar; ``None`` (default) follows ``config.progress``, a bool
            overrides it for this call (one switch: either turns the bar on or off).
        checkpoint_path: write the best weights there (atomically) whenever ``val`` improves.
        on_epoch: called with each epoch's history row; returning ``True`` stops training.

    Returns:
        :class:`FitResult`; ``model`` holds the best epoch's weights afterwards.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (step number and last finite loss inside).
    """
    config = config or TrainConfig()
    _check_args(model, train, val, config)
    metric = monitored_metric(config, train.task) if val is not None else "loss"
    best = _Best(higher_is_better(metric))
    started = time.perf_counter()
    history: list[dict[str, Any]] = []
    with run_settings(config):
        t = Trainer(model, train, val, config, config.progress if progress is None else progress)
        try:
            stop_reason = _train_epochs(t, metric, best, history, checkpoint_path, on_epoch)
        finally:
            t.bar.close()
            t.restore_layout()
        if best.state is not None:
            model.load_state_dict(best.state)
    return _result(t, history, best, metric, val is not None, checkpoint_path, stop_reason,
                   time.perf_counter() - started)


def _train_epochs(t: Trainer, metric: str, best: _Best, history: list[dict[str, Any]],
                  checkpoint_path: str | None, on_epoch: EpochCallback | None) -> str:
    """The epoch loop: train, blend, validate, keep the best, step the schedule; why it stopped."""
    config = t.config
    sched = make_scheduler(t.optimizer, config, t.total_steps, best.maximize)
    per_step = sched if config.schedule == "cosine" else None
    if t.blender is not None and config.grad_blend == "offline":
        t.offline_weights(sched)
    online = t.blender is not None and config.grad_blend == "online"
    separate = config.grad_blend_estimate == "separate"
    before = t.measure() if online and not separate else None
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        if online and separate and (epoch - 1) % config.grad_blend_every == 0:
            t.set_weights(t.separate_weights())  # estimate first, then train the window
        busy0, samples0 = t.busy_s, t.samples
        lr = t.optimizer.param_groups[0]["lr"]
        train_loss, _, steps = t.train_epoch(epoch, per_step)
        row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "lr": lr, "steps": steps}
        if before is not None and epoch % config.grad_blend_every == 0:
            after = t.measure()
            t.set_weights(B.blend_weights(before, after))
            before = after
        scores = _validate(t, train_loss)
        if t.val is not None:
            row.update({f"val_{k}": v for k, v in scores.items()})
        if t.blender is not None:
            row.update({f"blend_weight_{k}": w for k, w in t.blender.weights.items()})
        row["samples_per_s"] = (t.samples - samples0) / max(t.busy_s - busy0, 1e-9)
        row["epoch_time_s"] = time.perf_counter() - epoch_start
        history.append(row)
        value = _monitored(scores, metric)
        if best.update(t.model, epoch, scores, value) and checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path, t.model, config=config, metrics=best.scores,
                extra={"history": history,
                       "blend_weights": dict(t.blender.weights) if t.blender else {}},
            )
        t.bar.set_metric(metric, value)
        if sched is not None and per_step is None:
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(value)
            else:
                sched.step()
        reason = _stop(t, best, row, on_epoch)
        if reason:
            return reason
    return "epochs"


def _validate(t: Trainer, train_loss: float) -> dict[str, float]:
    """Validation scores of this epoch (the training loss alone without a val set)."""
    if t.val is None:
        return {"loss": train_loss}
    config = t.config
    return score_split(
        t.model, t.val, batch_size=config.eval_batch_size, loss_fn=t.loss_fn,
        mosi=config.mosi_metrics, fwd=t._fwd, channels_last=t.channels_last,
        snr=config.train_snr if config.val_snr == "train" else None,
        seed=config.seed + 7,
    )


def _monitored(scores: dict[str, float], metric: str) -> float:
    if metric not in scores:
        raise ValueError(
            f"train config 'metric': {metric!r} is not reported for this data "
            f"(e.g. acc2/acc7/f1 need MOSI-style labels); reported: {sorted(scores)}"
        )
    return scores[metric]


def _stop(t: Trainer, best: _Best, row: dict[str, Any], on_epoch: EpochCallback | None) -> str:
    """Why training stops after this epoch (``""``: it goes on)."""
    if on_epoch is not None and on_epoch(row) is True:
        return "callback"
    if t.config.max_steps is not None and t.step >= t.config.max_steps:
        return "max_steps"
    if t.config.patience is not None and best.since >= t.config.patience:
        return "early_stopping"
    return ""


def _result(t: Trainer, history: list[dict[str, Any]], best: _Best, metric: str, has_val: bool,
            checkpoint_path: str | None, stop_reason: str, seconds: float) -> FitResult:
    curve = [r[f"val_{metric}"] if has_val else r["train_loss"] for r in history]
    finite = [v for v in curve if not math.isnan(v)]
    peak = (max(finite) if best.maximize else min(finite)) if finite else math.nan
    last = ({k[4:]: v for k, v in history[-1].items() if k.startswith("val_")}
            or {"loss": history[-1]["train_loss"]})
    return FitResult(
        history=history,
        best=best.scores,
        last={**last, "epoch": float(history[-1]["epoch"])},
        metric=metric,
        max_metric=peak,
        last_metric=curve[-1],
        best_epoch=int(best.scores["epoch"]),
        checkpoint_path=None if checkpoint_path is None else str(checkpoint_path),
        train_time_s=seconds,
        samples_per_s=t.samples / max(t.busy_s, 1e-9),
        steps=t.step,
        stop_reason=stop_reason,
        blend_weights=dict(t.blender.weights) if t.blender is not None else {},
    )
