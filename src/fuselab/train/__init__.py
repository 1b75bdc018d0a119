"""Training: ``fit``, gradient blending, checkpoints and task metrics (see docs/training.md).

    from fuselab.train import TrainConfig, fit
    result = fit(model, splits["train"], splits["val"], TrainConfig(epochs=5, patience=2))
    result.best["accuracy"], result.max_metric, result.last_metric, result.samples_per_s
"""

from fuselab.train import metrics
from fuselab.train.blending import GradientBlender, blend_weights, ogr
from fuselab.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fuselab.train.config import TrainConfig
from fuselab.train.errors import CheckpointMismatchError, NonFiniteLossError
from fuselab.train.loop import fit, monitored_metric
from fuselab.train.result import FitResult
from fuselab.train.scoring import evaluate_split, score_split

__all__ = [
    "Checkpoint",
    "CheckpointMismatchError",
    "FitResult",
    "GradientBlender",
    "NonFiniteLossError",
    "TrainConfig",
    "blend_weights",
    "evaluate_split",
    "fit",
    "load_checkpoint",
    "metrics",
    "monitored_metric",
    "ogr",
    "save_checkpoint",
    "score_split",
]
