"""The report of a search (``fuselab search``, ``fuselab report SEARCH_DIR``): the chosen designs,
optimisation history, validation curves, parameter importances, the score against each
parameter, the Pareto front, every trial, and where it ran. Same document, figure style and
writers as the study report; read from the search's database only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fuselab._stats import fmt_number
from fuselab.report import fig_search
from fuselab.report.document import Cell, Section, Table
from fuselab.report.html import write_html
from fuselab.report.markdown import write_markdown
from fuselab.report.plotting import FigureSink, metric_label, style
from fuselab.report.render import clear_figures


def _num(v: Any, metric: str = "") -> Cell:
    if not isinstance(v, (int, float)):
        return Cell("—", None)
    return Cell(fmt_number(float(v), metric), float(v))


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def chosen_table(data: Any) -> Table:
    cols = ["trial", "why", "parameters", *[metric_label(o) for o in data.objectives]]
    rows = [[Cell(c["label"], c["number"]), Cell("; ".join(c["reasons"])),
             Cell(_params_text(c["params"])),
             *[_num(v, o) for v, o in zip(c["values"], data.objectives, strict=True)]]
            for c in data.chosen]
    return Table("chosen", cols, rows, left_columns=3,
                 caption="Written to best.toml as [[grid.fusion]] entries; scores are on the "
                         "validation split.")


def trials_table(data: Any) -> Table:
    cols = ["trial", "state", "parameters", *[metric_label(o) for o in data.objectives],
            "epochs", "time (s)"]
    rows = []
    for t in data.trials:
        values = t["values"] or []
        shown = [_num(values[i] if i < len(values) and t["state"] == "complete" else None, o)
                 for i, o in enumerate(data.objectives)]
        if t["state"] == "pruned" and t["curve"]:
            shown[0] = Cell(f"{fmt_number(t['curve'][-1][1])} (pruned)", t["curve"][-1][1])
        rows.append([Cell(str(t["number"]), t["number"]), Cell(t["state"]),
                     Cell(_params_text(t["params"])), *shown, _num(len(t["curve"]) or None),
                     _num(t["duration_s"])])
    return Table("trials", cols, rows, left_columns=3,
                 caption="Every trial in the order it was asked for.")


def failed_table(data: Any) -> Table:
    rows = [[Cell(str(t["number"]), t["number"]), Cell(_params_text(t["params"])),
             Cell(t["error"] or "")] for t in data.trials if t["state"] == "fail"]
    return Table("failed", ["trial", "parameters", "error"], rows, sortable=False,
                 pre_columns=(2,))


def _summary(data: Any) -> str:
    counts: dict[str, int] = {}
    for t in data.trials:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    text = (f"{len(data.trials)} trials ({parts}), scored on the validation split by "
            f"{metric_label(data.objectives[0])} ({data.directions[0]})")
    if len(data.objectives) > 1:
        text += f" and {metric_label(data.objectives[1])} ({data.directions[1]})"
    text += ". The test split was not used."
    if data.chosen:
        best = data.chosen[0]
        text += (f" Best: trial {best['number']} ({_params_text(best['params'])}) at "
                 f"{fmt_number(best['values'][0])}. Compare the chosen designs on the test split "
                 "with `fuselab study DIR/best.toml`.")
    return text


def search_sections(data: Any, sink: FigureSink) -> list[Section]:
    from fuselab.study.environment import describe_environment

    env = [[Cell(label), Cell(text)] for label, text in
           describe_environment(data.environment or {})]
    sections = [
        Section("summary", "Summary", _summary(data)),
        Section("chosen-section", "Chosen designs", tables=[chosen_table(data)] if data.chosen
                else [], figures=fig_search.pareto(data, sink)),
        Section("history", "Optimisation history",
                figures=fig_search.history(data, sink) + fig_search.curves(data, sink)),
        Section("importances", "Parameter importances", data.importance_note,
                figures=fig_search.importances(data, sink)),
        Section("parameters", "Score per parameter", figures=fig_search.slices(data, sink)),
        Section("trials-section", "All trials", tables=[trials_table(data)]),
        Section("failed-section", "Failed trials",
                "Trials that raised, with the recorded message (a trial whose process died is "
                "queued again and has no message).",
                tables=[t for t in [failed_table(data)] if t.rows]),
        Section("environment", "Environment",
                tables=[Table("environment", ["", "value"], env, sortable=False)] if env else []),
    ]
    return [sections[0]] + [s for s in sections[1:] if not s.is_empty()]


def render_search(study_dir_or_url: str | Path, out_dir: str | Path | None = None,
                  ) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and ``figures/`` of a search."""
    from fuselab.search.results import read_search

    target = str(study_dir_or_url)
    data = read_search(target)
    out = Path(out_dir if out_dir is not None else target)
    fig_dir = out / "figures"
    clear_figures(fig_dir)
    sink = FigureSink(fig_dir)
    with style():
        sections = search_sections(data, sink)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"fuselab search report: {data.name}"
    subtitle = f"Built {stamp} by fuselab.report from the search's database."
    html = write_html(out / "report.html", title, subtitle, sections)
    md = write_markdown(out / "report.md", title, subtitle, sections)
    return {"html": html, "md": md, "figures": fig_dir}
