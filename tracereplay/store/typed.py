"""The typed tables (kvm_unmaps, tlb_flushes, ipis, ...), filled from event_rows' batches
as they stream.

``queries/_typed_tables.sql`` projects rows of ``event_rows`` into the typed tables.
Run over the finished table, it was the last step of every ingest (0.2-0.3 s of a
4 M-event trace, after the last row was in). :func:`fill_typed_tables` runs it on a
connection of its own while the other streams still insert, over chunks of the rows
it reads: on that connection a temporary view ``event_rows`` over the chunk shadows
the table, so the statements stay as written. Every statement is a per-row
projection, so chunks give the rows the whole table would.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Collection, Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tracereplay.schema import EVENT_SCHEMA
from tracereplay.store.fanout import gathered
from tracereplay.store.queries import load_query

__all__ = ["CHUNK_ROWS", "fill_typed_tables", "typed_tables_sql"]

# rows given to the statements at a time: each statement runs once per chunk
# (a few ms), a chunk's rows are held in memory until then
CHUNK_ROWS = 500_000

# the event names a statement of _typed_tables reads: `FROM event_rows WHERE name = 'x'` / `IN (...)`
_WHERE_NAME = re.compile(r"FROM event_rows WHERE name\s*(?:=\s*'([^']+)'|IN\s*\(([^)]*)\))", re.I)


def typed_tables_sql(names: Collection[str] | None = None) -> str:
    """``queries/_typed_tables.sql``; with ``names`` (the event names of the rows),
    only the statements reading one of them (each statement scans every row)."""
    present = set(names) if names is not None else None
    statements = [
        q for q in _statements() if present is None or (r := _reads(q)) is None or r & present
    ]
    return "".join(q + ";\n" for q in statements)


def fill_typed_tables(con: duckdb.DuckDBPyConnection, batches: Iterator[pa.RecordBatch]) -> None:
    """Run the typed statements over ``batches`` (rows of event_rows), CHUNK_ROWS rows at a
    time, on ``con`` (a connection of its own: it gets a temporary ``event_rows`` view)."""
    wanted = _names_read()
    keep = pa.array(sorted(wanted), pa.large_string()) if wanted is not None else None
    con.register("_rows", EVENT_SCHEMA.empty_table())
    con.execute("CREATE TEMP VIEW event_rows AS SELECT * FROM _rows")
    if keep is not None:
        batches = (b.filter(pc.is_in(b.column("name"), value_set=keep)) for b in batches)
    try:
        for rows in gathered(batches, EVENT_SCHEMA, CHUNK_ROWS):
            sql = typed_tables_sql(pc.unique(rows.column("name")).to_pylist())
            if sql:
                con.register("_rows", rows)
                con.execute(sql)
    finally:
        # the connection is closed next; never hide the error that got us here
        with contextlib.suppress(duckdb.Error):
            con.execute("DROP VIEW IF EXISTS temp.event_rows")
            con.unregister("_rows")


@functools.cache
def _statements() -> tuple[str, ...]:
    # statements end with ';' at the end of a line (comments may hold one mid-line)
    sql = load_query("_typed_tables").sql
    return tuple(q for q in re.split(r";\s*$", sql, flags=re.M) if q.strip())


def _names_read() -> set[str] | None:
    """Every event name the statements read (None: one of another shape reads any row)."""
    names: set[str] = set()
    for q in _statements():
        r = _reads(q)
        if r is None:
            return None
        names |= r
    return names


def _reads(statement: str) -> set[str] | None:
    """The event names a statement reads (None: not the usual shape, always run it).

    Every ``FROM event_rows`` must be ``FROM event_rows WHERE name = ...`` / ``IN (...)``.
    """
    found = _WHERE_NAME.findall(statement)
    if not found or statement.upper().count("FROM EVENT_ROWS") != len(found):
        return None
    names: set[str] = set()
    for one, many in found:
        names |= {one} if one else set(re.findall(r"'([^']+)'", many))
    return names
