"""Noise figures: SNR-grid heatmaps and their differences against the baseline variant (paper 000
Figure 1), and performance-vs-noise curves with ROBUSTAUC in the legend (paper 001).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Rectangle

from fuselab.report.aggregate import group_values, seed_stat, snr_key, snr_label
from fuselab.report.context import ReportData
from fuselab.report.document import FigureRef
from fuselab.report.plotting import FigureSink, colors, legend_outside, metric_label, new_figure

_PER_FIGURE = 12
_COLS = 4


def _task_metric(data: ReportData, recs: list[dict[str, Any]]) -> str | None:
    names = list(dict.fromkeys(str(r["metric"]) for r in recs))
    base = data.primary[5:] if data.primary and data.primary.startswith("test_") else None
    return base if base in names else (names[0] if names else None)


def snr_grids(data: ReportData) -> tuple[list[str], list[list[Any]], dict[str, np.ndarray], str]:
    """Mean-over-seeds SNR grids per variant.

    Returns ``(modalities, levels, grids, metric)``: the noised modalities (1 or 2, sorted; rows
    follow ``modalities[0]``), each modality's SNR levels (ascending, ``None`` = original last),
    ``{variant: (len(levels[0]), len(levels[1]) or 1) array}`` (NaN where a cell is missing).
    """
    recs = data.records_of("snr_grid")
    metric = _task_metric(data, recs)
    recs = [r for r in recs if r["metric"] == metric]
    mods = sorted({k[4:] for r in recs for k in r if k.startswith("snr_")})[:2]
    if not recs or not mods:
        return [], [], {}, ""
    keys = [f"snr_{m}" for m in mods]
    levels = [sorted({r.get(k) for r in recs}, key=snr_key) for k in keys]
    groups = group_values(recs, keys, data.variant_by_run)
    shape = (len(levels[0]), len(levels[1]) if len(levels) > 1 else 1)
    grids: dict[str, np.ndarray] = {}
    for v in data.variants:
        cells = {k[1:]: runs for k, runs in groups.items() if k[0] == v}
        if not cells:
            continue
        grid = np.full(shape, np.nan)
        for i, a in enumerate(levels[0]):
            for j, b in enumerate(levels[1] if len(levels) > 1 else [None]):
                stat = seed_stat(cells.get((a, b) if len(levels) > 1 else (a,), {}))
                if stat is not None:
                    grid[i, j] = stat.mean
        grids[v] = grid
    return mods, levels, grids, str(metric)


def difference_grids(
    grids: Mapping[str, np.ndarray], baseline: str | Mapping[str, str]
) -> dict[str, np.ndarray]:
    """``grid[v] - grid[baseline of v]`` for every variant that is not its own baseline
    (positive: ``v`` beats the baseline). ``baseline`` is one variant name, or
    ``{variant: baseline variant}``; variants without a baseline are left out."""
    pairs = ({v: baseline for v in grids} if isinstance(baseline, str)
             else {v: b for v, b in baseline.items() if v in grids})
    for b in set(pairs.values()):
        if b not in grids:
            raise ValueError(
                f"baseline variant {b!r} has no SNR grid; variants with one: {sorted(grids)}"
            )
    return {v: grids[v] - grids[b] for v, b in pairs.items() if v != b}


def _train_snr(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    # Where the training SNR lives is the study config's business; look in the usual places.
    for holder in (config, config.get("data"), config.get("train"), config.get("dataset")):
        if isinstance(holder, Mapping):
            for key in ("train_snr", "snr"):
                if isinstance(holder.get(key), Mapping):
                    return holder[key]
    return None


def _heatmap(ax: Any, grid: np.ndarray, mods: list[str], levels: list[list[Any]], **kw: Any) -> Any:
    im = ax.imshow(grid, origin="lower", aspect="auto", **kw)
    cols = levels[1] if len(levels) > 1 else [None]
    ax.set_yticks(range(len(levels[0])), [snr_label(x) for x in levels[0]])
    ax.set_xticks(range(len(cols)), [snr_label(x) for x in cols] if len(levels) > 1 else [""],
                  rotation=90 if len(cols) > 6 else 0)
    ax.set_ylabel(f"{mods[0]} SNR (linear)")
    ax.set_xlabel(f"{mods[1]} SNR (linear)" if len(mods) > 1 else "")
    ax.grid(False)
    if grid.size <= 49:
        for (i, j), val in np.ndenumerate(grid):
            if np.isfinite(val):
                ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=6.5,
                        color="black", bbox={"fc": "white", "alpha": 0.5, "lw": 0, "pad": 0.5})
    return im


def _mark_train(ax: Any, data: ReportData, variant: str, mods: list[str], levels: list[list[Any]]) -> None:
    runs = data.runs_of(variant)
    train = _train_snr(runs[0].get("config") or {}) if runs else None
    if not train or len(mods) < 2:
        return
    try:
        i = levels[0].index(train.get(mods[0]))
        j = levels[1].index(train.get(mods[1]))
    except ValueError:
        return
    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))


def _panels(data: ReportData, sink: FigureSink, grids: Mapping[str, np.ndarray], mods: list[str],
            levels: list[list[Any]], name: str, title: Any, caption: str, cbar_label: str,
            **kw: Any) -> list[FigureRef]:
    refs = []
    names = list(grids)
    for start in range(0, len(names), _PER_FIGURE):
        chunk = names[start:start + _PER_FIGURE]
        ncols = min(_COLS, math.ceil(math.sqrt(len(chunk))))
        nrows = -(-len(chunk) // ncols)
        fig, axes = new_figure(nrows, ncols, panel_w=3.4, panel_h=3.0, extra_w=0.8)
        im: Any = None
        for ax, v in zip(axes, chunk, strict=False):
            im = _heatmap(ax, grids[v], mods, levels, **kw)
            _mark_train(ax, data, v, mods, levels)
            ax.set_title(title(v), fontsize=9)
        for ax in axes[len(chunk):]:
            ax.set_visible(False)
        fig.colorbar(im, ax=axes[: len(chunk)], shrink=0.8, label=cbar_label)
        part = f" (part {start // _PER_FIGURE + 1})" if len(names) > _PER_FIGURE else ""
        refs.append(sink.save(fig, name, caption + part))
    return refs


def snr_heatmaps(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Accuracy over the SNR grid per variant, then each variant minus the baseline."""
    mods, levels, grids, metric = snr_grids(data)
    if not grids:
        return []
    finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
    label = f"test {metric}"
    refs = _panels(
        data, sink, grids, mods, levels, "snr_grid", lambda v: v,
        f"Test {metric} over the SNR grid (mean over seeds; 'orig' = un-noised input, "
        "red box = training SNR), cf. paper 000 Figure 1", label,
        cmap="viridis", vmin=float(finite.min()), vmax=float(finite.max()),
    )
    pairs = {v: b for v, b in data.baseline_of.items() if v in grids and b in grids}
    diffs = difference_grids(grids, pairs)
    if diffs:
        finite = np.concatenate([d[np.isfinite(d)] for d in diffs.values()])
        lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1e-3
        refs += _panels(
            data, sink, diffs, mods, levels, "snr_grid_difference",
            lambda v: f"{v}\n− {pairs[v]}",
            f"Difference in test {metric}: variant − baseline ({data.baseline}) over the SNR "
            "grid (blue: better than the baseline), cf. paper 000 Figure 1",
            f"{label} difference vs baseline",
            cmap="RdBu", norm=TwoSlopeNorm(0.0, -lim, lim),
        )
    return refs


