"""Inspection figures: MSAF attention per class and module (paper 002 Figures 6-7), C-LSTM
final-layer activations per time step (paper 000 Figure 11) and Pro-Fusion linear-probe accuracy
per unroll step (paper 001 Figure 13), plus the EMAP gap bar chart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fuselab.report.aggregate import group_values, order_levels, seed_stat, snr_key, snr_label
from fuselab.report.context import ReportData
from fuselab.report.document import FigureRef
from fuselab.report.plotting import FigureSink, colors, legend_outside, new_figure

_MAX_VARIANT_FIGURES = 6


def _variants_with(data: ReportData, recs: list[dict[str, Any]]) -> list[str]:
    have = {data.variant_by_run[str(r["run_id"])] for r in recs}
    return [v for v in data.variants if v in have]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:40] or "variant"


def msaf_attention(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Heatmap of mean attention (class x modality), one panel per MSAF module, per variant."""
    recs = [r for r in data.records_of("inspect_msaf") if r["metric"] == "attention"]
    refs: list[FigureRef] = []
    groups = group_values(recs, ("module", "class", "modality"), data.variant_by_run)
    for v in _variants_with(data, recs)[:_MAX_VARIANT_FIGURES]:
        keys = [k for k in groups if k[0] == v]
        modules = order_levels(k[1] for k in keys)
        classes = order_levels(k[2] for k in keys)
        mods = order_levels(k[3] for k in keys)
        fig, axes = new_figure(1, len(modules), panel_w=2.8 + 0.5 * len(mods),
                               panel_h=1.6 + 0.28 * len(classes))
        grids = np.full((len(modules), len(classes), len(mods)), np.nan)
        for a, mod in enumerate(modules):
            for i, c in enumerate(classes):
                for j, m in enumerate(mods):
                    stat = seed_stat(groups.get((v, mod, c, m), {}))
                    grids[a, i, j] = stat.mean if stat else np.nan
        for a, (ax, mod) in enumerate(zip(axes, modules, strict=True)):
            # One scale per module: sums over a module's channels differ in size between modules.
            im = ax.imshow(grids[a], aspect="auto", cmap="magma")
            fig.colorbar(im, ax=ax, label="attention")
            if grids[a].size <= 40:
                for (i, j), val in np.ndenumerate(grids[a]):
                    if np.isfinite(val):
                        ax.text(j, i, f"{val:.3g}", ha="center", va="center", fontsize=7,
                                color="black",
                                bbox={"fc": "white", "alpha": 0.6, "lw": 0, "pad": 0.5})
            ax.set_xticks(range(len(mods)), [str(m) for m in mods])
            ax.set_yticks(range(len(classes)), [str(c) for c in classes])
            ax.set_xlabel("modality")
            ax.set_ylabel("class")
            ax.set_title(f"MSAF module {mod}")
            ax.grid(False)
        fig.suptitle(v)
        refs.append(sink.save(fig, f"msaf_attention_{_slug(v)}",
                              f"{v}: MSAF attention summed per modality and averaged per class, one "
                              "panel per module (cf. paper 002 Figures 6-7); mean over seeds."))
    return refs


