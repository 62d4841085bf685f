"""What every writer needs: the source's events in chunks, and publishing the output atomically."""

from __future__ import annotations

import os
from collections.abc import Iterator

import polars as pl
import pyarrow as pa

from tracereplay import atomic
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


def publish(tmp: str, out_path: str) -> None:
    """Give a finished ``mkstemp`` file normal permissions and rename it into place.

    Kept for writers that still create their temporary file with ``mkstemp``;
    new code uses :func:`tracereplay.atomic.atomic_output`, whose temporary
    names let the next run remove the leftovers of a killed writer.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a plain file otherwise
    atomic.publish(tmp, out_path, force=True)  # the writer ran the overwrite guard first


__all__ = ["event_frames", "publish"]
