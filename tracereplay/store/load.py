"""Bulk loading of a trace into a DuckDB file, atomically.

The database is built under a temporary name in the destination directory and
renamed over the destination only when complete (:func:`tracereplay.atomic.atomic_output`),
so an interrupted ingest never leaves a half-written file where the user
expects a database, and a killed one's temporary file is removed by the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import duckdb
import pyarrow as pa

from tracereplay.atomic import atomic_output, check_new_output
from tracereplay.errors import TraceReplayError
from tracereplay.manifest import Manifest
from tracereplay.progress import Progress, current, track_batches
from tracereplay.readers import Reader, open_trace
from tracereplay.schema import EVENT_SCHEMA
from tracereplay.store.connect import connect
from tracereplay.store.fanout import Sink, chunked_insert, insert_streams
from tracereplay.store.invalid import flag_invalid_ranges
from tracereplay.store.schema import ddl
from tracereplay.store.split import ELIDED, ElidedEvent, split_batches
from tracereplay.store.typed import fill_typed_tables
from tracereplay.tracemeta import TraceMeta
from tracereplay.version import __version__


def _insert_sql(e: ElidedEvent) -> str | Sink:
    """How ``e``'s rows reach its table: a streaming INSERT, a statement per row group
    for a rare event (store/fanout.py)."""
    sql = f"INSERT INTO {e.table} SELECT {e.insert} FROM _stream"
    return chunked_insert(e.schema, sql) if e.rare else sql


# Batches waiting between the parsing thread and DuckDB: bounds memory.
_QUEUE_DEPTH = 2
T = TypeVar("T")
# the streams the reader's batches are split into: Arrow schema, INSERT statement
STREAMS: dict[str, tuple[pa.Schema, str | Sink]] = {
    "event_rows": (EVENT_SCHEMA, "INSERT INTO event_rows SELECT * FROM _stream"),
    **{e.name: (e.schema, _insert_sql(e)) for e in ELIDED},
}


@dataclass
class IngestResult:
    db_path: str
    meta: TraceMeta


def ingest(
    trace: str | Reader,
    db_path: str,
    *,
    manifest: Manifest | None = None,
    replace: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    """Read ``trace`` into a new DuckDB database at ``db_path`` (atomic).

    Refuses to replace an existing file unless ``replace`` is true; even then
    the old file stays intact until the new one is complete. ``progress`` (default:
    :func:`tracereplay.progress.current`) gets the bytes and events read.
    """
    reader = open_trace(trace) if isinstance(trace, str) else trace
    check_new_output(db_path, force=replace)
    tracked = track_batches_of(reader, progress)
    with Prefetch(tracked) as batches, new_database(db_path, replace=replace) as con:
        build(con, reader, manifest=manifest, batches=batches)
    return IngestResult(db_path=db_path, meta=reader.meta)


def track_batches_of(reader: Reader, progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches, reporting bytes and events read to ``progress``.

    The default is this thread's reporter (:func:`tracereplay.progress.current`),
    taken here because the batches are then read in :class:`Prefetch`'s thread.
    """
    name = os.path.basename(getattr(reader, "path", "") or "trace")
    return track_batches(store_batches(reader), reader, f"reading {name}", progress or current())


def store_batches(reader: Reader) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches as the store wants them: the events it keeps only in a typed
    table given as numbers, not JSON, by the readers that can (store/split.py)."""
    numbers_only = getattr(reader, "numbers_only", None)
    if numbers_only is not None:
        numbers_only({e.name: e.number_spec for e in ELIDED})
    return reader.batches()


@contextlib.contextmanager
def new_database(
    db_path: str | None, *, replace: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a new, empty DuckDB database, closed when the block ends.

    With ``db_path`` the database is built under a temporary name and renamed
    to ``db_path`` only when the block succeeds (checkpointed first, so the file
    is whole without its ``.wal``); without, it lives in a temporary directory
    removed afterwards.
    """
    with contextlib.ExitStack() as stack:
        if db_path is None:
            tmp_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tracereplay-"))
            path = os.path.join(tmp_dir, "trace.duckdb")
        else:
            path = stack.enter_context(atomic_output(db_path, force=replace, suffix=".duckdb"))
        con = connect(path)  # DuckDB creates the file (and its .wal) itself
        try:
            yield con
            if db_path is not None:
                con.execute("CHECKPOINT")
        finally:
            con.close()


