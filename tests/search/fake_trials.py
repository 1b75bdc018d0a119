"""The lattice lookup task, search configs, and stand-in trial functions (importable by spawned
workers) for the search tests.

The task: the paper-001 lattice generator (``fuselab.data`` ``lattice``: ``x1`` a random smooth
function at 8 lattice points, ``x2`` the embedding of one point ``l``) with the label
``x1[l] > 0``. Only a model that combines ``x1`` with ``l`` before ``x1`` is squeezed through a
2-unit encoder can read it: early fusion reaches ~0.85 validation accuracy in 4 epochs on 2,400
samples, late and decision fusion stay at 0.54-0.73 (the digit label of examples/quickstart.toml
needs ~40 epochs on 20,000 samples to show the same gap).

The fake trials honour the run-function contract with a deterministic score per design
(``model.score``) and report to the reattached Optuna trial like the real one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from fuselab.search.trial import attach
from fuselab.study.worker import Reporter, RunResult, RunTask

HERE = Path(__file__).resolve().parent


def write_lookup(path: Path) -> Path:
    from fuselab import data

    ds = data.load("lattice", split="train", dim=8, embed_dim=8, harmonics=3, sizes=3000, seed=0)
    x1, x2 = ds.modalities["x1"].numpy(), ds.modalities["x2"].numpy()
    pos = np.asarray(ds.meta["position"])
    labels = (x1[np.arange(len(pos)), pos] > 0).astype("int64")
    np.savez(path, x1=x1, x2=x2, labels=labels)
    return path


BASE = """
[study]
name = "{name}"
seeds = [0, 1]

[data]
name = "tensors"
options = {{ path = "{npz}" }}

[model]
name = "staged"
encoders = {{ x1 = {{ type = "mlp", hidden = [16, 2] }}, x2 = {{ type = "mlp", hidden = [16, 2] }} }}
fusion = [ {{ at = "late", operator = "concat" }} ]
head = {{ hidden = [32] }}

[train]
optimizer = "adam"
lr = 0.01
epochs = {epochs}
batch_size = 32
"""


def write_search(path: Path, npz: Path, search: str, *, name: str = "tiny",
                 epochs: int = 4) -> Path:
    path.write_text(BASE.format(name=name, npz=npz, epochs=epochs) + search)
    return path


def fake_trial(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    """Validation accuracy ``model.score`` at every epoch (``model.sleep`` s each); reports each
    epoch to the reattached trial, which may prune it; ``model.cost`` is the cost objective.
    A ``model.fake`` table overrides those keys (one parameter sets both objectives)."""
    ctx = task.context
    model = {**task.config["model"], **task.config["model"].get("fake", {})}
    score, epochs = float(model["score"]), int(task.config["train"]["epochs"])
    trial = attach(ctx) if ctx.get("pruner") else None
    if trial is not None:
        trial.set_user_attr("worker_pid", os.getpid())
    records = []
    for epoch in range(1, epochs + 1):
        time.sleep(float(model.get("sleep", 0.0)))
        report({"kind": "epoch", "run_id": task.run_id, "epoch": epoch, "epochs": epochs,
                "metrics": {"val_accuracy": score}})
        records.append({"evaluation": "curve", "metric": "val_accuracy", "value": score,
                        "epoch": epoch})
        if trial is not None:
            trial.report(score, epoch)
            if epoch < epochs and trial.should_prune():
                return RunResult({"val_accuracy": score, "pruned": True,
                                  "pruned_at_epoch": epoch}, records)
    metrics = {"val_accuracy": score, "pruned": False}
    if ctx.get("cost"):
        metrics[ctx["cost"]] = float(model.get("cost", 1.0))
    return RunResult(metrics, records)
