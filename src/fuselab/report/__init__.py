"""fuselab.report: tables and figures of a fusion study, read from its results store only.

    from fuselab.report import build_report, render, results_table
    build_report("runs/avmnist")             # -> {"html": .../report.html, "md": ..., "figures": ...}
    render(study, runs, records, "out/")     # the same from plain store data
    results_table(store)                     # leaderboard rows for `fuselab show`

See docs/report.md for what each section shows and how values are aggregated.
"""

from fuselab.report.render import build_report, render, results_table
from fuselab.report.show import format_results_table

__all__ = ["build_report", "format_results_table", "render", "results_table"]
