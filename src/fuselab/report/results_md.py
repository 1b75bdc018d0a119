"""A ``RESULTS.md`` skeleton for a reproduction folder, from a finished study's store.

    fuselab report runs/000-early-fusion --results-md reproductions/000-early-fusion/RESULTS.md

writes the command, date, machine and wall time (the environment the study recorded), the run
counts, the claims table (paper's value, fuselab's value, verdict and reason) and up to three
claim figures (copied next to RESULTS.md, or into ``figures_dir``), followed by headings for the
text a person writes (what fuselab chose where the paper is silent, deviations). Every number in
it comes from the store; nothing is re-run.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fuselab.report.claims import claims_markdown, study_verdicts
from fuselab.report.fig_claims import claim_figure
from fuselab.report.plotting import FigureSink, style
from fuselab.study.environment import describe_environment


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "claim"


def write_results_md(
    study_dir: str | Path,
    path: str | Path,
    *,
    figures_dir: str | Path | None = None,
    max_figures: int = 3,
    claims: Sequence[int] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write the skeleton to ``path``; returns ``{"md": path, "figures": [paths]}``.

    ``path`` is not overwritten unless ``force`` (it is usually edited by hand afterwards).
    Figures are the claim figures of ``claims`` (numbers as in the claims table, in that
    order), or else of the first ``max_figures`` claims that have one.
    """
    from fuselab.study.store import open_store

    out = Path(path)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists (it may hold hand-written text); remove it or pass "
                              "--force to overwrite it")
    store = open_store(study_dir, readonly=True)
    try:
        study, runs, records = store.study(), store.runs(), store.records()
    finally:
        store.close()
    verdicts = study_verdicts(study, runs, records)
    chosen = _chosen(claims, len(verdicts))
    fig_dir = Path(figures_dir) if figures_dir is not None else out.parent
    fig_dir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[Path, str]] = []
    with tempfile.TemporaryDirectory() as tmp, style():
        sink = FigureSink(Path(tmp))
        for i in chosen or range(1, len(verdicts) + 1):
            if chosen is None and len(figures) >= max_figures:
                break
            v = verdicts[i - 1]
            ref = claim_figure(v, sink, i)
            if ref is None and chosen is not None:
                raise ValueError(f"claim {i} ({v.claim.name!r}) has no figure (nothing recorded "
                                 f"for it to plot)")
            if ref is not None:
                dest = fig_dir / f"claim{i}-{_slug(v.claim.name)}.png"
                shutil.copyfile(ref.path, dest)
                figures.append((dest, ref.caption))
    env = dict(describe_environment(study.get("environment") or {}))
    counts = Counter(str(r["status"]) for r in runs)
    lines = [
        f"# Results: {study.get('name', '?')}",
        "",
        "<!-- Skeleton written by `fuselab report DIR --results-md` from the study's results "
        "store: the numbers are the study's; write the text under the last headings. -->",
        "",
        f"- Command: `{env.get('command', 'not recorded')}`",
        f"- Date: {env.get('last invocation', study.get('created_at', 'not recorded'))}",
        f"- Machine: {env.get('machine', 'not recorded')}",
        f"- Software: {env.get('software', 'not recorded')}",
        f"- Wall time: {env.get('wall time', 'not recorded')}",
        f"- Runs: {', '.join(f'{counts[s]} {s}' for s in ('done', 'failed', 'running', 'pending') if counts[s])}",
        "",
        "## Claims",
        "",
        claims_markdown(verdicts),
    ]
    if figures:
        lines += ["## Figures", ""]
        for dest, caption in figures:
            rel = Path(os.path.relpath(dest, out.parent)).as_posix()
            lines += [f"![{caption.split(':')[0]}]({rel})", "", f"*{caption}*", ""]
    lines += ["## What fuselab chose where the paper is silent", "", "## Deviations from the paper", ""]
    tmp_md = out.with_name(out.name + ".tmp")
    tmp_md.write_text("\n".join(lines), encoding="utf-8")
    tmp_md.replace(out)
    return {"md": out, "figures": [d for d, _ in figures]}


def _chosen(claims: Sequence[int] | None, n: int) -> list[int] | None:
    """The claim numbers asked for, checked against the ``n`` claims of the study."""
    if claims is None:
        return None
    bad = [c for c in claims if not 1 <= c <= n]
    if bad or not claims:
        raise ValueError(f"claim figures: expected claim numbers 1..{n} (the claims table's "
                         f"#), got {list(claims)}")
    return list(dict.fromkeys(claims))
