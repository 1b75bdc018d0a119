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
    # The study config owns this name; accept the places a config is likely to keep it.
    for section in ("report", "evaluate", "evaluations", "robustness"):
        sub = config.get(section)
        if isinstance(sub, Mapping) and sub.get("baseline"):
            return sub["baseline"]
    return config.get("baseline")


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
    baseline: str | None = None
    baseline_note: str = ""

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
    data.baseline, data.baseline_note = _resolve_baseline(data, config)
    return data


def _match_variant(data: ReportData, wanted: Any) -> str | None:
    if isinstance(wanted, Mapping):
        for v in data.variants:
            f = data.factors[v]
            if all(str(f.get(k)) == str(val) for k, val in wanted.items()):
                return v
        return None
    text = str(wanted)
    if text in data.factors:
        return text
    for v in data.variants:
        if text in (str(x) for x in data.factors[v].values()) or text in v:
            return v
    return None


def _resolve_baseline(data: ReportData, config: Mapping[str, Any]) -> tuple[str | None, str]:
    configured = _configured_baseline(config)
    if configured is not None:
        found = _match_variant(data, configured)
        if found is None:
            raise ValueError(
                f"report.baseline: {configured!r} matches no variant of this study; "
                f"variants: {data.variants}"
            )
        return found, "named in the study config"
    for rec in data.records_of("robustness"):
        if rec.get("baseline") is not None:
            found = _match_variant(data, rec["baseline"])
            if found is not None:
                return found, "the baseline of the robustness evaluation"
    late = [v for v in data.variants if str(data.factors[v].get("depth", "")).lower() == "late"]
    late = late or [v for v in data.variants if "late" in v.lower()]
    if late:
        concat = [v for v in late if "concat" in v.lower()]
        return (concat or late)[0], "the late-fusion variant (no baseline configured)"
    return None, "no baseline configured and no late-fusion variant"
