"""Compiled (numba, ``nogil``, cached) walking of Perfetto messages: bundles, events, fields.

Like the text scanner and the ring-buffer walker, the loops run over the raw
bytes once:

* :func:`bundle_fields`: every top-level field of one ``FtraceEventBundle``
  (the ``event`` entries included), sequentially;
* :func:`walk_events`: timestamp, pid and event payload of each ``FtraceEvent``;
* :func:`decode_fields`: the fields of each event's sub-message into per-row
  slots (one slot per field of the event type's layout), which
  :mod:`tracereplay.formats.perfetto.args` renders as JSON.

Buffers carry :data:`protowire.PAD` zero bytes at the end, so a varint read
near the end of a message stays in bounds; every read is still checked against
the message end, and malformed input is reported as (byte offset, error code,
value) for the caller to raise :class:`~tracereplay.formats.perfetto.protowire.WireError`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from tracereplay.formats.common.columns import factorize

# error codes
E_NONE, E_MALFORMED, E_WIRE, E_LENGTH, E_FIELDS = 0, 1, 2, 3, 4
# slot kinds filled by decode_fields (K_FRAGMENT, set after it: the value is a fragment index)
K_ABSENT, K_NUM, K_LEN, K_FRAGMENT = 0, 1, 2, 3


class Slots(NamedTuple):
    """Decoded field values, one slot per field of each row's event type: ``kind``
    (K_*), the value (a number, or a string's offset in the buffer) and, for a
    string, its length."""

    kind: npt.NDArray[np.uint8]
    val: npt.NDArray[np.uint64]
    aux: npt.NDArray[np.int64]


class EventPayloads(NamedTuple):
    """Per event: its type's index in a :class:`SlotLayout`, its payload (offset, length)
    and its first slot."""

    tidx: npt.NDArray[np.int64]
    off: npt.NDArray[np.int64]
    length: npt.NDArray[np.int64]
    base: npt.NDArray[np.int64]


class SlotLayout(NamedTuple):
    """Type ``t`` has ``n_slots[t]`` slots, for the field numbers ``fno[first[t]:][:n_slots[t]]``."""

    first: npt.NDArray[np.int64]
    n_slots: npt.NDArray[np.int64]
    fno: npt.NDArray[np.int64]


def error_text(code: int, value: int, limit: int) -> str:
    if code == E_WIRE:
        return f"unsupported wire type {value}"
    if code == E_LENGTH:
        return f"length {value} runs past the end of the message"
    if code == E_FIELDS:
        return f"more than {limit} fields in a message"
    return "truncated or malformed field"


@njit(cache=True, inline="always")
def _varint(buf: np.ndarray, p: int) -> tuple[np.uint64, int]:
    """(value, next position) of the varint at p; next position -1 when over 10 bytes."""
    v = np.uint64(0)
    sh = np.uint64(0)
    end = min(p + 10, buf.shape[0])
    while p < end:
        b = buf[p]
        p += 1
        v |= np.uint64(b & 0x7F) << sh
        if b < 0x80:
            return v, p
        sh += np.uint64(7)
    return v, -1


@njit(cache=True, inline="always")
def _fixed(buf: np.ndarray, p: int, width: int) -> np.uint64:
    v = np.uint64(0)
    n = buf.shape[0]
    for k in range(width):
        if p + k < n:
            v |= np.uint64(buf[p + k]) << np.uint64(8 * k)
    return v


@njit(cache=True, inline="always")
def _field(buf: np.ndarray, p: int, lim: int) -> tuple[int, int, np.uint64, int, int, int]:
    """One field at p: (field, wire type, value or length, payload start, next, error code).

    On error, ``value`` carries the error's detail (wire type, length).
    """
    tag, q = _varint(buf, p)
    if q < 0:
        return 0, 0, np.uint64(0), p, p, E_MALFORMED
    wt = int(tag & np.uint64(7))
    fno = int(tag >> np.uint64(3))
    v = np.uint64(0)
    start = q
    if wt == 0:
        v, q = _varint(buf, q)
        if q < 0:
            return fno, wt, v, p, p, E_MALFORMED
        start = q
    elif wt == 2:
        v, q = _varint(buf, q)
        if q < 0:
            return fno, wt, v, p, p, E_MALFORMED
        room = lim - q
        if room < 0:
            room = 0
        if v > np.uint64(room):
            return fno, wt, v, p, p, E_LENGTH
        start = q
        q += int(v)
    elif wt == 1:
        v = _fixed(buf, q, 8)
        q += 8
    elif wt == 5:
        v = _fixed(buf, q, 4)
        q += 4
    else:
        return fno, wt, np.uint64(wt), p, p, E_WIRE
    if fno == 0 or q > lim:
        return fno, wt, v, p, p, E_MALFORMED
    return fno, wt, v, start, q, E_NONE


@njit(cache=True, nogil=True)
def bundle_fields(
    buf: np.ndarray, start: int, end: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Top-level fields of the message ``buf[start:end]``: (field, wire, value, pos, error...).

    ``pos`` is the payload start for LEN fields and the field's end otherwise
    (as :func:`protowire.iter_fields`); the error triple is (offset, code, value).
    """
    end = min(end, buf.shape[0])
    start = max(start, 0)
    # every field takes at least 2 bytes (tag, then a varint or a length)
    cap = max(end - start, 0) // 2 + 1
    fno = np.empty(cap, np.int64)
    wire = np.empty(cap, np.int64)
    val = np.empty(cap, np.uint64)
    pos = np.empty(cap, np.int64)
    n = 0
    p = start
    while p < end:
        f, wt, v, s, q, err = _field(buf, p, end)
        if err != E_NONE:
            return fno[:n], wire[:n], val[:n], pos[:n], p, err, int(np.int64(v))
        fno[n] = f
        wire[n] = wt
        val[n] = v
        pos[n] = s if wt == 2 else q
        n += 1
        p = q
    return fno[:n], wire[:n], val[:n], pos[:n], -1, E_NONE, 0


@njit(cache=True, nogil=True)
def walk_events(
    buf: np.ndarray, off: np.ndarray, ln: np.ndarray, max_fields: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """(ts, pid, pid present, event field id, payload offset, payload length, error triple)."""
    m = off.shape[0]
    ts = np.zeros(m, np.int64)
    pid = np.zeros(m, np.int64)
    pid_ok = np.zeros(m, np.bool_)
    etype = np.zeros(m, np.int64)
    soff = np.zeros(m, np.int64)
    slen = np.zeros(m, np.int64)
    nbuf = buf.shape[0]
    for i in range(m):
        p = off[i]
        lim = min(p + ln[i], nbuf)
        if p < 0 or ln[i] < 0 or p + ln[i] > nbuf:
            return ts, pid, pid_ok, etype, soff, slen, max(p, 0), E_LENGTH, ln[i]
        nf = 0
        while p < lim:
            if nf == max_fields:
                return ts, pid, pid_ok, etype, soff, slen, p, E_FIELDS, max_fields
            f, wt, v, s, q, err = _field(buf, p, lim)
            if err != E_NONE:
                return ts, pid, pid_ok, etype, soff, slen, p, err, int(np.int64(v))
            nf += 1
            if f == 1:
                ts[i] = np.int64(v)
            elif f == 2:
                pid[i] = np.int64(v)
                pid_ok[i] = True
            if wt == 2 and f > 2 and f != 5:
                etype[i] = f
                soff[i] = s
                slen[i] = np.int64(v)
            p = q
    return ts, pid, pid_ok, etype, soff, slen, -1, E_NONE, 0


@njit(cache=True, nogil=True)
def decode_fields(
    buf: np.ndarray,
    rows: np.ndarray,
    events: EventPayloads,
    layout: SlotLayout,
    slots: Slots,
    max_fields: int,
) -> tuple[int, int, int]:
    """Fill the slots of each of ``rows`` (last occurrence of a field wins); error triple.

    Rows, types and slots outside their tables raise ValueError (a bug, not bad
    input); a payload outside ``buf`` is reported as a length error.
    """
    nbuf = buf.shape[0]
    kind, val, aux = slots
    nslots = kind.shape[0]
    if val.shape[0] != nslots or aux.shape[0] != nslots:
        raise ValueError("decode_fields: slot arrays differ in length")
    nev = events.tidx.shape[0]
    if events.off.shape[0] != nev or events.length.shape[0] != nev or events.base.shape[0] != nev:
        raise ValueError("decode_fields: event arrays differ in length")
    if layout.n_slots.shape[0] != layout.first.shape[0]:
        raise ValueError("decode_fields: layout arrays differ in length")
    for r in range(rows.shape[0]):
        i = rows[r]
        if i < 0 or i >= nev:
            raise ValueError("decode_fields: row out of range")
        t = events.tidx[i]
        if t < 0 or t >= layout.first.shape[0]:
            raise ValueError("decode_fields: event type out of range")
        s0 = layout.first[t]
        ns = layout.n_slots[t]
        b = events.base[i]
        if s0 < 0 or ns < 0 or s0 + ns > layout.fno.shape[0] or b < 0 or b + ns > nslots:
            raise ValueError("decode_fields: slots out of range")
        p = events.off[i]
        lim = p + events.length[i]
        if p < 0 or events.length[i] < 0 or lim > nbuf:
            return max(p, 0), E_LENGTH, events.length[i]
        nf = 0
        while p < lim:
            if nf == max_fields:
                return p, E_FIELDS, max_fields
            f, wt, v, s, q, err = _field(buf, p, lim)
            if err != E_NONE:
                return p, err, int(np.int64(v))
            nf += 1
            for j in range(ns):
                if layout.fno[s0 + j] == f:
                    k = b + j
                    if wt == 2:
                        kind[k] = K_LEN
                        val[k] = np.uint64(s)
                        aux[k] = np.int64(v)
                    else:
                        kind[k] = K_NUM
                        val[k] = v
                    break
            p = q
    return -1, E_NONE, 0


def sorted_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys sorted, index of each key in them)."""
    codes, uniq = factorize(np.ascontiguousarray(keys, dtype=np.int64))
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(len(uniq), np.int64)
    rank[order] = np.arange(len(uniq))
    return uniq[order], rank[codes]


__all__ = [
    "K_ABSENT",
    "K_FRAGMENT",
    "K_LEN",
    "K_NUM",
    "EventPayloads",
    "SlotLayout",
    "Slots",
    "bundle_fields",
    "decode_fields",
    "error_text",
    "sorted_codes",
    "walk_events",
]
