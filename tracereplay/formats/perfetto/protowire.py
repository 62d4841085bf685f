"""Raw protobuf wire-format walking and encoding, vectorized with numpy where it matters.

Perfetto traces are protobuf, but decoding millions of small ``FtraceEvent``
messages one Python object at a time is far too slow (minutes for a large trace). This module
works on the bytes directly:

* :func:`read_varint` / :func:`iter_fields`: scalar walking for the few large
  messages (packets, bundles) where a Python loop per field is cheap;
* :func:`varints_at`: decode the varints starting at many positions at once;
* :func:`find_run`: the offsets of a run of consecutive length-delimited fields
  with the same tag (the ``event`` entries of a bundle) in O(n log n) numpy
  steps, by pointer doubling over the candidate tag positions;
* :func:`walk_messages`: decode the fields of many small messages in lock-step
  (one numpy step per field index, vector ops across messages);
* :func:`encode_varints` / :func:`assemble`: the matching vectorized encoder.

Every decoder checks its bounds: truncated data, a wrong wire type or an
absurd length raises :class:`WireError` (with the byte offset) instead of
looping or reading past the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
PAD = 32  # zero bytes appended to buffers so gathers near the end stay in bounds


class WireError(ValueError):
    """Malformed protobuf: ``offset`` is relative to the buffer being walked."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset
        self.detail = message


def read_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, next position) of the varint at ``pos``; WireError when malformed."""
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireError("truncated varint", start)
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes", start)


def iter_fields(
    data: bytes | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field, wire_type, value, pos)`` for each field of a message.

    For length-delimited fields ``value`` is the payload length and ``pos`` its
    start; otherwise ``value`` is the scalar and ``pos`` the field's end.
    """
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        tag, p = read_varint(data, pos, end)
        field, wt = tag >> 3, tag & 7
        if field == 0:
            raise WireError("field number 0", pos)
        if wt == VARINT:
            value, p = read_varint(data, p, end)
            yield field, wt, value, p
        elif wt == LEN:
            n, p = read_varint(data, p, end)
            if n > end - p:
                raise WireError(f"length {n} runs past the end of the message", pos)
            yield field, wt, n, p
            p += n
        elif wt == FIXED64:
            if p + 8 > end:
                raise WireError("truncated fixed64", pos)
            yield field, wt, int.from_bytes(data[p : p + 8], "little"), p + 8
            p += 8
        elif wt == FIXED32:
            if p + 4 > end:
                raise WireError("truncated fixed32", pos)
            yield field, wt, int.from_bytes(data[p : p + 4], "little"), p + 4
            p += 4
        else:
            raise WireError(f"unsupported wire type {wt} (field {field})", pos)
        pos = p


