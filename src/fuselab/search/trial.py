"""One search trial in a worker: train on the training split, select and score on the validation
split, report each epoch's validation value to the Optuna trial, which may prune it.

Validation only, by construction: the trial keeps the ``train`` and ``val`` splits and drops
``test`` before anything runs, and never calls an evaluation (the trial's run config has no
``evaluate`` table either). The test split is for the study the search writes at the end.

Pruning reattaches the trial in the worker: ``optuna.Trial(load_study(...), trial_id)`` on the
search's storage URL (``RunTask.context``). The pruner decides from the other trials'
intermediate values, which live in that storage, so a worker process, a Ray task or another
machine reports and decides in the same way, with no channel back from the parent; the parent
stays the only writer of the results store and the one that asks for and tells trials.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fuselab.study.execute import fit_metrics, load_splits, train_config, train_run
from fuselab.study.tracking import Tracker
from fuselab.study.worker import Reporter, RunResult, RunTask

#: Storages opened by this worker process, by URL (one engine per database, reused by trials).
_STORAGES: dict[str, Any] = {}


def attach(context: dict[str, Any]) -> Any:
    """The running Optuna trial ``context["trial_id"]`` of study ``context["study"]``, with the
    search's pruner; its sampler is never used here (the parent sampled the design)."""
    from fuselab.search import optuna_setup as setup

    op = setup.optuna()
    url = context["storage"]
    if url not in _STORAGES:
        _STORAGES[url] = setup.storage(url)
    with setup.quiet():
        study = op.load_study(study_name=context["study"], storage=_STORAGES[url],
                              sampler=op.samplers.RandomSampler(),
                              pruner=setup.pruner(*context["pruner"]))
        return op.Trial(study, context["trial_id"])


def trial_cost(model: Any, val: Any, metric: str, options: dict[str, Any]) -> float:
    """The second objective: parameters and FLOPs counted exactly, time and memory measured
    with ``fuselab.evaluate.cost`` on validation inputs."""
    from fuselab.evaluate import cost, count_params, flops_per_sample

    if metric in ("params", "fusion_params"):
        total, fusion = count_params(model)
        return float(total if metric == "params" else (fusion or 0))
    if metric == "flops_per_sample":
        device = next(model.parameters()).device
        x, y = next(val.batches(min(2, len(val))))
        inputs = {m: x[m].to(device) for m in getattr(model, "modalities", tuple(x))}
        labels = y.to(device) if val.task == "generation" else None
        return float(flops_per_sample(model, inputs, labels))
    records = cost(model, val, **options)
    return float(next(r["value"] for r in records if r["metric"] == metric))


def execute_trial(task: RunTask, checkpoint: Path | None, report: Reporter) -> RunResult:
    """Train one sampled design and return its validation scores (the run-function contract of
    :mod:`fuselab.study.worker`); ``metrics["pruned"]`` says whether the pruner stopped it."""
    ctx = task.context
    metric = ctx["metric"]
    splits = load_splits(task.config, task.data_root)
    train, val = splits["train"], splits["val"]  # the test split goes no further
    trial = attach(ctx) if ctx.get("pruner") else None
    epochs = train_config(task.config, task.seed, task.threads).epochs
    pruned: list[int] = []

    def stop(row: dict[str, Any]) -> bool:
        value = row.get(f"val_{metric}")
        if trial is None or value is None or not math.isfinite(value):
            return False
        trial.report(float(value), int(row["epoch"]))
        # after the last epoch the trial is complete: its score informs the sampler
        if int(row["epoch"]) < epochs and trial.should_prune():
            pruned.append(int(row["epoch"]))
            return True
        return False

    tracker = Tracker(task)
    try:
        model, result = train_run(task, train, val, None, report, tracker, stop=stop)
        metrics = fit_metrics(result)
        metrics.update(pruned=bool(pruned), epochs_run=len(result.history))
        if pruned:
            metrics["pruned_at_epoch"] = pruned[0]
        elif ctx.get("cost"):
            metrics[ctx["cost"]] = trial_cost(model, val, ctx["cost"], ctx.get("cost_options", {}))
        tracker.final(metrics)
    finally:
        tracker.close()
    return RunResult(metrics, result.records(), None)
