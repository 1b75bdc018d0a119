"""The report as a small, format-neutral document: sections holding text, tables and figures.

The HTML and Markdown writers both render the same :class:`Section` list, so the two reports never
disagree about content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown and the value a sortable table sorts by."""

    text: str
    key: float | str | None = None


@dataclass
class Table:
    """A table with an HTML id (``leaderboard``, ``runs``, ...) and optional long-text cells."""

    id: str
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    sortable: bool = True
    #: Columns shown as preformatted text (error messages with tracebacks).
    pre_columns: tuple[int, ...] = ()
    #: Leading columns aligned left in Markdown (the rest hold numbers: right).
    left_columns: int = 2


@dataclass(frozen=True)
class FigureRef:
    """A PNG written to disk; ``path`` is absolute, the writers embed or link it."""

    path: Path
    caption: str


@dataclass
class Section:
    """A titled block of the report; empty sections are dropped before writing."""

    id: str
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[FigureRef] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.tables or self.figures)
