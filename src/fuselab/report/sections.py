"""Assembles the report's sections (text, tables, figures) from :class:`ReportData`.

A section whose evaluation the study did not run comes out empty and is left out of the report.
A figure that cannot be drawn from malformed records is reported in a "Report warnings" section
(or raised with ``strict=True``) instead of aborting the whole report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from fuselab.report import fig_design, fig_inspect, fig_noise
from fuselab.report.aggregate import Stat, fmt_stat
from fuselab.report.claims import claims_section, environment_section
from fuselab.report.context import ReportData
from fuselab.report.document import Cell, FigureRef, Section, Table
from fuselab.report.plotting import FigureSink
from fuselab.report.tables import (
    by_type_table,
    emap_table,
    failed_table,
    leaderboard_rows,
    leaderboard_table,
    missing_modality_table,
    robustness_table,
    runs_table,
)

FigureFn = Callable[[ReportData, FigureSink], list[FigureRef]]


def _summary_text(data: ReportData) -> str:
    counts = Counter(str(r["status"]) for r in data.runs)
    status = ", ".join(f"{counts[s]} {s}" for s in ("done", "failed", "running", "pending") if counts[s])
    parts = [
        f"{len(data.runs)} runs ({status or 'none'}) over {len(data.variants)} variants.",
        f"Primary metric: {data.primary or 'none (no finished run has a test metric)'}.",
        f"Baseline for differences: {data.baseline or 'none'} ({data.baseline_note}).",
    ]
    best = _best(data)
    if best:
        parts.insert(1, best)
    created = data.study.get("created_at")
    if created:
        parts.insert(0, f"Study created {created}.")
    return " ".join(parts)


def _best(data: ReportData) -> str:
    rows = leaderboard_rows(data)
    if not rows or data.primary is None or rows[0].get(data.primary) is None:
        return ""
    top = rows[0]
    stat = Stat(top[data.primary], top.get(f"{data.primary}_std"), top["done"])
    return f"Best variant by {data.primary}: {top['variant']} ({fmt_stat(stat, data.primary)})."


def build_sections(data: ReportData, sink: FigureSink, *, strict: bool = False) -> list[Section]:
    """Every non-empty section of the report, in reading order."""
    warnings: list[str] = []

    def figs(*fns: FigureFn) -> list[FigureRef]:
        out: list[FigureRef] = []
        for fn in fns:
            try:
                out += fn(data, sink)
            except Exception as exc:  # one bad evaluation must not cost the whole report
                if strict:
                    raise
                warnings.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
        return out

    def table(fn: Callable[[ReportData], Table | None]) -> list[Table]:
        try:
            t = fn(data)
        except Exception as exc:
            if strict:
                raise
            warnings.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
            return []
        return [t] if t is not None and t.rows else []

    try:
        claims = claims_section(data, sink)
    except Exception as exc:  # a stored claim the current schema rejects must not cost the report
        if strict:
            raise
        warnings.append(f"claims_section: {type(exc).__name__}: {exc}")
        claims = Section("claims", "Claims")
    sections = [
        claims,
        Section("leaderboard-section", "Leaderboard",
                "One row per variant (grid point without the seed); failed runs are excluded "
                "from the statistics and listed at the end.",
                tables=table(leaderboard_table)),
        Section("design", "Where and how to fuse",
                "Accuracy and cost of each fusion depth and operator.",
                figures=figs(fig_design.accuracy_vs_depth, fig_design.accuracy_vs_cost,
                             fig_design.cost_vs_depth)),
        Section("snr-grid", "Accuracy over the SNR grid",
                "Test accuracy when both modalities are degraded by white noise at the given "
                "linear SNRs, and the difference to the baseline variant.",
                figures=figs(fig_noise.snr_heatmaps)),
        Section("robustness", "Robustness to noise",
                "Performance against input SNR; ROBUSTAUC is the area between a variant's curve "
                "and the baseline's (positive: more robust).",
                tables=table(robustness_table), figures=figs(fig_noise.robustness_curves)),
        Section("missing", "Missing modalities", tables=table(missing_modality_table)),
        Section("by-type", "Accuracy per question type", tables=table(by_type_table)),
        Section("emap", "EMAP: does the model use cross-modal interactions?",
                tables=table(emap_table), figures=figs(fig_inspect.emap_bars)),
        Section("inspection", "Inspection",
                figures=figs(fig_inspect.msaf_attention, fig_inspect.clstm_activations,
                             fig_inspect.probe_accuracy)),
        Section("training", "Training curves", figures=figs(fig_design.training_curves)),
        Section("runs-section", "All runs", tables=table(runs_table)),
        Section("failed-section", "Failed runs",
                "Runs that raised (or stopped on a non-finite loss), with the recorded message.",
                tables=table(failed_table)),
        environment_section(data),
    ]
    if warnings:
        rows = [[Cell(w, None)] for w in warnings]
        sections.append(Section("warnings", "Report warnings",
                                "Parts of the report that could not be drawn from the stored records.",
                                tables=[Table("warnings", ["problem"], rows, sortable=False,
                                              pre_columns=(0,))]))
    summary = Section("summary", "Summary", _summary_text(data))
    return [summary] + [s for s in sections if not s.is_empty()]
