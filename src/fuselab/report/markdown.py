"""Writes the report as Markdown: pipe tables, figures linked as PNG files relative to report.md,
and long messages (errors) as fenced code blocks.
"""

from __future__ import annotations

import os
from pathlib import Path

from fuselab.report.document import Section, Table


def _cell(text: str) -> str:
    # A pipe or newline would break the table row.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}text\n{text}\n{ticks}"


def _table_md(t: Table) -> str:
    plain = [i for i in range(len(t.columns)) if i not in t.pre_columns]
    lines = []
    if t.pre_columns:
        # Multi-line messages do not fit a pipe table: one heading line and a code block per row.
        for row in t.rows:
            head = " · ".join(row[i].text for i in plain if row[i].text)
            if head:
                lines.append(f"**{_cell(head)}**\n")
            lines += [_fence(row[i].text) + "\n" for i in t.pre_columns]
        return "\n".join(lines)
    lines.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---" if i < t.left_columns else "---:" for i in range(len(t.columns))) + "|")
    for row in t.rows:
        lines.append("| " + " | ".join(_cell(c.text) for c in row) + " |")
    if t.caption:
        lines.append(f"\n*{_cell(t.caption)}*")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, title: str, subtitle: str, sections: list[Section]) -> Path:
    """Write ``report.md``; figure links are relative to its folder (atomic temp-file rename)."""
    path = Path(path)
    out = [f"# {title}\n", f"{subtitle}\n"]
    out.append("Contents: " + ", ".join(f"[{s.title}](#{s.id})" for s in sections) + "\n")
    for s in sections:
        out.append(f'<a id="{s.id}"></a>\n\n## {s.title}\n')
        if s.text:
            out.append(s.text + "\n")
        out += [_table_md(t) for t in s.tables]
        for f in s.figures:
            rel = Path(os.path.relpath(f.path, path.parent)).as_posix()
            out.append(f"![{_cell(f.caption)}]({rel})\n\n*{f.caption}*\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(out), encoding="utf-8")
    tmp.replace(path)
    return path
