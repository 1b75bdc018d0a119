"""Everything the report derives once from the store's plain data (:class:`ReportData`).

Inputs are exactly the store read interface: ``study()`` (``name``, ``config``, ``created_at``),
``runs()`` rows and tidy ``records()`` with ``run_id``. Only ``done`` runs feed the tables and
figures; failed runs are listed with their error messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuselab.report.aggregate import primary_metric, run_metrics, variant_of

_RUN_STATUSES = ("pending", "running", "done", "failed")


def _check_inputs(study: Any, runs: Any, records: Any) -> None:
    if not isinstance(study, Mapping):
        raise TypeError(f"study: expected a dict (store.study()), got {type(study).__name__}")
    for name, rows in (("runs", runs), ("records", records)):
        if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
            raise TypeError(f"{name}: expected a list of dicts, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"{name}[{i}]: expected a dict, got {type(row).__name__}")
    for i, run in enumerate(runs):
        if "run_id" not in run:
            raise ValueError(f"runs[{i}]: missing key 'run_id' (keys: {sorted(run)})")
        status = run.get("status")
        if status not in _RUN_STATUSES:
            raise ValueError(
                f"runs[{i}] ({run['run_id']}): status must be one of {list(_RUN_STATUSES)}, "
                f"got {status!r}"
            )
    for i, rec in enumerate(records):
        missing = [k for k in ("run_id", "evaluation", "metric", "value") if k not in rec]
        if missing:
            raise ValueError(f"records[{i}]: missing key {missing[0]!r} (keys: {sorted(rec)})")


def _report_options(config: Mapping[str, Any]) -> dict[str, Any]:
    opts = config.get("report")
    return dict(opts) if isinstance(opts, Mapping) else {}


def _configured_baseline(config: Mapping[str, Any]) -> Any:
    # The study config owns this name ([study] baseline); accept a [report] override too.
    for section in ("report", "study", "evaluate"):
        sub = config.get(section)
        if isinstance(sub, Mapping) and sub.get("baseline"):
            return sub["baseline"]
    return config.get("baseline")


#: Factors that describe *how* modalities are fused; every other factor (grid axes such as a
#: hidden width, the training SNR) is context that a variant and its baseline must share.
FUSION_FACTORS = ("depth", "operator", "fusion_layer", "progressive", "grad_blend", "fusion",
                  "fusion_depth", "stage")


@dataclass
class ReportData:
    """Runs, records and derived facts (variants, metrics per run, primary metric, baseline)."""

    study: dict[str, Any]
    runs: list[dict[str, Any]]
    records: list[dict[str, Any]]
    variants: list[str] = field(default_factory=list)
    factors: dict[str, dict[str, Any]] = field(default_factory=dict)
    variant_by_run: dict[str, str] = field(default_factory=dict)
    metrics_by_run: dict[str, dict[str, float]] = field(default_factory=dict)
    primary: str | None = None
    #: The baseline as the study names it (a variant, or its fusion part such as ``"late"``).
    baseline: str | None = None
    baseline_note: str = ""
    #: ``{variant: its baseline variant}`` (same non-fusion context, e.g. the same hidden width).
    baseline_of: dict[str, str] = field(default_factory=dict)

    @property
    def baseline_variants(self) -> set[str]:
        return set(self.baseline_of.values())

    def context_of(self, variant: str) -> dict[str, Any]:
        """The non-fusion factors of a variant (what its baseline must share)."""
        return {k: v for k, v in self.factors[variant].items() if k not in FUSION_FACTORS}

    @property
    def done(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") == "done"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") == "failed"]

    def records_of(self, evaluation: str) -> list[dict[str, Any]]:
        """Records of one evaluation from finished runs."""
        return [r for r in self.records if r.get("evaluation") == evaluation]

    def runs_of(self, variant: str) -> list[dict[str, Any]]:
        return [r for r in self.done if variant_of(r) == variant]


def prepare(
    study: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]
) -> ReportData:
    """Validate the store's plain data and derive what every table and figure needs."""
    _check_inputs(study, runs, records)
    config = study.get("config") or {}
    options = _report_options(config)
    data = ReportData(study=dict(study), runs=[dict(r) for r in runs], records=[])
    for run in data.runs:
        variant = variant_of(run)
        if variant not in data.factors:
            data.variants.append(variant)
            data.factors[variant] = dict(run.get("factors") or {})
    done_ids = {str(r["run_id"]) for r in data.done}
    data.records = [dict(r) for r in records if str(r["run_id"]) in done_ids]
    by_run: dict[str, list[dict[str, Any]]] = {}
    for rec in data.records:
        by_run.setdefault(str(rec["run_id"]), []).append(rec)
    for run in data.done:
        rid = str(run["run_id"])
        data.variant_by_run[rid] = variant_of(run)
        data.metrics_by_run[rid] = run_metrics(run, by_run.get(rid, []))
    names = [m for ms in data.metrics_by_run.values() for m in ms]
    data.primary = primary_metric(names, options.get("metric"))
    data.baseline, data.baseline_note, candidates = _resolve_baseline(data, config)
    for v in data.variants:
        same = [b for b in candidates if data.context_of(b) == data.context_of(v)]
        chosen = same[0] if same else (candidates[0] if len(candidates) == 1 else None)
        if chosen is not None:
            data.baseline_of[v] = chosen
    for rec in data.records_of("robustness"):
        # The runner compared each run with a concrete baseline run: trust its pairing.
        base = rec.get("baseline")
        if base is not None and str(base) in data.factors:
            data.baseline_of[data.variant_by_run[str(rec["run_id"])]] = str(base)
    return data


def _candidates(data: ReportData, wanted: Any) -> list[str]:
    """Variants the baseline spec names: a full variant name, its fusion part (``"late"`` for
    ``"late · d=4"``), a factor value, or a ``{factor: value}`` mapping."""
    if isinstance(wanted, Mapping):
        return [v for v in data.variants
                if all(str(data.factors[v].get(k)) == str(val) for k, val in wanted.items())]
    text = str(wanted)
    if text in data.factors:
        return [text]
    prefixed = [v for v in data.variants if v.startswith(text + " · ")]
    if prefixed:
        return prefixed
    return [v for v in data.variants if text in (str(x) for x in data.factors[v].values())]


def _resolve_baseline(data: ReportData, config: Mapping[str, Any]) -> tuple[str | None, str, list[str]]:
    configured = _configured_baseline(config)
    if configured is not None:
        found = _candidates(data, configured)
        if not found:
            raise ValueError(
                f"report.baseline: {configured!r} matches no variant of this study; "
                f"variants: {data.variants}"
            )
        return (configured if isinstance(configured, str) else found[0]), "named in the study config", found
    recorded = [str(r["baseline"]) for r in data.records_of("robustness")
                if r.get("baseline") is not None and str(r["baseline"]) in data.factors]
    if recorded:
        first = max(dict.fromkeys(recorded), key=recorded.count)
        return first, "the baseline of the robustness evaluation", list(dict.fromkeys(recorded))
    late = [v for v in data.variants if str(data.factors[v].get("depth", "")).lower() == "late"]
    late = late or [v for v in data.variants if "late" in v.lower()]
    if late:
        concat = [v for v in late if "concat" in v.lower()]
        pool = concat or late
        return pool[0], "the late-fusion variant (no baseline configured)", pool
    return None, "no baseline configured and no late-fusion variant", []
