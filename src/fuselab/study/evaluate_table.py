"""The ``[evaluate]`` table of a study config: which evaluations a run performs and how each is
called (was ``fuselab.study.evaluations``; the functions themselves live in :mod:`fuselab.evaluate`).

Each key names an evaluation; its value is ``true`` or a table of keyword options passed to the
function (checked against its signature before any run)::

    [evaluate]
    test = true                                   # fuselab.train.score_split on the test split
    snr_grid = { snrs = ["clean", 2, 1, 0.5] }    # fuselab.evaluate.snr_grid
    snr_curve = { snrs = ["clean", 1, 0.5, 0.25] }
    missing_modality = { modes = ["zero", "mean"] }
    emap = { max_samples = 200 }
    cost = true
    operator_cost = { operator = "msaf", channels = [64, 1024] }   # no model: sizes given
    test_by_type = { drop = ["image"] }          # fuselab.evaluate.test_by_type (VQA)
    robustness = true      # cross-run (needs snr_curve and study.baseline)

TOML has no null: ``"clean"`` in an ``snrs`` list means the original input (``None``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from fuselab.study.errors import ConfigError

Record = dict[str, Any]
Splits = Mapping[str, Any]

#: name -> (function in fuselab.evaluate, or "" for the test split; arguments the runner fills).
EVALUATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "test": ("", ("model", "data")),
    "snr_grid": ("snr_grid", ("model", "ds")),
    "snr_curve": ("snr_curves", ("model", "ds")),
    "missing_modality": ("missing_modalities", ("model", "ds", "train")),
    "emap": ("emap", ("model", "ds")),
    "cost": ("cost", ("model", "ds")),
    "operator_cost": ("operator_cost", ()),  # the operator alone at given sizes; no model
    "test_by_type": ("test_by_type", ("model", "ds")),
    "inspect_msaf": ("msaf_attention", ("model", "ds")),
    "inspect_clstm": ("clstm_activations", ("model", "ds")),
    "inspect_probe": ("linear_probes", ("model", "ds", "train")),
    "robustness": ("", ()),  # cross-run: computed by the parent after all runs
}
CROSS_RUN = ("robustness",)


def resolve(name: str) -> Callable[..., Any]:
    """The function behind evaluation ``name`` (``ConfigError`` if unknown or unavailable)."""
    if name not in EVALUATIONS:
        raise ConfigError(f"evaluate.{name}", f"unknown evaluation; allowed: {sorted(EVALUATIONS)}")
    fn_name, _ = EVALUATIONS[name]
    if name == "test":
        from fuselab.train import score_split

        return score_split
    import fuselab.evaluate as ev

    fn = getattr(ev, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"evaluate.{name}", f"fuselab.evaluate.{fn_name} is not available in "
                                              "this fuselab version")
    return fn  # type: ignore[no-any-return]


def _clean_snrs(value: Any) -> Any:
    if isinstance(value, list):
        return [None if v == "clean" else v for v in value]
    if isinstance(value, dict):
        return {k: _clean_snrs(v) for k, v in value.items()}
    return value


def options(name: str, opts: Mapping[str, Any]) -> dict[str, Any]:
    """Validated keyword options of evaluation ``name`` (names checked against the signature)."""
    if name in CROSS_RUN:
        allowed = ["modalities"]
    else:
        params = inspect.signature(resolve(name)).parameters
        fixed = EVALUATIONS[name][1]
        allowed = [p for p, v in params.items() if p not in fixed and v.kind in
                   (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)]
    for key in opts:
        if key not in allowed:
            raise ConfigError(f"evaluate.{name}.{key}", f"unknown option; allowed: {sorted(allowed)}")
    return {k: _clean_snrs(v) if k in ("snrs", "snr") else v for k, v in opts.items()}


def run_evaluation(name: str, opts: Mapping[str, Any], model: Any, splits: Splits,
                   eval_batch_size: int) -> list[Record]:
    """Run evaluation ``name`` on the test split; returns tidy records."""
    kwargs = options(name, opts)
    fn = resolve(name)
    test = splits["test"]
    if name == "test":
        kwargs.setdefault("batch_size", eval_batch_size)
        scores = fn(model, test, **kwargs)
        return [{"evaluation": "test", "metric": k, "value": float(v), "split": "test"}
                for k, v in scores.items() if k != "loss"]
    fixed = EVALUATIONS[name][1]
    if not fixed:
        return list(fn(**kwargs))
    if "train" in fixed:
        kwargs["train"] = splits["train"]
    return list(fn(model, test, **kwargs))


def summary_metrics(records: list[Record]) -> dict[str, float]:
    """Flat final scalars of a run: ``test_<metric>``, cost metrics by name, ``emap_gap``."""
    out: dict[str, float] = {}
    for r in records:
        ev, metric = r.get("evaluation"), r.get("metric")
        if ev == "test":
            out[f"test_{metric}"] = float(r["value"])
        elif ev == "cost" or (ev == "emap" and metric == "emap_gap"):
            out[str(metric)] = float(r["value"])
    return out