def robustness_curves(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Task metric vs SNR, one panel per noised modality, one line per variant (± std band)."""
    recs = data.records_of("snr_curve")
    metric = _task_metric(data, recs)
    recs = [r for r in recs if r["metric"] == metric]
    if not recs:
        return []
    groups = group_values(recs, ("modality", "snr"), data.variant_by_run)
    auc = group_values([r for r in data.records_of("robustness") if r["metric"] == "robust_auc"],
                       ("modality",), data.variant_by_run)
    mods = list(dict.fromkeys(k[1] for k in groups))
    variants = [v for v in data.variants if any(k[0] == v for k in groups)]
    palette = dict(zip(variants, colors(len(variants)), strict=True))
    fig, axes = new_figure(1, len(mods), panel_w=4.2, panel_h=3.4, extra_w=3.0)
    for n, (ax, mod) in enumerate(zip(axes, mods, strict=True)):
        levels = sorted({k[2] for k in groups if k[1] == mod}, key=snr_key)
        for v in variants:
            stats = [(i, seed_stat(groups.get((v, mod, s), {}))) for i, s in enumerate(levels)]
            pts = [(i, s) for i, s in stats if s is not None]
            if not pts:
                continue
            x = np.array([i for i, _ in pts], dtype=float)
            y = np.array([s.mean for _, s in pts])
            e = np.array([s.std or 0.0 for _, s in pts])
            a = seed_stat(auc.get((v, mod), {}))
            label = v + (f" (ROBUSTAUC {a.mean:+.3f})" if a is not None else "")
            is_base = v in data.baseline_variants
            style = {"ls": "--", "color": palette[v] if len(data.baseline_variants) > 1 else "black"} \
                if is_base else {"color": palette[v]}
            ax.plot(x, y, marker="o", ms=3, label=label + (" [baseline]" if is_base else ""),
                    **style)
            ax.fill_between(x, y - e, y + e, alpha=0.15, lw=0, color=style["color"])
        ax.set_xticks(range(len(levels)), [snr_label(s) for s in levels], rotation=45)
        ax.set_xlabel(f"SNR of {mod} (linear; orig = un-noised)" if mod != "all"
                      else "SNR of every modality (linear)")
        ax.set_ylabel(metric_label(f"test_{metric}"))
        ax.set_title(f"noise on {mod}")
        if n == len(mods) - 1:
            legend_outside(fig, ax)
    return [sink.save(fig, "robustness_curves", f"Test {metric} against input SNR (mean over "
                      "seeds, band ± sample std); ROBUSTAUC against the baseline in the legend.")]