def clstm_activations(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Final-layer activation of each class over time steps for one sample at several SNRs."""
    recs = [r for r in data.records_of("inspect_clstm") if r["metric"] == "activation"]
    refs: list[FigureRef] = []
    for v in _variants_with(data, recs)[:_MAX_VARIANT_FIGURES]:
        # One representative model and sample, as in the paper: the first seed's first sample.
        run = min(data.runs_of(v), key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
        mine = [r for r in recs if str(r["run_id"]) == str(run["run_id"])]
        sample = order_levels(r.get("sample") for r in mine)[0]
        mine = [r for r in mine if r.get("sample") == sample]
        snr_keys = sorted({k for r in mine for k in r if k.startswith("snr_")})
        scenarios = sorted({tuple(r.get(k) for k in snr_keys) for r in mine},
                           key=lambda s: tuple(snr_key(x) for x in s), reverse=True)
        classes = order_levels(r.get("class") for r in mine)
        palette = colors(len(classes))
        ncols = min(4, len(scenarios))
        nrows = -(-len(scenarios) // ncols)
        fig, axes = new_figure(nrows, ncols, panel_w=3.2, panel_h=2.6, extra_w=1.0)
        for n, (ax, scen) in enumerate(zip(axes, scenarios, strict=False)):
            for color, c in zip(palette, classes, strict=True):
                pts = sorted((r["step"], r["value"]) for r in mine if r.get("class") == c
                             and tuple(r.get(k) for k in snr_keys) == scen)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, label=str(c))
            ax.set_title(", ".join(f"{k[4:]} SNR {snr_label(x)}"
                                   for k, x in zip(snr_keys, scen, strict=True)) or "clean")
            ax.set_xlabel("time step")
            ax.set_ylabel("final-layer activation")
            if n == ncols - 1:
                ax.legend(title="class", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        for ax in axes[len(scenarios):]:
            ax.set_visible(False)
        fig.suptitle(f"{v} (seed {run.get('seed')}, sample {sample})")
        refs.append(sink.save(fig, f"clstm_steps_{_slug(v)}",
                              f"{v}: C-LSTM final-layer activations per time step for one test "
                              "sample at several SNRs (cf. paper 000 Figure 11)."))
    return refs


def probe_accuracy(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Linear-probe accuracy of each unimodal representation against the unroll step."""
    recs = [r for r in data.records_of("inspect_probe") if r["metric"] == "probe_accuracy"]
    if not recs:
        return []
    groups = group_values(recs, ("modality", "step"), data.variant_by_run)
    mods = order_levels(k[1] for k in groups)
    variants = _variants_with(data, recs)
    palette = dict(zip(variants, colors(len(variants)), strict=True))
    fig, axes = new_figure(1, len(mods), panel_w=3.8, panel_h=3.2, extra_w=2.5)
    for n, (ax, mod) in enumerate(zip(axes, mods, strict=True)):
        for v in variants:
            steps = sorted(k[2] for k in groups if k[0] == v and k[1] == mod)
            stats = [seed_stat(groups[(v, mod, s)]) for s in steps]
            pts = [(s, st) for s, st in zip(steps, stats, strict=True) if st is not None]
            if not pts:
                continue
            ax.errorbar([p[0] for p in pts], [p[1].mean for p in pts],
                        yerr=[p[1].std or 0.0 for p in pts], marker="o", capsize=3,
                        color=palette[v], label=v)
        ax.set_xlabel("unroll step")
        ax.set_ylabel("linear-probe accuracy (fraction)")
        ax.set_title(f"{mod} features")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if n == len(mods) - 1:
            legend_outside(fig, ax)
    return [sink.save(fig, "probe_accuracy", "Accuracy of a linear probe on each modality's "
                      "features after each Pro-Fusion unroll step (cf. paper 001 Figure 13); mean "
                      "± sample std over seeds.")]


def emap_bars(data: ReportData, sink: FigureSink) -> list[FigureRef]:
    """Full-model vs EMAP accuracy per variant as paired bars."""
    recs = [r for r in data.records_of("emap") if r.get("projection") in ("full", "emap")]
    if not recs:
        return []
    groups = group_values(recs, ("projection",), data.variant_by_run)
    variants = _variants_with(data, recs)
    fig, (ax,) = new_figure(1, 1, panel_w=max(4.0, 0.9 * len(variants) + 1.5), panel_h=3.4,
                            extra_w=1.8)
    width = 0.38
    for k, (proj, color) in enumerate((("full", "tab:blue"), ("emap", "tab:orange"))):
        stats = [seed_stat(groups.get((v, proj), {})) for v in variants]
        x = np.arange(len(variants)) + (k - 0.5) * width
        ax.bar(x, [s.mean if s else np.nan for s in stats], width,
               yerr=[s.std or 0.0 if s else 0.0 for s in stats], capsize=3, color=color,
               label="full model" if proj == "full" else "EMAP projection")
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_title("full model vs additive (EMAP) projection")
    legend_outside(fig, ax)
    return [sink.save(fig, "emap", "Test accuracy of each model and of its EMAP projection; the "
                      "gap is the accuracy the model draws from cross-modal interactions.")]
