"""Plain-text rendering of :func:`fuselab.report.results_table` rows for ``fuselab show``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fuselab.report.aggregate import Stat, fmt_number, fmt_stat
from fuselab.report.tables import leaderboard_metrics


def format_results_table(rows: Sequence[dict[str, Any]], max_metrics: int = 6) -> str:
    """An aligned text table: rank, variant, finished/all runs, up to ``max_metrics`` metrics as
    mean ± std, and wall time. Rows keep their order (best first from ``results_table``)."""
    if not rows:
        return "(no runs)"
    metrics = leaderboard_metrics(list(rows))[:max_metrics]
    header = ["#", "variant", "done/all", *metrics, "time (s)"]
    body = []
    for rank, row in enumerate(rows, start=1):
        cells = [str(rank), str(row["variant"]), f"{row['done']}/{row['runs']}"]
        for m in metrics:
            mean, std = row.get(m), row.get(f"{m}_std")
            cells.append("—" if mean is None else fmt_stat(Stat(mean, std, 2), m))
        cells.append(fmt_number(row.get("duration_s")))
        if row.get("failed"):
            cells[2] += f" ({row['failed']} failed)"
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in (1, 2) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])
