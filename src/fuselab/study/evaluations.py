"""Deprecated module (one release): moved to :mod:`fuselab.study.evaluate_table`."""

from fuselab.study.evaluate_table import (
    CROSS_RUN,
    EVALUATIONS,
    options,
    resolve,
    run_evaluation,
    summary_metrics,
)

__all__ = ["CROSS_RUN", "EVALUATIONS", "options", "resolve", "run_evaluation", "summary_metrics"]
