"""One small figure per claim, drawn from the numbers its verdict compared (``Verdict.details``):

* ``mean_ge`` / ``mean_gt`` / ``equals`` / ``between``: every seed's value per side, the mean
  ± std over seeds, the constant, target value or interval as a line or band;
* ``cells_ge``: left − right per condition cell (a heatmap over two condition keys, bars over
  one), cells where the claim fails marked ``x``;
* ``trend``: every run's value against x, level means ± std and the fitted line.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np

from fuselab.report.document import FigureRef
from fuselab.report.plotting import FigureSink, metric_label, new_figure
from fuselab.study.claims import DOES_NOT_HOLD, HOLDS, Verdict
from fuselab.study.claims.values import rank_levels

VERDICT_COLORS = {HOLDS: "#1b6e20", DOES_NOT_HOLD: "#b00020"}
_OTHER = "#8a6d00"


def claim_figure(v: Verdict, sink: FigureSink, number: int) -> FigureRef | None:
    """Draw and save the figure of claim ``number`` (1-based); None when the verdict compared
    nothing (e.g. inconclusive for lack of runs)."""
    d = v.details
    if not d:
        return None
    fig, (ax,) = new_figure(1, 1, panel_w=4.8, panel_h=3.2)
    if "cells" in d:
        _cells(fig, ax, v)
    elif "levels" in d:
        _trend(ax, v)
    else:
        _sides(ax, v)
    title = textwrap.fill(f"Claim {number}: {v.claim.name}", 50)  # fits the 4.8-in panel
    ax.set_title(f"{title}\n{v.verdict}", color=VERDICT_COLORS.get(v.verdict, _OTHER))
    caption = (f"Claim {number} ({v.claim.source}): {v.claim.name} — {v.verdict}: {v.reason}. "
               f"Read from {v.claim.evaluation} / {v.claim.metric} records.")
    return sink.save(fig, f"claim_{number}", caption)


def _seeds(values: Mapping[Any, float]) -> list[float]:
    return [float(x) for x in values.values()]


def _column(ax: Any, pos: float, values: list[float], color: Any) -> None:
    rng = np.random.default_rng(int(pos))  # the same jitter on every render
    ax.scatter(pos + rng.uniform(-0.08, 0.08, len(values)), values, s=18, color=color,
               alpha=0.7, zorder=3, label=None)
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    ax.errorbar([pos + 0.22], [mean], yerr=[std], fmt="D", color="black", capsize=4, zorder=4)


def _sides(ax: Any, v: Verdict) -> None:
    c, d = v.claim, v.details
    left = _seeds(d["left_seeds"])
    cols: list[tuple[str, list[float]]] = [(str(c.left), left)]
    if "right_seeds" in d:
        right = d["right_seeds"]
        if c.rule == "between" and set(right) == set(d["left_seeds"]):
            cols = [(f"{c.left} − {c.right}", [d["left_seeds"][s] - right[s] for s in right])]
        else:
            cols.append((str(c.right), _seeds(right)))
    for i, (_, vals) in enumerate(cols):
        _column(ax, float(i), vals, f"C{i}")
    ax.set_xticks(range(len(cols)), [textwrap.fill(n, 18) for n, _ in cols])
    ax.set_xlim(-0.6, len(cols) - 0.4)
    if d.get("right_constant") is not None and c.rule != "between":
        ax.axhline(d["right_constant"], ls="--", color="grey",
                   label=f"{'value' if c.rule == 'equals' else 'right'} = {d['right_constant']:g}")
    if c.rule == "equals" and d.get("allowed"):
        ax.axhspan(d["right_constant"] - d["allowed"], d["right_constant"] + d["allowed"],
                   color="grey", alpha=0.15)
    if c.rule == "between":
        lo, hi = d.get("min"), d.get("max")
        ymin, ymax = ax.get_ylim()
        ax.axhspan(ymin if lo is None else lo, ymax if hi is None else hi, color="tab:green",
                   alpha=0.12, label="claimed interval")
    diff = len(cols) == 1 and "−" in cols[0][0]
    ax.set_ylabel(f"{c.metric} difference" if diff else metric_label(c.metric))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", frameon=False)


def _cells(fig: Any, ax: Any, v: Verdict) -> None:
    rows = v.details["cells"]
    keys = [k for k in rows[0]["cell"] if len({repr(r["cell"].get(k)) for r in rows}) > 1]
    diff = {tuple(r["cell"].get(k) for k in keys): r["left"] - r["right"] for r in rows}
    bad = {tuple(r["cell"].get(k) for k in keys) for r in rows if not r["ok"]}
    right = v.claim.right
    what = f"{v.claim.left} − {right}" if isinstance(right, str) else f"{v.claim.left} − {right:g}"
    if len(keys) == 2:
        ys, xs = rank_levels(k[0] for k in diff), rank_levels(k[1] for k in diff)
        grid = np.full((len(ys), len(xs)), np.nan)
        for (a, b), val in diff.items():
            grid[ys.index(a), xs.index(b)] = val
        lim = max(float(np.nanmax(np.abs(grid))), 1e-9)
        im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, origin="lower", aspect="auto")
        for (a, b), val in diff.items():
            failed = (a, b) in bad
            if failed or grid.size <= 64:  # values readable in the cells of a small grid
                ax.text(xs.index(b), ys.index(a), f"{val:+.2f}" + (" x" if failed else ""),
                        ha="center", va="center", fontsize=7,
                        color="white" if abs(val) > 0.6 * lim else "black")
        ax.set_xticks(range(len(xs)), [_lvl(x) for x in xs])
        ax.set_yticks(range(len(ys)), [_lvl(y) for y in ys])
        ax.set_xlabel(keys[1])
        ax.set_ylabel(keys[0])
        ax.grid(False)
        fig.colorbar(im, ax=ax, label=f"{what} ({v.claim.metric})")
        return
    labels = ([_lvl(k[0]) for k in diff] if len(keys) == 1 else
              [r["label"] for r in rows])
    order = (rank_levels(k[0] for k in diff) if len(keys) == 1 else None)
    items = list(diff.items())
    if order is not None:
        items.sort(key=lambda kv: order.index(kv[0][0]))
        labels = [_lvl(k[0]) for k, _ in items]
    colors = ["#b00020" if k in bad else "#1f77b4" for k, _ in items]
    ax.bar(range(len(items)), [val for _, val in items], color=colors)
    ax.axhline(-v.claim.tol, ls="--", color="grey", lw=0.8)
    ax.set_xticks(range(len(items)), labels, rotation=45 if len(items) > 6 else 0, ha="right"
                  if len(items) > 6 else "center")
    ax.set_xlabel(keys[0] if len(keys) == 1 else "cell")
    ax.set_ylabel(f"{what} ({v.claim.metric})")


def _lvl(x: Any) -> str:
    return "clean" if x is None else f"{x:g}" if isinstance(x, float) else str(x)


def _trend(ax: Any, v: Verdict) -> None:
    d = v.details
    pts = np.asarray(d["points"], dtype=float)
    ax.scatter(pts[:, 0], pts[:, 1], s=14, alpha=0.5, color="C0", label="runs")
    lv = d["levels"]
    ax.errorbar([x["x"] for x in lv], [x["mean"] for x in lv],
                yerr=[x["std"] or 0.0 for x in lv], fmt="o", color="black", capsize=3,
                label="mean ± std")
    xs = np.linspace(min(x["x"] for x in lv), max(x["x"] for x in lv), 50)
    ax.plot(xs, d["intercept"] + d["slope"] * xs, color="C3",
            label=f"slope {d['slope']:+.3g}")
    ax.set_xticks([x["x"] for x in lv], [x["label"] for x in lv])
    ax.set_xlabel(str(d.get("x") or "x").removeprefix("factor:"))
    ax.set_ylabel(metric_label(v.claim.metric))
    ax.legend(loc="best", frameon=False)
