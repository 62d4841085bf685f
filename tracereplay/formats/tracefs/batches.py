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

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tracereplay.formats.common.columns import BATCH_ROWS, StringPool, factorize, large_strings
from tracereplay.formats.tracefs.event_decoder import EventDecoder
from tracereplay.schema import EVENT_SCHEMA

__all__ = ["BatchBuilder", "number_schema"]

I64 = npt.NDArray[np.int64]
_STACK = EVENT_SCHEMA.field("stack").type


def number_schema(columns: list[str]) -> pa.Schema:
    """EVENT_SCHEMA and the uint64 columns of events given as numbers
    (:meth:`EventDecoder.numbers`)."""
    if not columns:
        return EVENT_SCHEMA
    return pa.schema([*EVENT_SCHEMA, *(pa.field(c, pa.uint64()) for c in columns)])


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
        self._numbers: list[list[pa.Array]] = []

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
        self._numbers.append(numbers)
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
        """The filled rows as one canonical batch numbered from ``seq``; starts the next."""
        n = self.rows
        col = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in self._cols.items()}
        dec = self.decoder
        system, name = dec.names(col["slot"])
        codes, uniq = factorize(col["pid"])
        comm = StringPool(dec.comm_names(uniq.astype(np.int32).tolist())).take(codes)
        args = large_strings(self._offsets[: n + 1], self._out[: self._end])
        numbers = [
            pa.concat_arrays([part[k] for part in self._numbers])
            for k in range(len(dec.number_columns))
        ]
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array(np.arange(seq, seq + n, dtype=np.int64)),
                pa.array(col["ts"]),
                pa.array(col["cpu"].astype(np.int32)),
                pa.array(col["pid"].astype(np.int32)),
                pa.array(col["tgid"].astype(np.int32), mask=col["null"].astype(bool)),
                comm,
                system,
                name,
                args,
                self._stack_column(n),
                *numbers,
            ],
            schema=number_schema(dec.number_columns),
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
