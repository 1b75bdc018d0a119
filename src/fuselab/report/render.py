"""Entry points: :func:`render` (plain data -> report files), :func:`build_report` (a study directory,
database URL or open store -> report files) and :func:`results_table` (leaderboard rows for
``fuselab show``). The report reads the results store only; it never re-runs a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fuselab.report.context import prepare
from fuselab.report.html import write_html
from fuselab.report.markdown import write_markdown
from fuselab.report.plotting import FigureSink, style
from fuselab.report.sections import build_sections
from fuselab.report.tables import leaderboard_rows

_OUR_FIGURE = re.compile(r"^\d\d_[A-Za-z0-9_]+\.png$")


def render(
    study: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    strict: bool = False,
) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and ``figures/*.png`` into ``out_dir``.

    ``study``, ``runs`` and ``records`` are the store's ``study()``, ``runs()`` and ``records()``
    (see docs/architecture.md). Evaluations missing from the records are left out. With
    ``strict=True`` a figure or table that fails to build raises instead of becoming a warning.
    Returns ``{"html": path, "md": path, "figures": folder}``.
    """
    data = prepare(study, runs, records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    clear_figures(fig_dir)
    sink = FigureSink(fig_dir)
    with style():
        sections = build_sections(data, sink, strict=strict)
    name = str(data.study.get("name") or out.resolve().name)
    title = f"fuselab study report: {name}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"Built {stamp} by fuselab.report from the study's results store."
    html = write_html(out / "report.html", title, subtitle, sections)
    md = write_markdown(out / "report.md", title, subtitle, sections)
    return {"html": html, "md": md, "figures": fig_dir}


def clear_figures(fig_dir: Path) -> None:
    """Delete the figures an earlier report wrote: a re-render must not leave them beside the
    new ones (files of other names are kept)."""
    if fig_dir.is_dir():
        for old in fig_dir.iterdir():
            if _OUR_FIGURE.match(old.name):
                old.unlink()


def is_search(store: Any) -> bool:
    """Whether a results store holds a search (``fuselab search``) rather than a grid study."""
    meta = getattr(store, "meta", None)
    return callable(meta) and json.loads(meta("kind") or "null") == "search"


def _is_store(obj: Any) -> bool:
    return all(callable(getattr(obj, a, None)) for a in ("runs", "records", "study"))


def _looks_like_url(text: str) -> bool:
    return "://" in text


def build_report(study_dir_or_store: Any, out_dir: str | Path | None = None) -> dict[str, Path]:
    """(Re)build the report of a study from its results store.

    ``study_dir_or_store`` is a study directory, a database URL (then ``out_dir`` is required) or
    an object with the store read interface. ``out_dir`` defaults to the study directory.
    """
    opened = None
    if _is_store(study_dir_or_store):
        store = study_dir_or_store
        default_out = None
    elif isinstance(study_dir_or_store, (str, Path)):
        from fuselab.study.store import open_store  # lazily: report must not need study to import

        target = study_dir_or_store
        if not _looks_like_url(str(target)) and not Path(target).is_dir():
            raise FileNotFoundError(f"study directory {str(target)!r} does not exist")
        # Read-only: building a report must never write to (or lock) the results database.
        store = opened = open_store(target, readonly=True)
        default_out = None if _looks_like_url(str(target)) else Path(target)
    else:
        raise TypeError(
            "build_report: expected a study directory, a database URL or a results store, "
            f"got {type(study_dir_or_store).__name__}"
        )
    if out_dir is None and default_out is None:
        raise ValueError("build_report: out_dir is required when the results store is not a "
                         "study directory (database URL or store object)")
    target_out = out_dir if out_dir is not None else default_out
    assert target_out is not None  # checked just above
    try:
        if opened is not None and is_search(store):
            from fuselab.report.search import render_search  # needs Optuna: a search's trials

            return render_search(study_dir_or_store, target_out)
        return render(store.study(), store.runs(), store.records(), target_out)
    finally:
        close = getattr(opened, "close", None)
        if callable(close):
            close()


def results_table(store_or_runs: Any) -> list[dict[str, Any]]:
    """Leaderboard rows (one per variant, best first) for ``fuselab show``.

    Accepts a store, a study directory / database URL, or the list ``store.runs()`` returns. Each
    row: ``variant``, ``factors``, ``runs``, ``done``, ``failed``, ``seeds``, every metric ``m`` as
    mean over seeds with ``m_std`` (sample std), and ``duration_s``.
    """
    if isinstance(store_or_runs, (str, Path)):
        from fuselab.study.store import open_store

        store = open_store(store_or_runs, readonly=True)
        try:
            return results_table(store)
        finally:
            close = getattr(store, "close", None)
            if callable(close):
                close()
    if _is_store(store_or_runs):
        data = prepare(store_or_runs.study(), store_or_runs.runs(), store_or_runs.records())
    elif isinstance(store_or_runs, Sequence):
        data = prepare({}, store_or_runs, [])
    else:
        raise TypeError(
            "results_table: expected a results store, a study directory or a list of runs, "
            f"got {type(store_or_runs).__name__}"
        )
    return leaderboard_rows(data)
