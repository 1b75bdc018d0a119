"""Figures of a search report: optimisation history, validation curves (pruned trials marked),
parameter importances, the objective against each parameter, and the Pareto front.

Input is :class:`fuselab.search.results.SearchData` (plain trial dicts); each function saves its
figure through the sink and returns the references (none when there is nothing to draw).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from fuselab.report.document import FigureRef
from fuselab.report.plotting import FigureSink, colors, legend_outside, metric_label, new_figure

_GREY = "#9a9a9a"


def _best_so_far(values: list[float], maximize: bool) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else (max(out[-1], v) if maximize else min(out[-1], v)))
    return out


def _chosen(data: Any) -> dict[int, Any]:
    return {c["number"]: c for c in getattr(data, "chosen", [])}


def history(data: Any, sink: FigureSink) -> list[FigureRef]:
    """Each objective per trial number, with the best value so far."""
    done = data.complete()
    pruned = [t for t in data.trials if t["state"] == "pruned" and t["curve"]]
    if not done and not pruned:
        return []
    fig, axes = new_figure(1, len(data.objectives), panel_w=5.0)
    for i, (ax, name) in enumerate(zip(axes, data.objectives, strict=True)):
        maximize = data.directions[i] == "maximize"
        xs = [t["number"] for t in done]
        ys = [t["values"][i] for t in done]
        ax.scatter(xs, ys, s=18, color=colors(1)[0], label="complete", zorder=3)
        if i == 0 and pruned:
            ax.scatter([t["number"] for t in pruned], [t["curve"][-1][1] for t in pruned],
                       marker="x", color=_GREY, label="pruned (last epoch)", zorder=2)
        if done:
            ax.step(xs, _best_so_far(ys, maximize), where="post", color="black", lw=1,
                    label=f"best so far ({'max' if maximize else 'min'})")
        for n, ch in _chosen(data).items():
            ax.annotate(f"#{n}", (n, ch["values"][i]), textcoords="offset points",
                        xytext=(3, 3), fontsize=7)
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric_label(name))
        ax.set_title(f"{metric_label(name)} per trial")
    legend_outside(fig, axes[-1])
    return [sink.save(fig, "search_history", "Optimisation history: each complete trial's "
                      "validation score (and cost) in the order the trials were asked for; pruned "
                      "trials at the score of their last epoch; the line is the best so far; "
                      "#N marks the designs written to best.toml.")]


def curves(data: Any, sink: FigureSink) -> list[FigureRef]:
    """Validation curves of every trial; pruned ones grey, the chosen ones highlighted."""
    trials = [t for t in data.trials if t["curve"]]
    if not trials:
        return []
    fig, (ax,) = new_figure(1, 1, panel_w=6.0)
    chosen = _chosen(data)
    palette = colors(len(chosen) + 1)[1:]  # colour 0 is the other complete trials
    for t in trials:
        ep, val = zip(*t["curve"], strict=True)
        if t["number"] in chosen:
            continue
        pruned = t["state"] == "pruned"
        ax.plot(ep, val, color=_GREY if pruned else colors(1)[0], alpha=0.45, lw=0.8)
        if pruned:
            ax.scatter(ep[-1:], val[-1:], marker="x", color=_GREY, s=14)
    for c, t in zip(palette, [t for t in trials if t["number"] in chosen], strict=False):
        ep, val = zip(*t["curve"], strict=True)
        ax.plot(ep, val, color=c, lw=2, label=f"trial {t['number']}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric_label(data.objectives[0]))
    legend_outside(fig, ax)
    return [sink.save(fig, "search_curves", "Validation curve of every trial (blue: complete, "
                      "grey with x: stopped by the pruner at that epoch; coloured: the chosen "
                      "designs).")]


def importances(data: Any, sink: FigureSink) -> list[FigureRef]:
    """Parameter importances per objective (Optuna's default evaluator, PED-ANOVA)."""
    imps = [(name, imp) for name, imp in zip(data.objectives, data.importances, strict=False)
            if imp]
    if not imps:
        return []
    fig, axes = new_figure(1, len(imps), panel_w=4.5)
    for ax, (name, imp) in zip(axes, imps, strict=True):
        keys = list(imp)[::-1]
        ax.barh(keys, [imp[k] for k in keys], color=colors(1)[0])
        ax.set_xlabel("importance (sums to 1)")
        ax.set_title(metric_label(name))
    n = len(data.complete())
    return [sink.save(fig, "search_importances", "Parameter importances (Optuna's "
                      f"get_param_importances, PED-ANOVA) over the {n} complete trials: how "
                      "much each parameter decides whether a trial reaches the best scores. "
                      "With few trials these are rough.")]


def _positions(values: list[Any], info: dict[str, Any]) -> tuple[np.ndarray, list[Any] | None]:
    if info.get("kind") == "categorical":
        choices = info.get("choices") or sorted({repr(v) for v in values})
        keys = [repr(c) for c in choices]
        return np.array([keys.index(repr(v)) for v in values], dtype=float), list(choices)
    return np.array(values, dtype=float), None


def slices(data: Any, sink: FigureSink) -> list[FigureRef]:
    """The first objective against each parameter (complete trials; pruned ones grey)."""
    names = list(data.params)
    shown = [t for t in data.trials if t["state"] in ("complete", "pruned")
             and (t["values"] or t["curve"])]
    if not names or not shown:
        return []
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = new_figure(nrows, ncols, panel_w=3.6, panel_h=3.0)
    rng = np.random.default_rng(0)  # horizontal jitter of categorical points only
    for ax, name in zip(axes, names, strict=False):
        info = data.params[name]
        for state, color, marker in (("complete", colors(1)[0], "o"), ("pruned", _GREY, "x")):
            pts = [t for t in shown if t["state"] == state and name in t["params"]]
            if not pts:
                continue
            x, ticks = _positions([t["params"][name] for t in pts], info)
            y = [t["values"][0] if state == "complete" else t["curve"][-1][1] for t in pts]
            if ticks is not None:
                x = x + rng.uniform(-0.12, 0.12, len(x))
                ax.set_xticks(range(len(ticks)), [str(c) for c in ticks])
            ax.scatter(x, y, s=14, color=color, marker=marker, label=state)
        if info.get("log"):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(metric_label(data.objectives[0]))
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return [sink.save(fig, "search_slices", "Validation score against each parameter "
                      "(one point per trial; pruned trials grey at their last epoch's score).")]


def pareto(data: Any, sink: FigureSink) -> list[FigureRef]:
    """Score against cost with the Pareto front (two objectives only)."""
    done = data.complete()
    if len(data.objectives) < 2 or not done:
        return []
    fig, (ax,) = new_figure(1, 1, panel_w=5.5)
    front = sorted((t for t in done if t["number"] in data.pareto), key=lambda t: t["values"][1])
    ax.scatter([t["values"][1] for t in done], [t["values"][0] for t in done], s=16,
               color=_GREY, label="trial")
    ax.plot([t["values"][1] for t in front], [t["values"][0] for t in front], "o-",
            color=colors(2)[1], label="Pareto front")
    for n, ch in _chosen(data).items():
        ax.annotate(f"#{n}", (ch["values"][1], ch["values"][0]), textcoords="offset points",
                    xytext=(3, 3), fontsize=7)
    if min(t["values"][1] for t in done) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(metric_label(data.objectives[1]))
    ax.set_ylabel(metric_label(data.objectives[0]))
    legend_outside(fig, ax)
    return [sink.save(fig, "search_pareto", "Validation score against cost of every complete "
                      "trial; the Pareto front holds the trials no other trial beats on both; "
                      "#N marks the designs written to best.toml.")]
