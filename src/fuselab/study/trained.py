"""A finished run's trained model, rebuilt from the results store and its checkpoint.

    from fuselab.study import load_run_model
    model = load_run_model("runs/quickstart", run_id)     # eval mode, best-epoch weights
    model({"image": x_img, "audio": x_aud})               # {m: (B, *shape_m)} -> (B, outputs)

The model is built from the run's own config as stored (key order included: the order of a
model's encoders is the order its features are concatenated in) and the data's input shapes,
then the published checkpoint is loaded with ``weights_only=True`` and checked key by key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuselab.study.errors import StoreError
from fuselab.study.store import open_store
from fuselab.study.studydir import CHECKPOINTS

if TYPE_CHECKING:  # torch is imported by the call only: `fuselab show` and the report stay fast
    from torch import nn


def load_run_model(
    study: str | os.PathLike[str],
    run_id: str,
    *,
    data_root: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """The trained model of the finished run ``run_id`` of a study, in eval mode on the CPU.

    Args:
        study: the study folder (or a database URL, with the checkpoints in its folder).
        run_id: a run id from ``fuselab show DIR`` or :meth:`Store.runs`.
        data_root: dataset root (default: the study config's ``data.root``, then the dataset's
            own default); the data give the model its input shapes.

    Raises:
        StoreError: the run does not exist, has not finished or has no checkpoint (the message
            names the run and its status).
    """
    from fuselab import models
    from fuselab.study.execute import load_splits, num_outputs
    from fuselab.train import load_checkpoint

    store = open_store(study, readonly=True)
    try:
        runs = {r["run_id"]: r for r in store.runs()}
        study_cfg = store.study().get("config", {})
    finally:
        store.close()
    run = runs.get(run_id)
    if run is None:
        raise StoreError(f"{os.fspath(study)}: no run {run_id!r} (it has {len(runs)} runs; "
                         f"`fuselab show` lists them)")
    if run["status"] != "done":
        raise StoreError(f"{os.fspath(study)}: run {run_id!r} ({run['variant']}, seed "
                         f"{run['seed']}) is {run['status']}, not done: it has no trained model")
    path = _checkpoint(study, run)
    config: dict[str, Any] = run["config"]
    root = data_root if data_root is not None else study_cfg.get("data", {}).get("root")
    train = load_splits(config, None if root is None else os.fspath(root))["train"]
    model = models.build(config["model"], input_shapes=train.shapes,
                         num_outputs=num_outputs(train))
    load_checkpoint(path, model)
    return model.eval()


def _checkpoint(study: str | os.PathLike[str], run: dict[str, Any]) -> Path:
    """The run's checkpoint: where the store says, else ``checkpoints/<run_id>.pt`` beside the
    store (a study folder that was moved or copied)."""
    recorded = run.get("checkpoint_path")
    candidates = [Path(recorded)] if recorded else []
    if "://" not in os.fspath(study):
        candidates.append(Path(study) / CHECKPOINTS / f"{run['run_id']}.pt")
    for p in candidates:
        if p.is_file():
            return p
    raise StoreError(f"run {run['run_id']!r} ({run['variant']}, seed {run['seed']}) has no "
                     f"checkpoint (looked at {[str(p) for p in candidates]}; "
                     f"execution.checkpoints = false keeps none)")
