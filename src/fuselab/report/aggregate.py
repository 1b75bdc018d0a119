"""Plain-data helpers shared by the report's tables and figures.

Everything here works on the store's plain dicts (``runs()`` rows and tidy ``records()``), so the
report can be tested without a database and never touches models. Conventions:

* a *variant* is a grid point without the seed (``run["variant"]``); seeds of one variant are
  aggregated as mean and sample standard deviation (``ddof=1``; ``None`` for a single seed);
* a run's *metrics* are its ``metrics`` dict, completed by its ``test`` records
  (``test_<metric>``) and ``cost`` records (``<metric>``) when the runner did not copy them there.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Stat and the number formats live in fuselab._stats (shared with study.claims); the report
# modules import them from here.
from fuselab._stats import Stat, fmt_number, fmt_stat, summarize  # noqa: F401
from fuselab._stats import is_number as _is_number

#: Preferred primary metrics, best first (``test_`` prefixed in a run's metrics).
PRIMARY_PREFERENCE = (
    "accuracy", "macro_f1", "exact_match", "acc2", "acc7", "f1", "pearson_r", "mse", "mae",
)
#: Cost columns, in the order the leaderboard shows them.
COST_METRICS = (
    "params", "fusion_params", "flops_per_sample", "latency_ms_b1", "throughput",
    "train_samples_per_s", "peak_memory_mb",
)
#: Factor names that mean "where the modalities are fused", preferred as a plot's x axis.
DEPTH_FACTORS = ("depth", "fusion_depth", "fusion_layer", "fusion", "stage", "fusion_point")
_DEPTH_WORDS = ("input", "early", "stage", "mid", "middle", "intermediate", "late", "decision")


def variant_of(run: Mapping[str, Any]) -> str:
    """A run's variant label: ``run["variant"]``, else its factors joined, else its run id."""
    label = run.get("variant")
    if label:
        return str(label)
    factors = run.get("factors") or {}
    if factors:
        return " · ".join(str(v) for v in factors.values())
    return str(run.get("run_id", "?"))


def run_metrics(run: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Flat final metrics of one run: its ``metrics`` dict completed from ``test``/``cost`` records.

    ``records`` are that run's records; the run's own ``metrics`` win over derived values.
    """
    out: dict[str, float] = {}
    for rec in records:
        value: Any = rec.get("value")
        if not _is_number(value):
            continue
        if rec.get("evaluation") == "test" and rec.get("split", "test") in (None, "test"):
            out[f"test_{rec['metric']}"] = float(value)
        elif rec.get("evaluation") == "cost":
            out[str(rec["metric"])] = float(value)
        elif rec.get("evaluation") == "emap" and rec.get("metric") == "emap_gap":
            out["emap_gap"] = float(value)
    for key, value in (run.get("metrics") or {}).items():
        if _is_number(value):
            out[str(key)] = float(value)
    return out


def primary_metric(metric_names: Iterable[str], requested: str | None = None) -> str | None:
    """The metric the leaderboard is sorted by: ``requested`` if given, else the first preferred
    ``test_*`` metric present, else the first ``test_*`` metric, else ``None``."""
    names = list(dict.fromkeys(metric_names))
    if requested:
        for cand in (requested, f"test_{requested}"):
            if cand in names:
                return cand
        raise ValueError(
            f"report.metric: {requested!r} is not a metric of any finished run; "
            f"available: {sorted(names)}"
        )
    for pref in PRIMARY_PREFERENCE:
        if f"test_{pref}" in names:
            return f"test_{pref}"
    tests = [n for n in names if n.startswith("test_")]
    return tests[0] if tests else None


def order_metrics(names: Iterable[str], primary: str | None) -> list[str]:
    """Leaderboard column order: primary, other test metrics, other metrics, then cost metrics."""
    names = list(dict.fromkeys(names))
    tests = [n for n in names if n.startswith("test_") and n != primary]
    cost = [c for c in COST_METRICS if c in names]
    rest = [n for n in names if n not in tests and n not in cost and n != primary]
    head = [primary] if primary in names else []
    return head + tests + sorted(rest) + cost


def _depth_key(text: str) -> tuple[int, float, str]:
    low = text.lower()
    if re.fullmatch(r"\d+", low):  # a bare stage index ("after stage 2")
        return (_DEPTH_WORDS.index("stage"), float(low), low)
    for rank, word in enumerate(_DEPTH_WORDS):
        if low.startswith(word):
            num = re.search(r"\d+(\.\d+)?", low)
            return (rank, float(num.group()) if num else -1.0, low)
    return (len(_DEPTH_WORDS), 0.0, low)


def order_levels(values: Iterable[Any]) -> list[Any]:
    """Distinct factor levels in a meaningful order: numeric ascending; depth words from early to
    late (``early < stage-1 < stage-2 < late < decision``); otherwise first appearance."""
    levels = list(dict.fromkeys(values))
    if all(_is_number(v) for v in levels):
        return sorted(levels)
    texts = [str(v) for v in levels]
    if any(_depth_key(t)[0] < len(_DEPTH_WORDS) for t in texts):
        return [v for _, v in sorted(zip(texts, levels, strict=True), key=lambda p: _depth_key(p[0]))]
    return levels


def snr_key(value: Any) -> tuple[int, float]:
    """Sort key for SNR levels: ascending linear SNR, ``None`` (the original input) last."""
    if value is None or value == "orig":
        return (1, math.inf)
    return (0, float(value))


def snr_label(value: Any) -> str:
    """``"orig"`` for the original (un-noised) input, else the linear SNR compactly."""
    if value is None or value == "orig":
        return "orig"
    return f"{float(value):g}"


def group_values(
    records: Iterable[Mapping[str, Any]], keys: Sequence[str], variant_by_run: Mapping[str, str]
) -> dict[tuple[Any, ...], dict[str, list[float]]]:
    """``{(variant, *condition values): {run_id: [values]}}``; records of unknown runs are dropped.

    Keeping runs apart lets callers average within a run first, then over seeds.
    """
    out: dict[tuple[Any, ...], dict[str, list[float]]] = {}
    for rec in records:
        run_id = str(rec.get("run_id"))
        value: Any = rec.get("value")
        # NaN marks a diverged evaluation; averaging it in would blank the whole cell.
        if run_id not in variant_by_run or not _is_number(value) or not math.isfinite(value):
            continue
        key = (variant_by_run[run_id], *(rec.get(k) for k in keys))
        out.setdefault(key, {}).setdefault(run_id, []).append(float(rec["value"]))
    return out


def seed_stat(per_run: Mapping[str, Sequence[float]]) -> Stat | None:
    """Average each run's values, then summarize over runs (seeds)."""
    return summarize(statistics.fmean(v) for v in per_run.values() if v)
