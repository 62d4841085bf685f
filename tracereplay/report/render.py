"""Presentation of an :class:`~tracereplay.pipeline.Analysis`: table, markdown, JSON, CSV.

One module per layout (:mod:`.table`, :mod:`.markdown`, :mod:`.csv_out`); the
content the two human-readable ones share is in :mod:`.sections`, the writing
of single values in :mod:`.cells`. This module is the one entry point.
"""

from __future__ import annotations

import json

from tracereplay.pipeline.analysis import Analysis
from tracereplay.report.csv_out import to_csv
from tracereplay.report.markdown import to_markdown
from tracereplay.report.table import to_table

FORMATS = ("table", "markdown", "json", "csv")


def to_json(analysis: Analysis) -> str:
    return json.dumps(analysis.as_json(), indent=2, default=str) + "\n"


def render(
    analysis: Analysis, fmt: str, *, max_processes: int = 10, db: str | None = None
) -> str:
    """``analysis`` in the format ``fmt`` (one of :data:`FORMATS`), newline-terminated."""
    if fmt == "json":
        return to_json(analysis)
    if fmt == "csv":
        return to_csv(analysis)
    if fmt == "markdown":
        return to_markdown(analysis, max_processes=max_processes)
    if fmt == "table":
        return to_table(analysis, max_processes=max_processes, db=db) + "\n"
    raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


__all__ = ["FORMATS", "render", "to_csv", "to_json", "to_markdown", "to_table"]