def build(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    *,
    manifest: Manifest | None = None,
    batches: Iterable[pa.RecordBatch] | None = None,
) -> None:
    """Create every table in ``con`` and fill it from ``reader``.

    ``batches``: the reader's batches when the caller already started reading them.
    """
    # the ~170 DDL statements commit once (0.03 s instead of 0.1-0.2 s)
    con.execute("BEGIN TRANSACTION")
    con.execute(ddl())
    con.execute("COMMIT")
    # DuckDB would otherwise keep up to 80% of RAM of the growing table cached;
    # a small limit during the bulk load keeps peak memory near flat as traces grow
    con.execute(f"SET memory_limit = '{_load_memory_limit()}'")
    # the batches are split (store/split.py) in a thread of their own, and each table
    # gets a streaming INSERT on a connection of its own (store/fanout.py), so parsing,
    # splitting and DuckDB's inserts overlap. Each INSERT commits by itself: the
    # database is a temporary file until complete (atomic_output).
    source = batches if batches is not None else Prefetch(store_batches(reader))
    # the typed tables are filled from event_rows' batches as they stream (store/typed.py)
    streams = {**STREAMS, "typed": (EVENT_SCHEMA, fill_typed_tables)}
    with Prefetch(split_batches(source), depth=2) as parts:
        insert_streams(
            con, ({"event_rows": p.rows, "typed": p.rows, **p.typed} for p in parts), streams
        )
    con.execute("BEGIN TRANSACTION")
    flag_invalid_ranges(con, reader.meta)
    con.execute("RESET memory_limit")
    meta = reader.meta
    if meta.lost:
        con.executemany(
            "INSERT INTO lost_events VALUES (?, ?, ?, ?)",
            [(x.cpu, x.ts, x.count, x.seq) for x in meta.lost],
        )
    if manifest is not None:
        load_manifest_tables(con, manifest)
    kernel = meta.kernel_release or (manifest.host.get("kernel") if manifest else None)
    con.execute(
        "INSERT INTO trace_info VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            meta.path,
            meta.format,
            kernel,
            meta.clock,
            meta.cpus,
            meta.event_count,
            sum(x.count or 0 for x in meta.lost),
            len(meta.lost),
            meta.partial,
            meta.warnings,
            json.dumps(meta.recorder_options),
            manifest.path if manifest else None,
            __version__,
        ],
    )
    con.execute("COMMIT")
    con.execute("CHECKPOINT")


def load_manifest_tables(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> None:
    """Fill ``vms``, ``memslots`` and ``pinned_ranges`` from the manifest."""
    for spec in manifest.processes:
        con.execute(
            "INSERT INTO vms VALUES (?, ?, ?, 'manifest')", [spec.tgid, spec.name, spec.kind]
        )
        for r in spec.ranges:
            con.execute(
                "INSERT INTO memslots VALUES (?, ?, ?, ?, ?, ?)",
                [spec.tgid, r.hva_start, r.hva_end, r.gpa_start, r.shared, r.thp],
            )
        for tid in spec.tids:
            con.execute("INSERT INTO process_threads VALUES (?, ?)", [spec.tgid, tid])
        for r in spec.pinned:
            con.execute(
                "INSERT INTO pinned_ranges VALUES (?, ?, ?, 'manifest')",
                [spec.tgid, r.hva_start, r.hva_end],
            )


class Prefetch(Generic[T]):
    """Parses batches in a thread, from creation on, while DuckDB inserts earlier ones.

    Started before the database is created, so decoding the first batches
    (and loading the compiled decoders) overlaps DuckDB's set-up. Numba loops,
    Polars and DuckDB release the GIL, so on two cores parsing and loading
    overlap. The queue depth bounds memory; errors re-raise in the consumer.
    """

    def __init__(self, batches: Iterator[T], depth: int = _QUEUE_DEPTH) -> None:
        self._q: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._done = object()
        self._stop = threading.Event()
        self._batches = batches
        self._thread = threading.Thread(target=self._work, name="tracereplay-reader", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            for batch in self._batches:
                if not self._offer(batch):
                    return
            self._offer(self._done)
        except BaseException as e:  # handed to the consumer, re-raised there
            self._offer(e)

    def _offer(self, item: object) -> bool:
        """Queue ``item`` unless the consumer stopped (then False)."""
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._q.get()
                if item is self._done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield cast(T, item)
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_memory_limit() -> str:
    """DuckDB memory limit while bulk loading (TRACEREPLAY_LOAD_MEMORY, default 256MB)."""
    value = os.environ.get("TRACEREPLAY_LOAD_MEMORY", "256MB").strip()
    if not value.replace(".", "").rstrip("KMGTkmgtiBb").isdigit():
        raise TraceReplayError(f"TRACEREPLAY_LOAD_MEMORY={value!r}: expected a size such as 256MB")
    return value


__all__ = [
    "IngestResult",
    "Prefetch",
    "build",
    "ingest",
    "load_manifest_tables",
    "new_database",
    "track_batches_of",
]
