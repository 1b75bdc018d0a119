"""Design-space figures: accuracy vs fusion depth per operator, cost vs fusion depth (thesis 004
Figures 17-18), accuracy vs cost, and training curves. Values are mean ± sample std over seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import EngFormatter, MaxNLocator

from fuselab.report.aggregate import (
    COST_METRICS,
    DEPTH_FACTORS,
    group_values,
    order_levels,
    seed_stat,
    summarize,
)
from fuselab.report.context import ReportData
from fuselab.report.document import FigureRef
from fuselab.report.plotting import FigureSink, colors, legend_outside, metric_label, new_figure
from fuselab.tasks import lower_is_better

#: Count-like metrics shown with k/M/G tick labels (not latencies or memory: "200m ms" misleads).
_COUNTS = ("params", "fusion_params", "flops_per_sample", "throughput", "train_samples_per_s")


def _done_variants(data: ReportData) -> list[str]:
    done = set(data.variant_by_run.values())
    return [v for v in data.variants if v in done]


def x_factors(data: ReportData) -> list[str]:
    """Factors worth a plot's x axis: the fusion-depth factor if the grid varies one, then every
    numeric factor with several levels (a swept axis such as a hidden width), at most three."""
    levels = _levels(data)
    out = [name for name in DEPTH_FACTORS if len(levels.get(name, [])) > 1][:1]
    out += [k for k, vs in levels.items() if len(vs) > 1 and k not in out
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vs)]
    if not out:
        best = choose_x_factor(data)
        out = [best] if best else []
    return out[:3]


def _levels(data: ReportData) -> dict[str, list[Any]]:
    levels: dict[str, list[Any]] = {}
    for v in _done_variants(data):
        for k, val in data.factors[v].items():
            levels.setdefault(k, [])
            if val not in levels[k]:
                levels[k].append(val)
    return levels


def choose_x_factor(data: ReportData) -> str | None:
    """The factor on the x axis: a fusion-depth factor if the grid varies one, else the numeric
    factor with most levels, else the factor with most levels; ``None`` for a single-level grid."""
    variants = _done_variants(data)
    levels: dict[str, list[Any]] = {}
    for v in variants:
        for k, val in data.factors[v].items():
            levels.setdefault(k, [])
            if val not in levels[k]:
                levels[k].append(val)
    varied = {k: vs for k, vs in levels.items() if len(vs) > 1}
    if not varied:
        return None
    for name in DEPTH_FACTORS:
        if name in varied:
            return name
    numeric = [k for k, vs in varied.items() if all(isinstance(x, (int, float)) for x in vs)]
    pool = numeric or list(varied)
    return max(pool, key=lambda k: len(varied[k]))


def _line_label(variant: str, factors: dict[str, Any], x: str) -> str:
    # Variant names are "fusion part · axis=value ..."; dropping the x token names the line.
    xval = factors[x]
    drop = {str(xval), f"{x}={xval}"}
    parts = [p for p in variant.split(" · ") if p.strip() not in drop]
    if len(parts) < len(variant.split(" · ")):
        return " · ".join(parts) or "all"
    return variant  # the x value is not spelled in the name (e.g. "pro-fusion · d=4")


def _series(data: ReportData, x: str) -> dict[str, dict[Any, str]]:
    """``{line label: {x level: variant}}``: one line per variant family along ``x``."""
    out: dict[str, dict[Any, str]] = {}
    clash = False
    for v in _done_variants(data):
        f = data.factors[v]
        if x not in f:
            continue
        line = out.setdefault(_line_label(v, f, x), {})
        clash = clash or f[x] in line
        line[f[x]] = v
    if clash:  # two variants on one point: fall back to one point-line per variant
        return {v: {data.factors[v][x]: v} for v in _done_variants(data) if x in data.factors[v]}
    return out


def _variant_stat(data: ReportData, variant: str, metric: str) -> Any:
    return summarize(
        data.metrics_by_run[rid][metric]
        for rid, v in data.variant_by_run.items()
        if v == variant and metric in data.metrics_by_run[rid]
    )


def _line_panel(ax: Any, data: ReportData, x: str, metric: str, show_legend: bool) -> bool:
    series = _series(data, x)
    xs = order_levels(lvl for s in series.values() for lvl in s)
    pos = {lvl: i for i, lvl in enumerate(xs)}
    drawn = False
    for color, (label, points) in zip(colors(len(series)), series.items(), strict=True):
        pts = [(pos[lvl], _variant_stat(data, v, metric)) for lvl, v in points.items()]
        pts = sorted((p, s) for p, s in pts if s is not None)
        if not pts:
            continue
        px = [p for p, _ in pts]
        py = [s.mean for _, s in pts]
        err = [s.std or 0.0 for _, s in pts]
        # A grid with one family needs no legend entry called "all".
        ax.errorbar(px, py, yerr=err, marker="o", capsize=3, color=color,
                    label=None if label == "all" else label)
        drawn = True
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=30 if len(xs) > 5 else 0)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(metric_label(metric))
    if metric in _COUNTS:
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    if show_legend:
        legend_outside(ax.figure, ax)
    return drawn


def accuracy_vs_depth(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """The primary metric against the fusion depth (one line per operator or other family), and
    against each swept numeric axis (e.g. hidden width, paper 001 Figure 4)."""
    xs = x_factors(data)
    if not xs or data.primary is None:
        return []
    refs = []
    for x in xs:
        fig, (ax,) = new_figure(1, 1, panel_w=6.0, panel_h=3.8, extra_w=2.8)
        if not _line_panel(ax, data, x, data.primary, show_legend=True):
            continue
        ax.set_title(f"{metric_label(data.primary).split(' (')[0]} vs {x.replace('_', ' ')}")
        refs.append(sink.save(fig, f"accuracy_vs_{_slug(x)}",
                              f"{metric_label(data.primary)} against {x.replace('_', ' ')}, one "
                              "line per variant family; error bars: sample std over seeds."))
    return refs


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:30]


def cost_vs_depth(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Cost metrics (FLOPs, parameters, speed) against the depth factor."""
    x = next(iter(x_factors(data)), None)
    present = {m for ms in data.metrics_by_run.values() for m in ms}
    metrics = [m for m in COST_METRICS if m in present and m != "fusion_params"][:4]
    if x is None or not metrics:
        return []
    ncols = 2 if len(metrics) > 2 else len(metrics)
    nrows = -(-len(metrics) // ncols)
    fig, axes = new_figure(nrows, ncols, panel_w=3.8, panel_h=3.2, extra_w=2.8)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    for i, (ax, m) in enumerate(zip(axes, metrics, strict=False)):
        _line_panel(ax, data, x, m, show_legend=i == ncols - 1)
        ax.set_title(metric_label(m).split(" (")[0])
    return [sink.save(fig, "cost_vs_depth", f"Cost against {x.replace('_', ' ')} (cf. thesis 004 "
                      "Figures 17-18), mean ± sample std over seeds.")]


def accuracy_vs_cost(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Scatter of the primary metric against FLOPs per sample and parameters, one point per variant."""
    present = {m for ms in data.metrics_by_run.values() for m in ms}
    costs = [c for c in ("flops_per_sample", "params", "train_samples_per_s") if c in present][:2]
    if data.primary is None or not costs:
        return []
    variants = _done_variants(data)
    fig, axes = new_figure(1, len(costs), panel_w=4.6, panel_h=3.8, extra_w=2.8)
    palette = colors(len(variants))
    for i, (ax, cost) in enumerate(zip(axes, costs, strict=True)):
        xs = []
        for color, v in zip(palette, variants, strict=True):
            sx, sy = _variant_stat(data, v, cost), _variant_stat(data, v, data.primary)
            if sx is None or sy is None:
                continue
            ax.errorbar(sx.mean, sy.mean, xerr=sx.std or 0.0, yerr=sy.std or 0.0, fmt="o",
                        capsize=3, color=color, label=v)
            xs.append(sx.mean)
        if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        elif cost in _COUNTS:
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlabel(metric_label(cost) + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel(metric_label(data.primary))
        cheaper = "left" if lower_is_better(cost) else "right"
        ax.set_title(f"{metric_label(data.primary).split(' (')[0]} vs "
                     f"{metric_label(cost).split(' (')[0]} (cheaper: {cheaper})")
        if i == len(costs) - 1:
            legend_outside(fig, ax)
    return [sink.save(fig, "accuracy_vs_cost", "Each point is one variant (mean over seeds, "
                      "error bars: sample std); the best trade-offs are accurate and cheap.")]


def training_curves(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Training loss and validation metrics per epoch, mean over seeds with a ±std band."""
    recs = data.records_of("curve")
    metrics = list(dict.fromkeys(str(r["metric"]) for r in recs))
    if not metrics:
        return []
    metrics.sort(key=lambda m: (m != "train_loss", m))
    metrics = metrics[:3]
    variants = [v for v in _done_variants(data)
                if any(data.variant_by_run[str(r["run_id"])] == v for r in recs)]
    palette = dict(zip(variants, colors(len(variants)), strict=True))
    fig, axes = new_figure(1, len(metrics), panel_w=4.0, panel_h=3.3, extra_w=2.5)
    for i, (ax, m) in enumerate(zip(axes, metrics, strict=True)):
        groups = group_values([r for r in recs if r["metric"] == m], ("epoch",),
                              data.variant_by_run)
        for v in variants:
            stats = [(k[1], seed_stat(runs)) for k, runs in groups.items() if k[0] == v]
            pts = sorted(((e, s) for e, s in stats if s is not None), key=lambda p: p[0])
            if not pts:
                continue
            ex = np.array([e for e, _ in pts], dtype=float)
            mean = np.array([s.mean for _, s in pts])
            std = np.array([s.std or 0.0 for _, s in pts])
            ax.plot(ex, mean, color=palette[v], label=v, marker="." if len(ex) < 15 else None)
            ax.fill_between(ex, mean - std, mean + std, color=palette[v], alpha=0.15, lw=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric_label(m))
        ax.set_title(metric_label(m).split(" (")[0])
        if i == len(metrics) - 1:
            legend_outside(fig, ax)
    return [sink.save(fig, "training_curves", "Training curves per epoch: mean over seeds, "
                      "shaded band ± sample std.")]
