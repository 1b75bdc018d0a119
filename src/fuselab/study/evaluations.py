"""Deprecated module (one release): moved to :mod:`fuselab.study.evaluate_table`."""

from fuselab.study.evaluate_table import (  # noqa: F401  (old import path)
    CROSS_RUN,
    EVALUATIONS,
    options,
    resolve,
    run_evaluation,
    summary_metrics,
)
