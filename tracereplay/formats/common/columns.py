"""Arrow columns from numpy arrays: batches of whole row groups, string pools, codes.

Shared by the binary readers (trace.dat, perf.data, Perfetto): the compiled
:func:`factorize` and :func:`gather_pool` build dictionary codes and string
columns without a Python loop per row.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from numba import njit

__all__ = [
    "BATCH_ROWS",
    "StringPool",
    "factorize",
    "gather_pool",
    "large_strings",
    "range_validity",
    "ranged_uint64",
    "rechunk",
]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

# Rows per yielded batch: one DuckDB row group (122 880 rows). DuckDB's streaming INSERT
# is several times slower on batches a little over one row group (measured: 130 000-row
# batches 7.9 s, 245 760-row ones 2.8 s for the same 5.5 M rows), and slower on half
# ones. One row group rather than two keeps 100-170 MiB less in flight between the
# reader and DuckDB; on this VM every page first touched after an idle moment costs
# ~5 us of system time (the host takes back freed guest memory), so a 4 M-event
# trace.dat ingest after `trace-cmd report` went 2.49 -> 2.30 s, text 4.47 -> 4.16 s.
BATCH_ROWS = 122_880


def rechunk(batches: Iterator[pa.RecordBatch], rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The same rows in batches of exactly ``rows`` (the last one shorter).

    Whole row groups inside a batch are slices of it; only a row group that spans two
    batches is copied (concatenating the carried rows with the whole next batch copied
    every row of it: 0.1-0.2 CPU-s of a 4 M-event Perfetto read, issue 17).
    """
    pending: list[pa.RecordBatch] = []
    have = 0
    for batch in batches:
        start = 0
        if pending:
            head = batch.slice(0, rows - have)
            pending.append(head)
            have += head.num_rows
            start = head.num_rows
            if have < rows:
                continue
            yield pa.concat_batches(pending)
            pending, have = [], 0
        while batch.num_rows - start >= rows:
            yield batch.slice(start, rows)
            start += rows
        if start < batch.num_rows:
            pending, have = [batch.slice(start)], batch.num_rows - start
    if have:
        yield pa.concat_batches(pending) if len(pending) > 1 else pending[0]


def large_strings(offsets: I64, data: U8) -> pa.LargeStringArray:
    n = len(offsets) - 1
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def range_validity(start: int, stop: int, n: int) -> pa.Buffer:
    """Validity bitmap of ``n`` rows, valid from ``start`` to ``stop``."""
    valid = np.zeros(n, np.bool_)
    valid[start:stop] = True
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def ranged_uint64(
    values: npt.NDArray[np.uint64], start: int, stop: int, n: int, validity: pa.Buffer | None = None
) -> pa.Array:
    """A uint64 column of ``n`` rows: ``values`` from ``start`` to ``stop``, null elsewhere
    (``validity``: :func:`range_validity`'s bitmap, shared by several columns). The
    values under the nulls are never read: left as allocated, not zeroed (issue 17:
    memory is time)."""
    if validity is None:
        validity = range_validity(start, stop, n)
    out = np.empty(n, np.uint64)
    out[start:stop] = values
    return pa.Array.from_buffers(pa.uint64(), n, [validity, pa.py_buffer(out)], n - (stop - start))


class StringPool:
    """A few strings (event names, comms) for :func:`gather_pool`."""

    def __init__(self, texts: list[str]) -> None:
        raw = [t.encode() for t in texts]
        self.offsets = np.zeros(len(raw) + 1, np.int64)
        self.offsets[1:] = np.cumsum([len(r) for r in raw]) if raw else []
        self.data = np.frombuffer(b"".join(raw) or b"\0", np.uint8)

    def take(self, idx: npt.NDArray[np.int32] | I64) -> pa.LargeStringArray:
        offsets, data = gather_pool(self.offsets, self.data, np.ascontiguousarray(idx, np.int64))
        return large_strings(offsets, data)


@njit(cache=True, nogil=True)
def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each key, distinct keys in first-seen order): a hash table, no sort."""
    n = keys.shape[0]
    size = 64
    while size < 2 * n:
        size *= 2
    mask = size - 1
    table = np.full(size, -1, np.int64)
    uniq = np.empty(n, np.int64)
    codes = np.empty(n, np.int32)
    m = 0
    for i in range(n):
        key = keys[i]
        h = (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
        j = np.int64(h) & mask
        while True:
            t = table[j]
            if t < 0:
                table[j] = m
                uniq[m] = key
                codes[i] = m
                m += 1
                break
            if uniq[t] == key:
                codes[i] = t
                break
            j = (j + 1) & mask
    return codes, uniq[:m]


@njit(cache=True, nogil=True)
def gather_pool(
    pool_off: np.ndarray, pool: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Arrow large_string buffers of ``strings[idx]`` for a pool of a few strings."""
    n = idx.shape[0]
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    total = 0
    npool = pool_off.shape[0] - 1
    for k in range(npool):
        if pool_off[k] < 0 or pool_off[k] > pool_off[k + 1] or pool_off[k + 1] > pool.shape[0]:
            raise ValueError("gather_pool: string outside the pool")
    for i in range(n):
        if idx[i] < 0 or idx[i] >= npool:
            raise ValueError("gather_pool: index outside the pool")
        total += pool_off[idx[i] + 1] - pool_off[idx[i]]
        offsets[i + 1] = total
    data = np.empty(total, np.uint8)
    for i in range(n):
        # unsigned indices: no negative-index fix-up per byte
        s = np.uint64(pool_off[idx[i]])
        o = np.uint64(offsets[i])
        for k in range(np.uint64(offsets[i + 1]) - o):
            data[o + k] = pool[s + k]
    return offsets, data
