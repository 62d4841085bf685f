"""The one way the tool opens a DuckDB database: :func:`connect`.

DuckDB's Python client draws a progress bar on **stdout** for any query that
runs longer than two seconds (``enable_progress_bar`` is on by default), which
would corrupt ``--format json|csv`` output and ``top --json`` on a large trace
or a busy host; every connection turns it off.
"""

from __future__ import annotations

import duckdb


def connect(database: str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that never writes to stdout by itself."""
    con = duckdb.connect(database, read_only=read_only)
    con.execute("SET enable_progress_bar = false")
    return con


__all__ = ["connect"]
