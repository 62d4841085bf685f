"""What the tests of rows given as numbers share (test_text_numbers, test_perfetto_numbers).

A reader asked for ``numbers_only`` gives some rows as value columns with ``{}`` for
args; :func:`rendered_rows` renders those back as the store's ``events`` view does,
so a read with it compares, row by row and column by column, to a read without it.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from tracereplay.formats.tracefs.batches import elided_ranges
from tracereplay.schema import EVENT_SCHEMA
from tracereplay.store.split import ELIDED

SPECS = {e.name: e.number_spec for e in ELIDED}
ARGS = EVENT_SCHEMA.get_field_index("args")


def rendered_rows(batches: Iterable[pa.RecordBatch]) -> dict[int, tuple]:
    """seq -> every column of the row, the args of rows given as numbers (which must
    be ``{}``) rendered from their values."""
    out: dict[int, tuple] = {}
    for b in batches:
        cols = [b.column(f.name).to_pylist() for f in EVENT_SCHEMA]
        args = cols[ARGS]
        for name, (start, stop) in elided_ranges(b).items():
            keys = SPECS[name].keys
            values = [b.column(f"{name}.{k}").to_pylist() for k in keys]
            for i in range(start, stop):
                assert args[i] == "{}"
                pairs = ",".join(f'"{k}":{v[i]}' for k, v in zip(keys, values, strict=True))
                args[i] = "{" + pairs + "}"
        for row in zip(*cols, strict=True):
            out[row[0]] = row
    return out


def given_counts(batches: Iterable[pa.RecordBatch]) -> dict[str, int]:
    """Rows given as numbers, by event."""
    counts: dict[str, int] = {}
    for b in batches:
        for name, (start, stop) in elided_ranges(b).items():
            counts[name] = counts.get(name, 0) + stop - start
    return counts


def db_rows(db: str) -> dict[int, tuple]:
    """seq -> every column of the ``events`` view of a database."""
    con = duckdb.connect(db, read_only=True)
    cols = ", ".join(f.name for f in EVENT_SCHEMA)
    rows = {r[0]: r for r in con.execute(f"SELECT {cols} FROM events").fetchall()}
    con.close()
    return rows