def as_array(data: bytes) -> U8:
    """``data`` as a uint8 array followed by :data:`PAD` zero bytes."""
    arr = np.zeros(len(data) + PAD, dtype=np.uint8)
    arr[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return arr


def varints_at(buf: U8, pos: I64) -> tuple[U64, I64]:
    """Decode the varint at each position: (values, byte lengths; 0 when over 10 bytes).

    Work is proportional to the bytes actually read: each round only touches the
    varints that still have a continuation bit.
    """
    b = buf[pos]
    values = (b & 0x7F).astype(np.uint64)
    lengths = np.ones(len(pos), dtype=np.int64)
    active = np.flatnonzero(b & 0x80)
    for k in range(1, 10):
        if active.size == 0:
            return values, lengths
        b = buf[pos[active] + k]
        values[active] |= (b & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        lengths[active] += 1
        active = active[(b & 0x80) != 0]
    lengths[active] = 0  # still continuing after 10 bytes: malformed
    return values, lengths


def packed_varints(data: bytes) -> U64:
    """All varints of a packed repeated field (WireError when the last is cut)."""
    if not data:
        return np.zeros(0, dtype=np.uint64)
    buf = as_array(data)
    ends = np.flatnonzero(buf[: len(data)] < 0x80)
    if ends.size == 0 or ends[-1] != len(data) - 1:
        raise WireError("truncated packed varint", len(data))
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    if np.any(ends - starts >= 10):
        raise WireError("varint longer than 10 bytes", int(starts[np.argmax(ends - starts)]))
    return varints_at(buf, starts)[0]


def find_run(buf: U8, start: int, end: int, tag: int) -> tuple[I64, I64, int]:
    """Payload offsets and lengths of the consecutive ``tag`` (one-byte, LEN) fields from ``start``.

    Returns (offsets, lengths, position after the run). Candidates are the bytes
    equal to ``tag``; each one's successor is computed speculatively, then the
    true chain from ``start`` is extracted by pointer doubling (log2 steps).
    """
    cand = start + np.flatnonzero(buf[start:end] == tag).astype(np.int64)
    if cand.size == 0 or cand[0] != start:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), start
    lens, nb = varints_at(buf, cand + 1)
    off = cand + 1 + nb
    nxt = off + lens.astype(np.int64)
    k = cand.size
    bad = (nb == 0) | (lens > np.uint64(end)) | (nxt > end)
    idx = np.searchsorted(cand, nxt)
    on = (idx < k) & ~bad
    on[on] = cand[idx[on]] == nxt[on]
    jump = np.where(on, idx, k).astype(np.int64)
    jump = np.append(jump, k)
    levels = [jump]
    while levels[-1][0] != k:
        j = levels[-1]
        levels.append(j[j])
    # chain length: climb from the top level down
    count, cur = 0, 0
    for lvl in range(len(levels) - 1, -1, -1):
        if levels[lvl][cur] != k:
            cur = int(levels[lvl][cur])
            count += 1 << lvl
    members = count + 1
    steps = np.arange(members, dtype=np.int64)
    path = np.zeros(members, dtype=np.int64)
    for lvl, j in enumerate(levels):
        sel = ((steps >> lvl) & 1).astype(bool)
        if sel.any():
            path[sel] = j[path[sel]]
    last = path[-1]
    if bad[last]:
        raise WireError("event length runs past the end of the bundle", int(cand[last]))
    return off[path], lens[path].astype(np.int64), int(nxt[last])


@dataclass
class Fields:
    """Long-format decode of many messages: one entry per field occurrence."""

    msg: I64  # index of the message
    field: I64
    wire: I64
    value: U64  # varint / fixed value, or payload length for LEN
    offset: I64  # payload start for LEN fields

    def select(self, field: int) -> Fields:
        m = self.field == field
        return Fields(self.msg[m], self.field[m], self.wire[m], self.value[m], self.offset[m])


def walk_messages(buf: U8, starts: I64, ends: I64, max_fields: int = 256) -> Fields:
    """Decode every field of the messages ``buf[starts[i]:ends[i]]`` in lock-step.

    One round per field index; each round decodes one tag and one value for
    every message that has not ended yet. Raises WireError (offset into ``buf``)
    on the first malformed message.
    """
    out: list[tuple[I64, I64, I64, U64, I64]] = []
    active = np.flatnonzero(starts < ends).astype(np.int64)
    pos = starts.astype(np.int64).copy()
    for _ in range(max_fields):
        if active.size == 0:
            break
        p = pos[active]
        tag, nb = varints_at(buf, p)
        wt = (tag & np.uint64(7)).astype(np.int64)
        fno = (tag >> np.uint64(3)).astype(np.int64)
        p = p + nb
        value = np.zeros(active.size, dtype=np.uint64)
        offset = p.copy()
        vint = wt == VARINT
        ln = wt == LEN
        f64 = wt == FIXED64
        f32 = wt == FIXED32
        if vint.any() or ln.any():
            vl = vint | ln
            v, vnb = varints_at(buf, p[vl])
            value[vl] = v
            bad_v = np.zeros(active.size, dtype=bool)
            bad_v[vl] = vnb == 0
            p[vl] += vnb
            offset[vl] = p[vl]
        else:
            bad_v = np.zeros(active.size, dtype=bool)
        if f64.any():
            value[f64] = _fixed(buf, p[f64], 8)
            offset[f64] = p[f64]
            p[f64] += 8
        if f32.any():
            value[f32] = _fixed(buf, p[f32], 4)
            offset[f32] = p[f32]
            p[f32] += 4
        lim = ends[active]
        # lengths checked before adding, so an absurd one cannot overflow
        over = ln & (value > (lim - p).clip(0).astype(np.uint64))
        p[ln] += value[ln].astype(np.int64) * ~over[ln]
        bad = (nb == 0) | bad_v | (fno == 0) | ~(vint | ln | f64 | f32) | over | (p > lim)
        if bad.any():
            i = int(np.argmax(bad))
            what = "truncated or malformed field"
            if not (vint | ln | f64 | f32)[i]:
                what = f"unsupported wire type {int(wt[i])}"
            elif over[i]:
                what = f"length {int(value[i])} runs past the end of the message"
            raise WireError(what, int(pos[active[i]]))
        out.append((active, fno, wt, value, offset))
        pos[active] = p
        active = active[p < lim]
    if active.size:
        raise WireError(f"more than {max_fields} fields in a message", int(pos[active[0]]))
    if not out:
        e = np.zeros(0, np.int64)
        return Fields(e, e, e, np.zeros(0, np.uint64), e)
    cols = list(zip(*out, strict=True))
    return Fields(*(np.concatenate(c) for c in cols))


def _fixed(buf: U8, pos: I64, width: int) -> U64:
    idx = pos[:, None] + np.arange(width)
    raw = np.ascontiguousarray(buf[idx])
    return raw.view("<u8" if width == 8 else "<u4").ravel().astype(np.uint64)


def gather_bytes(buf: U8, offsets: I64, lengths: I64) -> tuple[U8, I64]:
    """Concatenate the byte ranges: (data, Arrow-style offsets of length n+1)."""
    bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    total = int(bounds[-1])
    if total == 0:
        return np.zeros(0, dtype=np.uint8), bounds
    idx = np.repeat(offsets - bounds[:-1], lengths) + np.arange(total, dtype=np.int64)
    return buf[idx], bounds


# ----------------------------------------------------------------------------- encoding


def varint_bytes(value: int) -> bytes:
    """Encode one non-negative (or two's complement 64-bit) integer as a varint."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag_bytes(field: int, wire: int) -> bytes:
    return varint_bytes((field << 3) | wire)


def len_field(field: int, payload: bytes) -> bytes:
    return tag_bytes(field, LEN) + varint_bytes(len(payload)) + payload


def varint_field(field: int, value: int) -> bytes:
    return tag_bytes(field, VARINT) + varint_bytes(value)


def encode_varints(values: U64) -> tuple[U8, I64]:
    """Vectorized varint encoding: (m x 10 byte matrix, byte length per row)."""
    v = values.astype(np.uint64).copy()
    m = len(v)
    mat = np.zeros((m, 10), dtype=np.uint8)
    lengths = np.ones(m, dtype=np.int64)
    for k in range(10):
        low = (v & np.uint64(0x7F)).astype(np.uint8)
        v >>= np.uint64(7)
        more = v != 0
        mat[:, k] = low | (more.astype(np.uint8) << 7)
        lengths += more
        if not more.any():
            break
    return mat, lengths


def assemble(pieces: list[tuple[U8, I64]]) -> tuple[U8, I64]:
    """Row-wise concatenation of byte pieces: (data, per-row lengths).

    Each piece is an (m x width) matrix with the valid length of each row;
    masking the side-by-side matrix keeps row-major order, so the result is
    row 0's pieces, then row 1's, and so on.
    """
    mats = [p[0] for p in pieces]
    masks = [np.arange(p[0].shape[1]) < p[1][:, None] for p in pieces]
    mat = np.hstack(mats)
    mask = np.hstack(masks)
    total = np.zeros(mat.shape[0], dtype=np.int64)
    for p in pieces:
        total += p[1]
    return mat[mask], total


def const_piece(
    data: bytes, m: int, present: npt.NDArray[np.bool_] | None = None
) -> tuple[U8, I64]:
    """The same bytes on every row (or only where ``present``)."""
    mat = (
        np.tile(np.frombuffer(data, dtype=np.uint8), (m, 1)) if data else np.zeros((m, 0), np.uint8)
    )
    lengths = np.full(m, len(data), dtype=np.int64)
    if present is not None:
        lengths[~present] = 0
    return mat, lengths


def bytes_piece(data: U8, offsets: I64) -> tuple[U8, I64]:
    """Variable-length byte strings (Arrow-style data + offsets) as a padded matrix."""
    data = data[int(offsets[0]) : int(offsets[-1])] if len(offsets) else data
    offsets = offsets - offsets[0] if len(offsets) else offsets
    lengths = np.diff(offsets).astype(np.int64)
    m = len(lengths)
    width = int(lengths.max()) if m else 0
    mat = np.zeros((m, width), dtype=np.uint8)
    if width:
        rows = np.repeat(np.arange(m), lengths)
        cols = np.arange(len(data), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        mat[rows, cols] = data
    return mat, lengths


__all__ = [
    "FIXED32",
    "FIXED64",
    "LEN",
    "VARINT",
    "Fields",
    "WireError",
    "as_array",
    "assemble",
    "bytes_piece",
    "const_piece",
    "encode_varints",
    "find_run",
    "gather_bytes",
    "iter_fields",
    "len_field",
    "packed_varints",
    "read_varint",
    "tag_bytes",
    "varint_bytes",
    "varint_field",
    "varints_at",
    "walk_messages",
]
