"""Plain text tables for ``check`` and ``compare``: text columns left, numbers right."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def number(v: Any, *, digits: int = 3) -> str:
    """``1,234`` for whole numbers, ``12.346`` otherwise, ``-`` for None."""
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    """The lines of a table; a column is right-aligned when all its values are numbers."""
    numeric = [
        all(
            r[i] is None or (isinstance(r[i], int | float) and not isinstance(r[i], bool))
            for r in rows
        )
        for i in range(len(headers))
    ]
    cells = [list(headers)] + [
        [number(c) if numeric[i] else str(c) for i, c in enumerate(r)] for r in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for k, r in enumerate(cells):
        parts = [
            c.rjust(w) if numeric[i] else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append((indent + "  ".join(parts)).rstrip())
        if k == 0:
            out.append(indent + "  ".join("-" * w for w in widths))
    return out


__all__ = ["number", "table"]
