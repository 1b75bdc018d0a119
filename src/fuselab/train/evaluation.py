"""Deprecated module (one release): moved to :mod:`fuselab.train.scoring`."""

from fuselab.train.scoring import (  # noqa: F401  (old import path)
    check_output,
    evaluate_split,
    forward,
    model_inputs,
    needed_modalities,
    score_split,
)
