"""Several streaming INSERTs fed from one iterator, each on its own DuckDB connection.

After :mod:`tracereplay.store.split`, one reader batch becomes rows of
``event_rows`` and of each typed table that keeps events by itself. DuckDB
inserts one Arrow *stream* with both CPUs (0.83 s wall for 4.7 M page faults)
but one statement per batch with one (1.6 s), and a connection runs one
statement at a time: so each table gets its own connection and stream, fed
through a bounded queue by one thread that reads the batches. A failure
anywhere stops every stream and is raised, as it was raised, in the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeAlias, cast

import duckdb
import pyarrow as pa

from tracereplay.formats.common.columns import BATCH_ROWS, rechunk

__all__ = ["Sink", "chunked_insert", "gathered", "insert_streams"]

# consumes one stream's batches on a connection of its own (instead of an INSERT)
Sink: TypeAlias = Callable[[duckdb.DuckDBPyConnection, Iterator[pa.RecordBatch]], None]

# batches waiting per table: bounds memory
_DEPTH = 2
_DONE = object()


class _Stop(Exception):
    """Raised in a stream when another one failed."""


def insert_streams(
    con: duckdb.DuckDBPyConnection,
    parts: Iterable[dict[str, pa.RecordBatch]],
    streams: dict[str, tuple[pa.Schema, str | Sink]],
) -> None:
    """Insert every ``parts`` item's batch for stream S by ``streams[S]`` = (its Arrow
    schema, an INSERT statement reading the stream as ``_stream``), one streaming
    INSERT per stream, all at once; or give them to a :data:`Sink`. Each commits as it
    finishes: call it outside a transaction, on a database nobody else sees yet."""
    tables = list(streams)
    if not isinstance(streams[tables[0]][1], str):
        # the first stream runs on ``con`` itself: a sink may leave state on its connection
        raise ValueError(f"the first stream, {tables[0]}, must be an INSERT, not a sink")
    stop = threading.Event()
    queues: dict[str, queue.Queue[object]] = {t: queue.Queue(maxsize=_DEPTH) for t in streams}
    failures: list[BaseException] = []

    def fail(e: BaseException) -> None:
        if not isinstance(e, _Stop):
            failures.append(e)
        stop.set()

    def put(q: queue.Queue[object], item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def feed() -> None:
        try:
            for item in parts:
                for table, batch in item.items():
                    if batch.num_rows and not put(queues[table], batch):
                        return
            for q in queues.values():
                put(q, _DONE)
        except BaseException as e:
            fail(e)

    def stream(table: str) -> Iterator[pa.RecordBatch]:
        q = queues[table]
        while True:
            if stop.is_set():
                raise _Stop()
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            yield cast(pa.RecordBatch, item)

    def insert(c: duckdb.DuckDBPyConnection, table: str) -> None:
        try:
            # whole row groups per batch: DuckDB's streaming insert is several times
            # slower on batches a little over one (text blocks of ~132 k rows: 5.4 s
            # instead of 4.5 s for a whole 4.7 M-line ingest)
            schema, sql = streams[table]
            if not isinstance(sql, str):
                batches = stream(table)
                sql(c, batches)
                for _ in batches:  # a sink that stopped early must not block the feeder
                    pass
                return
            batches = rechunk(stream(table))
            c.register("_stream", pa.RecordBatchReader.from_batches(schema, batches))
            c.execute(sql)
            c.unregister("_stream")
        except BaseException as e:
            fail(e)

    # a stream waiting for its next batch holds one of DuckDB's worker threads (one per
    # CPU, shared by every connection): one more per INSERT stream keeps the busy stream
    # on all CPUs (a trace of 9.6 M kvm_page_fault took 10.3 s instead of 8.1); a sink
    # waits outside DuckDB
    workers = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    inserts = sum(isinstance(sql, str) for _schema, sql in streams.values())
    con.execute(f"SET threads = {workers + inserts}")
    # rows are ordered by seq, never by storage: DuckDB's insert may then append in
    # parallel without keeping batch order (4.7 M page faults: 2.6 s -> 2.4 s ingest)
    con.execute("SET preserve_insertion_order = false")
    threads = [threading.Thread(target=feed, name="tracereplay-feed", daemon=True)]
    cursors = []
    for table in tables[1:]:
        cur = con.cursor()
        cursors.append(cur)
        threads.append(_thread(insert, cur, table))
    for t in threads:
        t.start()
    try:
        insert(con, tables[0])
    finally:
        if failures:
            stop.set()
        for t in threads:
            t.join()
        for cur in cursors:
            cur.close()
        con.execute(f"SET threads = {workers}")
        con.execute("RESET preserve_insertion_order")
    if failures:
        raise failures[0]


def chunked_insert(schema: pa.Schema, sql: str, rows: int = BATCH_ROWS) -> Sink:
    """A :data:`Sink` running ``sql`` (an INSERT reading ``_stream``) once per ``rows``
    rows gathered, and once for the rest: for a stream of few rows, which as a
    streaming INSERT would hold one of DuckDB's threads until its last batch."""

    def sink(con: duckdb.DuckDBPyConnection, batches: Iterator[pa.RecordBatch]) -> None:
        for table in gathered(batches, schema, rows):
            con.register("_stream", table)
            try:
                con.execute(sql)
            finally:
                con.unregister("_stream")

    return sink


def gathered(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, rows: int
) -> Iterator[pa.Table]:
    """``batches`` as tables of at least ``rows`` rows each, and the rest (empty
    batches skipped): for sinks that run a statement per table."""
    pending: list[pa.RecordBatch] = []
    have = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        have += batch.num_rows
        if have >= rows:
            yield pa.Table.from_batches(pending, schema)
            pending, have = [], 0
    if pending:
        yield pa.Table.from_batches(pending, schema)


def _thread(
    fn: Callable[[duckdb.DuckDBPyConnection, str], None], con: duckdb.DuckDBPyConnection, table: str
) -> threading.Thread:
    return threading.Thread(target=fn, args=(con, table), name=f"tracereplay-{table}", daemon=True)
