"""Windows of tracepoint records -> canonical batches of exactly ``BATCH_ROWS`` rows.

The trace.dat reader merges CPUs in windows of varying size whose record bytes
are valid only until the next window is read. DuckDB inserts batches of whole
row groups several times faster (see
:data:`~tracereplay.formats.common.columns.BATCH_ROWS`), so each window's
``args`` are rendered straight into the buffer of the batch being filled (a
window is split at the batch boundary), rather than re-chunking finished
batches, which copied every column once more. Columns that depend only on the
row (name, system, comm) are built once per batch.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tracereplay.formats.common.columns import (
    BATCH_ROWS,
    StringPool,
    factorize,
    large_strings,
    range_validity,
    ranged_uint64,
)
from tracereplay.formats.tracefs.event_decoder import EventDecoder, Numbers
from tracereplay.schema import EVENT_SCHEMA

__all__ = [
    "ELIDED_RANGES",
    "BatchBuilder",
    "elided_order",
    "elided_ranges",
    "given_layout",
    "number_schema",
]

I64 = npt.NDArray[np.int64]
_STACK = EVENT_SCHEMA.field("stack").type
# schema metadata of a batch whose events given as numbers come last: JSON of
# event name -> [start, stop) of its rows
ELIDED_RANGES = b"tracereplay.elided_ranges"


def number_schema(
    columns: list[pa.Field], ranges: dict[str, tuple[int, int]] | None = None
) -> pa.Schema:
    """EVENT_SCHEMA and the columns of events given as numbers (:meth:`EventDecoder.numbers`);
    ``ranges``: where their rows are (:func:`elided_order`)."""
    if not columns:
        return EVENT_SCHEMA
    meta = {ELIDED_RANGES: json.dumps(ranges).encode()} if ranges else None
    return pa.schema([*EVENT_SCHEMA, *columns], metadata=meta)


def elided_order(n: int, numbers: Numbers) -> tuple[I64 | None, dict[str, tuple[int, int]]]:
    """The row order of a batch of ``n`` rows that puts the rows of events given as
    ``numbers`` last, each event's together (None: there are none), and each such
    event's [start, stop) in it. The store then takes them by slicing, not copying
    every column (store/split.py); ``seq`` keeps the trace's order."""
    if not numbers:
        return None, {}
    kept = np.ones(n, np.bool_)
    for rows, _values in numbers.values():
        kept[rows] = False
    parts = [np.flatnonzero(kept)]
    ranges: dict[str, tuple[int, int]] = {}
    at = len(parts[0])
    for name, (rows, _values) in numbers.items():
        ranges[name] = (at, at + len(rows))
        at += len(rows)
        parts.append(rows)
    return np.concatenate(parts), ranges


def given_layout(
    n: int, numbers: Numbers, keys: dict[str, tuple[str, ...]]
) -> tuple[I64 | None, dict[str, tuple[int, int]], list[pa.Array], pa.Schema]:
    """For a batch of ``n`` rows whose ``numbers`` (event name -> rows, values of each of
    its ``keys``) are given as numbers: (its row order, :func:`elided_order`; each event's
    range; the uint64 value columns, null outside the event's range; the batch schema).
    For the readers whose number keys are all unsigned (text, Perfetto)."""
    order, ranges = elided_order(n, numbers)
    columns: list[pa.Array] = []
    fields: list[pa.Field] = []
    for name, (start, stop) in ranges.items():
        validity = range_validity(start, stop, n)
        for key, v in zip(keys[name], numbers[name][1], strict=True):
            columns.append(ranged_uint64(v, start, stop, n, validity))
            fields.append(pa.field(f"{name}.{key}", pa.uint64()))
    return order, ranges, columns, number_schema(fields, ranges)


def elided_ranges(batch: pa.RecordBatch) -> dict[str, tuple[int, int]]:
    """The ranges a reader put in ``batch``'s schema (:func:`number_schema`), or none."""
    meta = batch.schema.metadata
    if not meta or ELIDED_RANGES not in meta:
        return {}
    return {k: (int(a), int(b)) for k, (a, b) in json.loads(meta[ELIDED_RANGES]).items()}


