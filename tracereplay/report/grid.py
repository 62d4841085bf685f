"""Aligned plain-text tables of written cells.

Kept apart from :mod:`tracereplay.report.sections` (which needs the analysis and,
through it, Polars) so that ``tracereplay query`` prints its rows without loading
the pipeline (~0.25 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracereplay.report.cells import cell


@dataclass
class Grid:
    """A table: headers, rows of written cells, and which columns are text (left-aligned)."""

    headers: list[str]
    rows: list[list[str]]
    text_columns: frozenset[int] = frozenset({0})


def grid_of(headers: list[str], rows: list[list[Any]]) -> Grid:
    """A grid of raw values (query results): identifier columns plain, text columns left."""
    written = [[cell(v, h) for v, h in zip(r, headers, strict=True)] for r in rows]
    text = frozenset(
        i
        for i in range(len(headers))
        if i == 0 or any(isinstance(r[i], str) for r in rows)
    )
    return Grid(list(headers), written, text)


def layout(grid: Grid, indent: str = "  ") -> list[str]:
    """Aligned columns: text columns to the left, numbers to the right, a rule under the header."""
    cells = [grid.headers, *grid.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(grid.headers))]
    lines = []
    for k, r in enumerate(cells):
        parts = [
            c.ljust(w) if i in grid.text_columns else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append(indent + "  ".join(parts).rstrip())
        if k == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return lines


def raw_table(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> list[str]:
    """Raw values (``query``'s rows) as aligned lines; identifier columns get no separators."""
    return layout(grid_of(headers, rows), indent)


__all__ = ["Grid", "grid_of", "layout", "raw_table"]
