"""Claims in the report: the Claims section (table + one figure per claim), the Markdown claims
table of ``fuselab show --claims --format markdown`` and ``RESULTS.md``, and the Environment
section. Verdicts come from :mod:`fuselab.study.claims` (pure functions over the store's plain
data; no model is run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fuselab._stats import fmt_number
from fuselab.report.context import ReportData
from fuselab.report.document import Cell, Section, Table
from fuselab.report.markdown import _table_md
from fuselab.report.plotting import FigureSink
from fuselab.study.claims import VERDICTS, Verdict, claims_of, count_verdicts, evaluate_claims
from fuselab.study.environment import describe_environment

#: Where the report shows an evaluation's records (section titles of sections.py).
READS = {
    "test": "Leaderboard", "cost": "Leaderboard", "snr_grid": "Accuracy over the SNR grid",
    "snr_curve": "Robustness to noise", "robustness": "Robustness to noise",
    "missing_modality": "Missing modalities", "test_by_type": "Accuracy per question type",
    "emap": "EMAP", "inspect_msaf": "Inspection", "inspect_clstm": "Inspection",
    "inspect_probe": "Inspection", "curve": "Training curves",
}
CLAIM_COLUMNS = ["#", "claim", "source", "paper", "fuselab", "verdict"]


def study_verdicts(study: Mapping[str, Any], runs: Sequence[Mapping[str, Any]],
                   records: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """The verdicts of the claims in the stored study config (``[]`` when it declares none)."""
    return evaluate_claims(claims_of(study), runs, records)


def paper_text(v: Verdict) -> str:
    """The paper's value as declared (``—`` when the claim gives none)."""
    p = v.claim.paper
    if p is None:
        return "—"
    return p if isinstance(p, str) else fmt_number(float(p), v.claim.metric)


def _rows(verdicts: Sequence[Verdict], with_reason: bool) -> list[list[Cell]]:
    rows = []
    for i, v in enumerate(verdicts, start=1):
        verdict = f"{v.verdict}: {v.reason}" if with_reason else v.verdict
        rows.append([Cell(str(i), i), Cell(v.claim.name), Cell(v.claim.source),
                     Cell(paper_text(v)), Cell(v.value), Cell(verdict, VERDICTS.index(v.verdict))])
    return rows


def claims_markdown(verdicts: Sequence[Verdict]) -> str:
    """A Markdown table: claim, source, paper's value, fuselab's value (mean ± std over seeds),
    verdict with its reason."""
    if not verdicts:
        return "(this study declares no claims)\n"
    return _table_md(Table("claims", CLAIM_COLUMNS, _rows(verdicts, with_reason=True),
                           left_columns=len(CLAIM_COLUMNS)))


def claims_section(data: ReportData, sink: FigureSink) -> Section:
    """The Claims section; empty (and so left out) when the study declares no claims."""
    from fuselab.report.fig_claims import claim_figure

    verdicts = study_verdicts(data.study, data.runs, data.records)
    if not verdicts:
        return Section("claims", "Claims")
    rows = _rows(verdicts, with_reason=False)
    for row, v in zip(rows, verdicts, strict=True):
        row += [Cell(v.reason), Cell(f"{v.claim.evaluation} / {v.claim.metric} "
                                     f"({READS.get(v.claim.evaluation, 'records')})")]
    text = (f"What the study set out to show ({count_verdicts(verdicts)}), judged from the stored records only: "
            "a claim holds or does not hold as the finished runs say; it is inconclusive when "
            "too few seeds finished, or when it asks for significance and the difference lies "
            "inside the seed spread. Each figure shows the numbers its claim compared.")
    figures = [f for i, v in enumerate(verdicts, start=1)
               if (f := claim_figure(v, sink, i)) is not None]
    table = Table("claims", [*CLAIM_COLUMNS, "reason", "reads"], rows, sortable=False,
                  left_columns=len(CLAIM_COLUMNS) + 2)
    return Section("claims", "Claims", text, tables=[table], figures=figures)


def environment_section(data: ReportData) -> Section:
    """Where and how the study last ran (machine, software, command, wall time)."""
    rows = [[Cell(label), Cell(text)] for label, text in
            describe_environment(data.study.get("environment") or {})]
    table = Table("environment", ["", "value"], rows, sortable=False)
    return Section("environment", "Environment", tables=[table] if rows else [])