class BatchBuilder:
    """Fills one batch of ``rows`` rows at a time from slices of windows."""

    def __init__(self, decoder: EventDecoder, rows: int = BATCH_ROWS) -> None:
        self.decoder = decoder
        self.size = rows
        self.rows = 0
        self._bytes_per_row = 64.0  # args capacity guess, then what the last batch needed
        self._start()

    @property
    def room(self) -> int:
        return self.size - self.rows

    def _start(self) -> None:
        self.rows = 0
        self._out = np.empty(int(self._bytes_per_row * self.size) + 4096, np.uint8)
        self._end = 0
        self._offsets = np.empty(self.size + 1, np.int64)
        self._cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("ts", "cpu", "pid", "slot", "tgid", "null")
        }
        self._stacks: list[tuple[int, pa.Array | None]] = []
        # event name -> its rows (in the batch) and values, window by window
        self._numbers: dict[str, list[tuple[I64, list[np.ndarray]]]] = {}

    def add(
        self,
        buf: npt.NDArray[np.uint8],
        rec: I64,
        rec_len: I64,
        cols: dict[str, np.ndarray],
        stack: pa.Array | None,
    ) -> None:
        """Append records (at most ``room``): payloads in ``buf`` and their columns
        ``ts, cpu, pid, slot, tgid, null`` (tgid null mask); ``stack`` None = no stacks."""
        n = len(rec)
        assert n <= self.room
        cols = dict(cols)
        cols["slot"], numbers = self.decoder.numbers(buf, rec, rec_len, cols["slot"])
        for name, (rows, values) in numbers.items():
            self._numbers.setdefault(name, []).append((rows + self.rows, values))
        self._out, self._end = self.decoder.args_into(
            self._out,
            self._end,
            self._offsets[self.rows : self.rows + n + 1],
            buf,
            rec,
            rec_len,
            cols["slot"],
        )
        for k, parts in self._cols.items():
            parts.append(cols[k])
        self._stacks.append((n, stack))
        self.rows += n

    def finish(self, seq: int) -> pa.RecordBatch:
        """The filled rows as one canonical batch numbered from ``seq``; starts the next.

        Rows of events given as numbers come last (:func:`elided_order`)."""
        n = self.rows
        col = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in self._cols.items()}
        col["seq"] = np.arange(seq, seq + n, dtype=np.int64)
        numbers: Numbers = {
            name: (
                np.concatenate([rows for rows, _ in parts]),
                [np.concatenate([v[k] for _, v in parts]) for k in range(len(parts[0][1]))],
            )
            for name, parts in self._numbers.items()
        }
        order, ranges = elided_order(n, numbers)
        if order is not None:
            col = {k: v[order] for k, v in col.items()}
        dec = self.decoder
        system, name = dec.names(col["slot"])
        codes, uniq = factorize(col["pid"])
        comm = StringPool(dec.comm_names(uniq.astype(np.int32).tolist())).take(codes)
        args = large_strings(self._offsets[: n + 1], self._out[: self._end])
        stack = self._stack_column(n)
        if order is not None:
            idx = pa.array(order)
            args = args.take(idx)
            if stack.null_count != n:
                stack = stack.take(idx)
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array(col["seq"]),
                pa.array(col["ts"]),
                pa.array(col["cpu"].astype(np.int32)),
                pa.array(col["pid"].astype(np.int32)),
                pa.array(col["tgid"].astype(np.int32), mask=col["null"].astype(bool)),
                comm,
                system,
                name,
                args,
                stack,
                *dec.number_arrays(numbers, ranges, n),
            ],
            schema=number_schema(dec.number_fields(ranges), ranges),
        )
        self._bytes_per_row = 1.25 * self._end / max(n, 1)
        self._start()
        return batch

    def _stack_column(self, n: int) -> pa.Array:
        if all(s is None for _, s in self._stacks):
            return pa.nulls(n, type=_STACK)
        return pa.concat_arrays(
            [s if s is not None else pa.nulls(k, type=_STACK) for k, s in self._stacks]
        )
