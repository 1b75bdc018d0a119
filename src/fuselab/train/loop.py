"""``fit``: epochs, validation, schedule, early stopping, best restore, checkpoints, blending.

Inputs are ``{modality: (B, *shape_m)}`` batches of a :class:`MultimodalDataset` held in memory;
the per-step work lives in :class:`fuselab.train.trainer.Trainer`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
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
    maximize = higher_is_better(metric)
    started = time.perf_counter()
    with run_settings(config):
        t = Trainer(model, train, val, config, config.progress if progress is None else progress)
        sched = make_scheduler(t.optimizer, config, t.total_steps, maximize)
        per_step = sched if config.schedule == "cosine" else None
        history: list[dict[str, Any]] = []
        best: dict[str, float] = {}
        best_value: float | None = None
        best_state: dict[str, Tensor] | None = None
        stop_reason, since_best = "epochs", 0
        try:
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
                if t.val is not None:
                    scores = score_split(
                        model, t.val, batch_size=config.eval_batch_size, loss_fn=t.loss_fn,
                        mosi=config.mosi_metrics, fwd=t._fwd, channels_last=t.channels_last,
                        snr=config.train_snr if config.val_snr == "train" else None,
                        seed=config.seed + 7,
                    )
                else:
                    scores = {"loss": train_loss}
                row.update({f"val_{k}": v for k, v in scores.items()} if val is not None else {})
                if t.blender is not None:
                    row.update({f"blend_weight_{k}": w for k, w in t.blender.weights.items()})
                row["samples_per_s"] = (t.samples - samples0) / max(t.busy_s - busy0, 1e-9)
                row["epoch_time_s"] = time.perf_counter() - epoch_start
                history.append(row)
                if metric not in scores:
                    raise ValueError(
                        f"train config 'metric': {metric!r} is not reported for this data "
                        f"(e.g. acc2/acc7/f1 need MOSI-style labels); reported: {sorted(scores)}"
                    )
                value = scores[metric]
                if _better(value, best_value, maximize) or best_state is None:
                    if not math.isnan(value):
                        best_value = value
                    best = {**scores, "epoch": float(epoch)}
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    since_best = 0
                    if checkpoint_path is not None:
                        save_checkpoint(
                            checkpoint_path, model, config=config, metrics=best,
                            extra={"history": history, "blend_weights": dict(t.blender.weights) if t.blender else {}},
                        )
                else:
                    since_best += 1
                t.bar.set_metric(metric, value)
                if sched is not None and per_step is None:
                    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                        sched.step(value)
                    else:
                        sched.step()
                if on_epoch is not None and on_epoch(row) is True:
                    stop_reason = "callback"
                    break
                if config.max_steps is not None and t.step >= config.max_steps:
                    stop_reason = "max_steps"
                    break
                if config.patience is not None and since_best >= config.patience:
                    stop_reason = "early_stopping"
                    break
        finally:
            t.bar.close()
            t.restore_layout()
        if best_state is not None:
            model.load_state_dict(best_state)
    curve = [r[f"val_{metric}"] if val is not None else r["train_loss"] for r in history]
    finite = [v for v in curve if not math.isnan(v)]
    peak = (max(finite) if maximize else min(finite)) if finite else math.nan
    last = {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")} or {"loss": history[-1]["train_loss"]}
    return FitResult(
        history=history,
        best=best,
        last={**last, "epoch": float(history[-1]["epoch"])},
        metric=metric,
        max_metric=peak,
        last_metric=curve[-1],
        best_epoch=int(best["epoch"]),
        checkpoint_path=None if checkpoint_path is None else str(checkpoint_path),
        train_time_s=time.perf_counter() - started,
        samples_per_s=t.samples / max(t.busy_s, 1e-9),
        steps=t.step,
        stop_reason=stop_reason,
        blend_weights=dict(t.blender.weights) if t.blender is not None else {},
    )
