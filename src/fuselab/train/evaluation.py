"""Deprecated module (one release): moved to :mod:`fuselab.train.scoring`."""

from fuselab.train.scoring import (
    check_output,
    evaluate_split,
    forward,
    model_inputs,
    needed_modalities,
    score_split,
)

__all__ = ["check_output", "evaluate_split", "forward", "model_inputs", "needed_modalities",
           "score_split"]
