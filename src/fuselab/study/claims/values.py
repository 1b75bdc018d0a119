"""The numbers a claim reads, from the store's plain ``runs()`` and ``records()`` only.

Conventions (docs/study.md, "Claims"): only ``done`` runs count; a record is read when its
``evaluation`` and ``metric`` match the claim and its conditions pass ``where`` / ``exclude``; a
run's value is the mean of its matching finite records (per *cell*, a distinct condition tuple,
for ``cells_ge``; per x level for a ``trend`` over a condition key); values are then keyed by the
run's seed (one run per variant and seed).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fuselab._stats import is_number
from fuselab.study.claims.schema import Claim

#: Record keys that are not conditions.
NOT_CONDITIONS = ("run_id", "evaluation", "metric", "value")
Cell = tuple[tuple[str, Any], ...]
PerSeed = dict[int, float]


class StoreView:
    """Finished runs grouped by variant and their records by run (built once per study)."""

    def __init__(self, runs: Sequence[Mapping[str, Any]],
                 records: Iterable[Mapping[str, Any]]) -> None:
        self.runs_of: dict[str, list[Mapping[str, Any]]] = {}
        self.all_variants: list[str] = []
        for r in runs:
            v = str(r.get("variant"))
            if v not in self.all_variants:
                self.all_variants.append(v)
            if r.get("status") == "done":
                self.runs_of.setdefault(v, []).append(r)
        done = {str(r["run_id"]) for rs in self.runs_of.values() for r in rs}
        self.records_of: dict[str, list[Mapping[str, Any]]] = {}
        for rec in records:
            rid = str(rec.get("run_id"))
            if rid in done:
                self.records_of.setdefault(rid, []).append(rec)

    def matching(self, claim: Claim, variant: str) -> dict[int, list[Mapping[str, Any]]]:
        """``{seed: the run's records the claim reads}`` for the finished runs of ``variant``."""
        out: dict[int, list[Mapping[str, Any]]] = {}
        for run in self.runs_of.get(variant, []):
            recs = [r for r in self.records_of.get(str(run["run_id"]), [])
                    if r.get("evaluation") == claim.evaluation and r.get("metric") == claim.metric
                    and _finite(r.get("value")) and passes(r, claim)]
            if recs:
                out[int(run["seed"])] = recs
        return out

    def factor(self, variant: str, name: str) -> Any:
        """The value of grid factor ``name`` of ``variant`` (None when it has none)."""
        runs = self.runs_of.get(variant, [])
        return (runs[0].get("factors") or {}).get(name) if runs else None


def _finite(v: Any) -> bool:
    return is_number(v) and math.isfinite(float(v))


def _matches(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(value is None if a is None else (value is not None and value == a)
               for a in allowed)


def passes(rec: Mapping[str, Any], claim: Claim) -> bool:
    """The record's conditions pass the claim's ``where`` and ``exclude`` tables."""
    if any(not _matches(rec.get(k), vals) for k, vals in claim.where.items()):
        return False
    return not any(_matches(rec.get(k), vals) for k, vals in claim.exclude.items())


def cell_of(rec: Mapping[str, Any], skip: Iterable[str] = ()) -> Cell:
    """The record's condition tuple (sorted by key), without the keys in ``skip``."""
    drop = set(NOT_CONDITIONS) | set(skip)
    return tuple(sorted((k, v) for k, v in rec.items() if k not in drop))


def run_means(matching: Mapping[int, list[Mapping[str, Any]]]) -> PerSeed:
    """One value per seed: the mean of that run's matching records."""
    return {seed: statistics.fmean(float(r["value"]) for r in recs)
            for seed, recs in matching.items()}


def cell_means(matching: Mapping[int, list[Mapping[str, Any]]],
               key: Any = cell_of) -> dict[Any, PerSeed]:
    """``{cell: {seed: mean of the run's records in that cell}}``; ``key`` maps a record to its
    cell (default: its whole condition tuple)."""
    acc: dict[Any, dict[int, list[float]]] = {}
    for seed, recs in matching.items():
        for r in recs:
            acc.setdefault(key(r), {}).setdefault(seed, []).append(float(r["value"]))
    return {cell: {s: statistics.fmean(v) for s, v in by_seed.items()}
            for cell, by_seed in acc.items()}


def cell_label(cell: Cell) -> str:
    """``"snr_audio=0.25, snr_image=clean"`` (``"all"`` for the empty condition tuple)."""
    return ", ".join(f"{k}={'clean' if v is None else v}" for k, v in cell) or "all"


def rank_levels(levels: Iterable[Any]) -> list[Any]:
    """Distinct levels in reading order: numbers ascending, then strings as first seen, then
    None (``clean``, the un-noised input: the highest SNR)."""
    distinct = list(dict.fromkeys(levels))
    nums = sorted(v for v in distinct if is_number(v))
    words = [v for v in distinct if v is not None and not is_number(v)]
    return nums + words + ([None] if None in distinct else [])
