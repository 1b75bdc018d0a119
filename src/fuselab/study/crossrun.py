"""Cross-run records, computed by the parent after all runs: robustness vs the baseline variant.

Each finished run with ``snr_curve`` records is compared with the baseline run of the same seed
and the same non-fusion factors (axes, train SNR) through
:func:`fuselab.evaluate.robustness_records` (ROBUSTAUC, relative and effective robustness).
Each of those three metrics is also scaled to [0, 1] across the variants that share the seed, the
non-fusion factors and the modality (:func:`fuselab.evaluate.minmax_scale`, MultiBench's
normalisation): metric ``<name>_scaled``, 1 = the most robust variant of that comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Record = dict[str, Any]


def _context(run: dict[str, Any], fusion_part: Callable[[str], str]) -> tuple[Any, ...]:
    # What must match between a run and its baseline: seed and the non-fusion name suffix.
    suffix = run["variant"][len(fusion_part(run["variant"])):]
    return (run["seed"], suffix)


def robustness_vs_baseline(
    runs: Sequence[dict[str, Any]],
    records_of: Callable[[str], list[Record]],
    baseline: str,
    fusion_part: Callable[[str], str],
    *,
    modalities: Sequence[str] | None = None,
) -> tuple[list[Record], list[str]]:
    """Robustness records (each with ``run_id``) of every done run, and warnings.

    Args:
        runs: store rows (``run_id``, ``status``, ``variant``, ``seed``).
        records_of: ``run_id -> records`` (the store's ``records``).
        baseline: the baseline's fusion part, e.g. ``"late · concat"``.
        fusion_part: variant name -> its fusion part (strips axis/train-SNR suffixes).
    """
    from fuselab.evaluate import robustness_records

    done = [r for r in runs if r["status"] == "done"]
    bases = {_context(r, fusion_part): r for r in done if fusion_part(r["variant"]) == baseline}
    out: list[Record] = []
    warnings: list[str] = []
    cache: dict[str, list[Record]] = {}

    def recs(rid: str) -> list[Record]:
        if rid not in cache:
            cache[rid] = [r for r in records_of(rid) if r.get("evaluation") == "snr_curve"]
        return cache[rid]

    for run in done:
        base = bases.get(_context(run, fusion_part))
        if base is None or not recs(run["run_id"]):
            continue
        if not recs(base["run_id"]):
            warnings.append(f"baseline run {base['run_id']} has no snr_curve records")
            continue
        try:
            rows = robustness_records(recs(run["run_id"]), recs(base["run_id"]),
                                      baseline=base["variant"], modalities=modalities)
        except ValueError as e:
            warnings.append(f"run {run['run_id']} ({run['variant']}): {e}")
            continue
        out += [{**row, "run_id": run["run_id"]} for row in rows]
    scaled, more = scaled_records(out, done, fusion_part)
    return out + scaled, warnings + more


def scaled_records(
    rows: Sequence[Record], runs: Sequence[dict[str, Any]], fusion_part: Callable[[str], str]
) -> tuple[list[Record], list[str]]:
    """``<metric>_scaled`` records: each robustness row min-max scaled among the runs of its seed
    and non-fusion factors, per modality and metric (groups of one run, or of equal values, are
    skipped with a warning: the scale is undefined there)."""
    from fuselab.evaluate import minmax_scale

    by_id = {r["run_id"]: r for r in runs}
    groups: dict[tuple[Any, ...], dict[str, Record]] = {}
    for row in rows:
        key = (*_context(by_id[row["run_id"]], fusion_part), row["modality"], row["metric"])
        groups.setdefault(key, {})[row["run_id"]] = row
    out: list[Record] = []
    warnings: list[str] = []
    for (seed, suffix, modality, metric), members in groups.items():
        where = f"{metric} of modality {modality!r}, seed {seed}{suffix and f' ({suffix.strip()})'}"
        if len(members) < 2:
            warnings.append(f"{where}: one variant only, no [0, 1] scaling")
            continue
        try:
            scaled = minmax_scale({rid: r["value"] for rid, r in members.items()})
        except ValueError as e:
            warnings.append(f"{where}: {e}")
            continue
        out += [{**members[rid], "metric": f"{metric}_scaled", "value": v}
                for rid, v in scaled.items()]
    return out, warnings


__all__ = ["robustness_vs_baseline", "scaled_records"]
