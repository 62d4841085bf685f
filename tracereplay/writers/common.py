"""What every writer needs: the source's events in chunks (outputs go through :mod:`tracereplay.atomic`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import polars as pl
import pyarrow as pa

from tracereplay.progress import track_batches
from tracereplay.readers import Reader


def event_frames(reader: Reader, chunk_events: int) -> Iterator[pl.DataFrame]:
    """The reader's events as polars frames of about ``chunk_events`` rows (bounded memory)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    name = os.path.basename(getattr(reader, "path", "") or "events")
    for batch in track_batches(reader.batches(), reader, f"converting {name}"):
        pending.append(batch)
        rows += batch.num_rows
        if rows >= chunk_events:
            yield pl.from_arrow(pa.Table.from_batches(pending))  # type: ignore[misc]
            pending, rows = [], 0
    if pending:
        yield pl.from_arrow(pa.Table.from_batches(pending))  # type: ignore[misc]


__all__ = ["event_frames"]
