"""Evaluation suite: SNR grids, robustness areas, missing modalities, EMAP, cost, inspection.

Every function takes a model (``{m: (B, *shape_m)} -> (B, classes)``, or a generation model scored
by exact match of ``model.generate``) and a
:class:`~fuselab.data.MultimodalDataset` and returns tidy records
``{"evaluation": str, "metric": str, "value": float, **condition}`` (docs/architecture.md,
"Record conventions"); docs/evaluation.md documents each one::

    import fuselab.evaluate as ev
    grid = ev.snr_grid(model, test)                          # 10 x 10 records, snr_audio/snr_image
    curves = ev.snr_curves(model, test)                      # per modality and "all"
    rob = ev.robustness_records(curves, base_curves, baseline="late · concat")
    miss = ev.missing_modalities(model, test, train=train)   # zero / mean / drop per modality
    ev.emap(model, test); ev.emap_logits(model, inputs)      # (N, classes)
    ev.cost(model, test)                                     # params, FLOPs, latency, memory
    ev.operator_cost("msaf", [64, 1024])                     # an operator alone at given sizes
    ev.msaf_attention(model, test); ev.clstm_activations(clstm, test)
    ev.test_by_type(vqa_model, test)                         # exact match per question type
    ev.linear_probes(profusion, test, train=train)           # per unroll step and modality
"""

from fuselab.evaluate._common import METRICS, higher_is_better
from fuselab.evaluate.by_type import test_by_type
from fuselab.evaluate.cost import cost, count_params, flops_per_sample
from fuselab.evaluate.emap import emap, emap_logits
from fuselab.evaluate.grid_records import curves_from_grid, difference_grid
from fuselab.evaluate.inspect_clstm import clstm_activations
from fuselab.evaluate.inspect_msaf import find_attention_modules, msaf_attention
from fuselab.evaluate.missing import MODES, missing_modalities, training_means
from fuselab.evaluate.operator_cost import operator_cost
from fuselab.evaluate.probe import fit_probe, linear_probes
from fuselab.evaluate.robustness import (
    curve,
    effective_robustness,
    minmax_scale,
    relative_robustness,
    robust_auc,
    robustness_records,
)
from fuselab.evaluate.snr import (
    DEFAULT_SNRS,
    check_grid,
    snr_curves,
    snr_grid,
    snr_grids,
)

__all__ = [
    "DEFAULT_SNRS",
    "METRICS",
    "MODES",
    "check_grid",
    "clstm_activations",
    "cost",
    "count_params",
    "curve",
    "curves_from_grid",
    "difference_grid",
    "effective_robustness",
    "emap",
    "emap_logits",
    "find_attention_modules",
    "fit_probe",
    "flops_per_sample",
    "higher_is_better",
    "linear_probes",
    "minmax_scale",
    "missing_modalities",
    "msaf_attention",
    "operator_cost",
    "relative_robustness",
    "robust_auc",
    "robustness_records",
    "snr_curves",
    "snr_grid",
    "snr_grids",
    "test_by_type",
    "training_means",
]
