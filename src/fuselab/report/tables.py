"""The report's tables: leaderboard (one row per variant), runs (one row per run), failed runs,
missing modalities, EMAP and robustness areas. Values over seeds are ``mean ± std`` (sample std).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fuselab.report.aggregate import (
    Stat,
    fmt_number,
    fmt_stat,
    group_values,
    order_metrics,
    seed_stat,
    summarize,
    variant_of,
)
from fuselab.report.context import ReportData
from fuselab.report.document import Cell, Table
from fuselab.tasks import lower_is_better


def leaderboard_rows(data: ReportData) -> list[dict[str, Any]]:
    """One dict per variant, best first by the primary metric.

    Keys: ``variant``, ``factors``, ``runs``, ``done``, ``failed``, ``seeds`` (of finished runs),
    then for every metric ``m`` of the finished runs ``m`` (mean) and ``m_std`` (sample std, ``None``
    for one seed), and ``duration_s`` (mean wall time of the finished runs).
    """
    names = [m for ms in data.metrics_by_run.values() for m in ms]
    metrics = order_metrics(names, data.primary)
    rows: list[dict[str, Any]] = []
    for variant in data.variants:
        all_runs = [r for r in data.runs if variant_of(r) == variant]
        done = [r for r in all_runs if r.get("status") == "done"]
        row: dict[str, Any] = {
            "variant": variant,
            "factors": dict(data.factors[variant]),
            "runs": len(all_runs),
            "done": len(done),
            "failed": sum(r.get("status") == "failed" for r in all_runs),
            "seeds": [r.get("seed") for r in done],
        }
        for m in metrics:
            stat = summarize(
                data.metrics_by_run[str(r["run_id"])][m]
                for r in done
                if m in data.metrics_by_run[str(r["run_id"])]
            )
            row[m] = stat.mean if stat else None
            row[f"{m}_std"] = stat.std if stat else None
        dur = summarize(r["duration_s"] for r in done if r.get("duration_s") is not None)
        row["duration_s"] = dur.mean if dur else None
        rows.append(row)
    primary = data.primary
    if primary:
        sign = 1.0 if lower_is_better(primary) else -1.0
        rows.sort(key=lambda r: (r[primary] is None, sign * (r[primary] or 0.0)))
    return rows


def leaderboard_metrics(rows: list[dict[str, Any]]) -> list[str]:
    """The metric names present in :func:`leaderboard_rows` output, in column order."""
    if not rows:
        return []
    fixed = {"variant", "factors", "runs", "done", "failed", "seeds", "duration_s"}
    return [k for k in rows[0] if k not in fixed and not k.endswith("_std")]


def _stat_cell(row: dict[str, Any], m: str) -> Cell:
    mean = row.get(m)
    if mean is None:
        return Cell("—", None)
    std = row.get(f"{m}_std")
    return Cell(fmt_stat(Stat(mean, std, 2 if std is not None else 1), m), mean)


def leaderboard_table(data: ReportData) -> Table:
    """Sortable leaderboard: one row per variant, metrics as mean ± std over seeds."""
    rows = leaderboard_rows(data)
    metrics = leaderboard_metrics(rows)
    columns = ["#", "variant", "seeds (done/all)", *metrics, "wall time (s)"]
    body = []
    for rank, row in enumerate(rows, start=1):
        cells = [
            Cell(str(rank), rank),
            Cell(row["variant"], row["variant"]),
            Cell(f"{row['done']}/{row['runs']}", row["done"]),
            *(_stat_cell(row, m) for m in metrics),
            Cell(fmt_number(row["duration_s"]), row["duration_s"]),
        ]
        body.append(cells)
    best = f"sorted by {data.primary} ({'lower' if lower_is_better(data.primary) else 'higher'} is better)" if data.primary else "no finished runs"
    return Table(
        "leaderboard",
        columns,
        body,
        caption=f"Mean ± sample std over seeds of finished runs; {best}.",
    )


def runs_table(data: ReportData) -> Table:
    """Sortable table with exactly one row per run of the study, whatever its status."""
    primary = data.primary
    columns = ["run id", "variant", "seed", "status", primary or "metric", "wall time (s)", "error"]
    body = []
    for run in data.runs:
        rid = str(run["run_id"])
        value = data.metrics_by_run.get(rid, {}).get(primary) if primary else None
        error = (run.get("error") or "").strip().splitlines()
        body.append([
            Cell(rid[:12], rid),
            Cell(variant_of(run), variant_of(run)),
            Cell("" if run.get("seed") is None else str(run["seed"]), run.get("seed")),
            Cell(str(run["status"]), str(run["status"])),
            Cell(fmt_number(value, primary or ""), value),
            Cell(fmt_number(run.get("duration_s")), run.get("duration_s")),
            Cell(error[-1] if error else "", error[-1] if error else ""),
        ])
    return Table("runs", columns, body, caption="Every run of the study, one row each.")


def failed_table(data: ReportData) -> Table | None:
    """Failed runs with their full error messages; ``None`` when nothing failed."""
    if not data.failed:
        return None
    body = [
        [
            Cell(str(r["run_id"])[:12], str(r["run_id"])),
            Cell(variant_of(r), variant_of(r)),
            Cell("" if r.get("seed") is None else str(r["seed"]), r.get("seed")),
            Cell((r.get("error") or "(no message recorded)").strip(), None),
        ]
        for r in data.failed
    ]
    return Table("failed", ["run id", "variant", "seed", "error"], body, pre_columns=(3,))


def _task_metric(data: ReportData, recs: list[dict[str, Any]]) -> str | None:
    names = list(dict.fromkeys(str(r["metric"]) for r in recs))
    base = data.primary[5:] if data.primary and data.primary.startswith("test_") else None
    if base in names:
        return base
    return names[0] if names else None


def _condition_table(
    data: ReportData,
    evaluation: str,
    keys: tuple[str, ...],
    label: Callable[[tuple[Any, ...]], str],
    order: Callable[[tuple[Any, ...]], Any],
    name: str,
    caption: str,
    pool: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: r,
) -> Table | None:
    """Variants x conditions table of the task metric of ``evaluation``, mean ± std over seeds.

    ``keys`` are the record's condition keys whose value tuples become the columns (labelled by
    ``label``, sorted by ``order``); ``pool`` may rewrite a record first (e.g. to merge columns).
    """
    metric = _task_metric(data, data.records_of(evaluation))
    recs = [pool(r) for r in data.records_of(evaluation) if r["metric"] == metric]
    if not recs:
        return None
    groups = group_values(recs, keys, data.variant_by_run)
    conds = sorted(dict.fromkeys(k[1:] for k in groups), key=order)
    return Table(name, ["variant"] + [label(c) for c in conds], _grid_rows(data, groups, conds),
                 caption=caption.format(metric=metric))


def _grid_rows(
    data: ReportData, groups: dict[tuple[Any, ...], dict[str, list[float]]], conds: list[tuple[Any, ...]]
) -> list[list[Cell]]:
    """One row per variant that has records: its name, then mean ± std over seeds per condition."""
    body = []
    for v in data.variants:
        if not any(k[0] == v for k in groups):
            continue
        cells = [Cell(v, v)]
        for cond in conds:
            stat = seed_stat(groups.get((v, *cond), {}))
            cells.append(Cell(fmt_stat(stat), stat.mean if stat else None))
        body.append(cells)
    return body


def missing_modality_table(data: ReportData) -> Table | None:
    """Task metric with each modality removed (zeroed / mean-filled / dropped), per variant."""
    return _condition_table(
        data, "missing_modality", ("modality", "mode"),
        label=lambda c: "full input" if c[0] == "none" else f"without {c[0]} ({c[1]})",
        # The full input first, then the ablations grouped by mode.
        order=lambda c: (c[0] != "none", str(c[1]), str(c[0])),
        name="missing-modality",
        caption="Test {metric} with one modality removed: zero = zeros, mean = training mean, "
        "drop = the model skips it; mean ± std over seeds.",
        # The full input does not depend on the removal mode: pool it into one column.
        pool=lambda r: {**r, "mode": None} if r.get("modality") == "none" else r,
    )


def by_type_table(data: ReportData) -> Table | None:
    """Task metric per question type, with the full input and with a modality dropped (VQA)."""

    def label(c: tuple[Any, ...]) -> str:
        qtype, needs, dropped = c
        mark = " (needs image)" if needs == 1 else ""
        return f"{qtype}{mark}" + ("" if dropped in (None, "none") else f" · without {dropped}")

    return _condition_table(
        data, "test_by_type", ("question_type", "needs_image", "dropped"), label=label,
        order=lambda c: (str(c[0]), str(c[2]) != "none", str(c[2])),
        name="by-question-type",
        caption="Test {metric} per question type, with the full input and with a modality "
        "dropped: questions that need the image should lose the most; mean ± std over seeds.",
    )


def emap_table(data: ReportData) -> Table | None:
    """Full-model vs EMAP-projection accuracy and their gap (interaction the model uses)."""
    recs = data.records_of("emap")
    if not recs:
        return None
    acc = group_values([r for r in recs if r.get("projection") in ("full", "emap")], ("projection",),
                       data.variant_by_run)
    gaps = group_values([r for r in recs if r["metric"] == "emap_gap"], (), data.variant_by_run)
    bounds = group_values([r for r in recs if r["metric"] in ("emap_gap_lo", "emap_gap_hi")],
                          ("metric",), data.variant_by_run)
    body = []
    for v in data.variants:
        full, emap = acc.get((v, "full"), {}), acc.get((v, "emap"), {})
        gap_runs = gaps.get((v,), {})
        if not gap_runs and full and emap:
            gap_runs = {
                rid: [math.fsum(full[rid]) / len(full[rid]) - math.fsum(emap[rid]) / len(emap[rid])]
                for rid in full
                if rid in emap
            }
        if not (full or emap or gap_runs):
            continue
        stats = [seed_stat(full), seed_stat(emap), seed_stat(gap_runs)]
        row = [Cell(v, v), *(Cell(fmt_stat(s), s.mean if s else None) for s in stats)]
        if bounds:
            lo, hi = (seed_stat(bounds.get((v, f"emap_gap_{b}"), {})) for b in ("lo", "hi"))
            text = f"[{lo.mean:.3f}, {hi.mean:.3f}]" if lo and hi else "—"
            row.append(Cell(text, lo.mean if lo else None))
        body.append(row)
    columns = ["variant", "full model accuracy", "EMAP accuracy", "EMAP gap"]
    if bounds:
        columns.append("gap bootstrap interval (seed mean)")
    return Table(
        "emap",
        columns,
        body,
        caption="EMAP (Hessel & Lee 2020): accuracy of the best additive projection of the model's "
        "logits; gap = full − EMAP, near 0 when the model uses no cross-modal interaction. The "
        "interval (when stored) is fuselab's paired bootstrap over test samples, per run, "
        "averaged over seeds.",
    )


def robustness_table(data: ReportData) -> Table | None:
    """ROBUSTAUC and MultiBench relative/effective robustness per noised modality."""
    recs = data.records_of("robustness")
    if not recs:
        return None
    groups = group_values(recs, ("modality", "metric"), data.variant_by_run)
    conds = list(dict.fromkeys((k[1], k[2]) for k in groups))
    raw = ("robust_auc", "relative_robustness", "effective_robustness")
    order = {m: i for i, m in enumerate([*raw, *(f"{m}_scaled" for m in raw)])}
    conds.sort(key=lambda c: (str(c[0]), order.get(str(c[1]), 9), str(c[1])))
    baselines = sorted({str(r.get("baseline")) for r in recs if r.get("baseline") is not None})
    return Table(
        "robustness",
        ["variant"] + [f"{metric} ({mod})" for mod, metric in conds],
        _grid_rows(data, groups, conds),
        caption="ROBUSTAUC (paper 001: area between the variant's and the baseline's "
        "performance-vs-noise curves) and relative/effective robustness; *_scaled: min-max "
        "scaled to [0, 1] across the variants of each seed (1 = most robust); baseline: "
        f"{', '.join(baselines) or 'not recorded'}; mean ± std over seeds.",
    )
