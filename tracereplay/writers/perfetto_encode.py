"""Vectorized encoding of canonical events into ``FtraceEvent`` entries of a bundle.

Each event type is encoded for all its rows at once: every field becomes a byte
matrix (tag, varint or string bytes) with a valid length per row, and
:func:`~tracereplay.formats.perfetto.protowire.assemble` concatenates them row-wise.
The result of :func:`encode_group` is the bytes of ``event`` entries
(``0x12 len FtraceEvent``) for the group's rows, in row order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto.protowire import (
    I64,
    U8,
    U64,
    assemble,
    bytes_piece,
    const_piece,
    encode_varints,
    tag_bytes,
)

Bool = npt.NDArray[np.bool_]


@dataclass
class Column:
    """One field of a group: integers (two's complement u64) or UTF-8 strings."""

    number: int
    present: Bool
    ints: U64 | None = None
    data: U8 | None = None  # strings: Arrow-style data + offsets (all rows)
    offsets: I64 | None = None
    fixed64: bool = False

    @classmethod
    def of_ints(cls, number: int, series: pl.Series) -> Column:
        present = series.is_not_null().to_numpy()
        if series.dtype == pl.Boolean:
            ints = series.cast(pl.UInt64).fill_null(0).to_numpy()
        elif series.dtype.is_signed_integer():
            ints = series.cast(pl.Int64).fill_null(0).to_numpy().view(np.uint64)
        elif series.dtype == pl.Float64:
            ints = series.fill_null(0.0).to_numpy().astype(np.float64).view(np.uint64)
            return cls(number, present, ints=ints, fixed64=True)
        else:
            ints = series.cast(pl.UInt64).fill_null(0).to_numpy()
        return cls(number, present, ints=np.ascontiguousarray(ints, dtype=np.uint64))

    @classmethod
    def of_strings(cls, number: int, series: pl.Series) -> Column:
        """UTF-8 strings, or raw bytes (packed repeated fields) from a Binary series."""
        present = series.is_not_null().to_numpy()
        import pyarrow as pa

        if series.dtype == pl.Binary:
            arr = series.fill_null(b"").to_arrow().cast(pa.large_binary())
        else:
            arr = series.fill_null("").cast(pl.String).to_arrow().cast(pa.large_string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        bufs = arr.buffers()
        offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
        data = (
            np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        )
        return cls(number, present, data=data, offsets=offsets.astype(np.int64))


def _varint_piece(values: U64, present: Bool | None = None) -> tuple[U8, I64]:
    mat, lengths = encode_varints(values)
    if present is not None:
        lengths = np.where(present, lengths, 0)
    return mat, lengths


def _field_pieces(col: Column, m: int) -> list[tuple[U8, I64]]:
    if col.ints is not None and col.fixed64:
        mat = np.ascontiguousarray(col.ints).view(np.uint8).reshape(m, 8)
        return [
            const_piece(tag_bytes(col.number, 1), m, col.present),
            (mat, np.where(col.present, 8, 0)),
        ]
    if col.ints is not None:
        return [
            const_piece(tag_bytes(col.number, 0), m, col.present),
            _varint_piece(col.ints, col.present),
        ]
    assert col.data is not None and col.offsets is not None
    lengths = np.diff(col.offsets).astype(np.int64)
    return [
        const_piece(tag_bytes(col.number, 2), m, col.present),
        _varint_piece(lengths.astype(np.uint64), col.present),
        _masked(bytes_piece(col.data, col.offsets), col.present),
    ]


def _masked(piece: tuple[U8, I64], present: Bool) -> tuple[U8, I64]:
    return piece[0], np.where(present, piece[1], 0)


def encode_group(
    field_id: int, ts: I64, pid: I64, pid_present: Bool, cols: list[Column]
) -> tuple[U8, I64]:
    """Bundle ``event`` entries for ``m`` events of one type: (bytes, bytes per row)."""
    m = len(ts)
    payload: list[tuple[U8, I64]] = []
    for col in cols:
        payload.extend(_field_pieces(col, m))
    sub_len = np.zeros(m, dtype=np.int64)
    for _mat, ln in payload:
        sub_len += ln
    head = [
        const_piece(b"\x08", m),
        _varint_piece(ts.view(np.uint64)),
        const_piece(b"\x10", m, pid_present),
        _varint_piece(pid.view(np.uint64), pid_present),
        const_piece(tag_bytes(field_id, 2), m),
        _varint_piece(sub_len.astype(np.uint64)),
    ]
    ev_len = sub_len.copy()
    for _mat, ln in head:
        ev_len += ln
    pieces = [
        const_piece(bytes([(ps.B_EVENT << 3) | 2]), m),
        _varint_piece(ev_len.astype(np.uint64)),
    ]
    return assemble(pieces + head + payload)


def place(total: I64, parts: list[tuple[I64, U8, I64]]) -> tuple[U8, I64]:
    """Lay out per-row byte strings in row order.

    ``total[r]`` is the byte count of row ``r``; each part gives (rows, data,
    per-row lengths) with data in the order of its rows; a row may get several
    parts, laid out in the order of ``parts``.
    """
    bounds = np.zeros(len(total) + 1, dtype=np.int64)
    np.cumsum(total, out=bounds[1:])
    out = np.zeros(int(bounds[-1]), dtype=np.uint8)
    filled = np.zeros(len(total), dtype=np.int64)
    for rows, data, lengths in parts:
        if len(rows) == 0:
            continue
        starts = bounds[rows] + filled[rows]
        local = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=local[1:])
        idx = np.repeat(starts - local[:-1], lengths) + np.arange(int(local[-1]), dtype=np.int64)
        out[idx] = data
        filled[rows] += lengths
    return out, bounds


__all__ = ["Column", "encode_group", "place"]
