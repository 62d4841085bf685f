"""Compiled (numba, ``nogil``, cached) walking of Perfetto messages and rendering of ``args``.

Like the text scanner and the ring-buffer renderer, the loops run over the raw
bytes once and write final buffers:

* :func:`bundle_fields`: every top-level field of one ``FtraceEventBundle``
  (the ``event`` entries included), sequentially;
* :func:`walk_events`: timestamp, pid and event payload of each ``FtraceEvent``;
* :func:`decode_fields`: the fields of each event's sub-message into per-row
  slots (one slot per field of the event type's layout);
* :func:`render_args`: the JSON ``args`` of every row straight into Arrow
  ``large_string`` buffers, from a flat program per event type. Values that
  Python renders (kernel symbols, symbolic integers, floats) arrive as
  fragments of a pool.

Buffers carry :data:`protowire.PAD` zero bytes at the end, so a varint read
near the end of a message stays in bounds; every read is still checked against
the message end, and malformed input is reported as (byte offset, error code,
value) for the caller to raise :class:`~tracereplay.formats.perfetto.protowire.WireError`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracereplay.formats.common.jsonbuf import put, put_bool, put_int, put_null, put_text

_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8)

# error codes
E_NONE, E_MALFORMED, E_WIRE, E_LENGTH, E_FIELDS = 0, 1, 2, 3, 4
# slot kinds filled by decode_fields (K_POOL: the value is a pool fragment index)
K_ABSENT, K_NUM, K_LEN, K_POOL = 0, 1, 2, 3
# numeric render modes
M_UINT, M_INT, M_BOOL, M_ZIGZAG = 0, 1, 2, 3


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


@njit(cache=True, nogil=True)
def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys sorted, index of each key in them), for few distinct keys."""
    seen = np.empty(16, np.int64)
    ns = 0
    code = np.empty(keys.shape[0], np.int64)
    last_key = np.int64(0)
    last_code = -1
    for i in range(keys.shape[0]):
        k = keys[i]
        if last_code >= 0 and k == last_key:
            code[i] = last_code
            continue
        c = -1
        for j in range(ns):
            if seen[j] == k:
                c = j
                break
        if c < 0:
            if ns == seen.shape[0]:
                grown = np.empty(ns * 2, np.int64)
                grown[:ns] = seen[:ns]
                seen = grown
            seen[ns] = k
            c = ns
            ns += 1
        code[i] = c
        last_key = k
        last_code = c
    order = np.argsort(seen[:ns], kind="mergesort")
    rank = np.empty(ns, np.int64)
    for j in range(ns):
        rank[order[j]] = j
    for i in range(keys.shape[0]):
        code[i] = rank[code[i]]
    return seen[:ns][order], code


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
    tidx: np.ndarray,
    soff: np.ndarray,
    slen: np.ndarray,
    slot_start: np.ndarray,
    slot_n: np.ndarray,
    slot_fno: np.ndarray,
    base: np.ndarray,
    kind: np.ndarray,
    val: np.ndarray,
    aux: np.ndarray,
    max_fields: int,
) -> tuple[int, int, int]:
    """Fill the slots of each row (last occurrence of a field wins); error triple.

    Rows, types and slots outside their tables raise ValueError (a bug, not bad
    input); a payload outside ``buf`` is reported as a length error.
    """
    nbuf = buf.shape[0]
    nslots = kind.shape[0]
    if val.shape[0] != nslots or aux.shape[0] != nslots:
        raise ValueError("decode_fields: slot arrays differ in length")
    for r in range(rows.shape[0]):
        i = rows[r]
        if i < 0 or i >= tidx.shape[0] or i >= base.shape[0] or i >= soff.shape[0]:
            raise ValueError("decode_fields: row out of range")
        t = tidx[i]
        if t < 0 or t >= slot_start.shape[0]:
            raise ValueError("decode_fields: event type out of range")
        s0 = slot_start[t]
        ns = slot_n[t]
        b = base[i]
        if s0 < 0 or ns < 0 or s0 + ns > slot_fno.shape[0] or b < 0 or b + ns > nslots:
            raise ValueError("decode_fields: slots out of range")
        p = soff[i]
        lim = p + slen[i]
        if p < 0 or slen[i] < 0 or lim > nbuf:
            return max(p, 0), E_LENGTH, slen[i]
        nf = 0
        while p < lim:
            if nf == max_fields:
                return p, E_FIELDS, max_fields
            f, wt, v, s, q, err = _field(buf, p, lim)
            if err != E_NONE:
                return p, err, int(np.int64(v))
            nf += 1
            for j in range(ns):
                if slot_fno[s0 + j] == f:
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


@njit(cache=True, inline="always")
def _put_u64(out: np.ndarray, o: int, v: np.uint64) -> int:
    """Decimal digits of an unsigned 64-bit value, two digits per division."""
    n = 1
    t = v
    while t >= np.uint64(10):
        t = t // np.uint64(10)
        n += 1
    e = o + n
    while v >= np.uint64(100):
        r = np.int64(v % np.uint64(100)) * 2
        v = v // np.uint64(100)
        e -= 2
        out[e] = _PAIRS[r]
        out[e + 1] = _PAIRS[r + 1]
    if v >= np.uint64(10):
        r = np.int64(v) * 2
        out[e - 2] = _PAIRS[r]
        out[e - 1] = _PAIRS[r + 1]
    else:
        out[e - 1] = 48 + np.uint8(v)
    return o + n


@njit(cache=True, nogil=True)
def render_args(
    buf: np.ndarray,
    tidx: np.ndarray,
    row_pool: np.ndarray,
    base: np.ndarray,
    kind: np.ndarray,
    val: np.ndarray,
    aux: np.ndarray,
    prog_start: np.ndarray,
    prog_n: np.ndarray,
    op_lit: np.ndarray,
    op_lit_len: np.ndarray,
    op_slot: np.ndarray,
    op_mode: np.ndarray,
    lits: np.ndarray,
    pool: np.ndarray,
    pool_off: np.ndarray,
    longest: int,
    slen: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """JSON ``args`` of every row: (Arrow large_string offsets, data).

    A row with ``row_pool >= 0`` takes that pool fragment whole; a row whose
    type index is negative gets ``{}``. Strings (``K_LEN`` slots) come from the
    row's payload (``slen``: its length): together they are cut at that length,
    and at the end of ``buf``. ``longest``: the longest pool fragment a slot
    refers to (a longer one is written as null). The output is sized from the
    program, ``longest`` and the payload lengths before anything is written;
    tables that do not match raise ValueError (a bug, not bad input).
    """
    m = tidx.shape[0]
    nbuf = buf.shape[0]
    npool = pool_off.shape[0] - 1
    nops = op_slot.shape[0]
    if row_pool.shape[0] != m or base.shape[0] != m or slen.shape[0] != m:
        raise ValueError("render_args: row arrays differ in length")
    if kind.shape[0] != val.shape[0] or kind.shape[0] != aux.shape[0]:
        raise ValueError("render_args: slot arrays differ in length")
    if op_lit.shape[0] != nops or op_lit_len.shape[0] != nops or op_mode.shape[0] != nops:
        raise ValueError("render_args: op arrays differ in length")
    for k in range(npool):
        if pool_off[k] < 0 or pool_off[k] > pool_off[k + 1] or pool_off[k + 1] > pool.shape[0]:
            raise ValueError("render_args: pool fragment outside the pool")
    nt = prog_start.shape[0]
    bound = np.zeros(nt, np.int64)
    for t in range(nt):
        if prog_start[t] < 0 or prog_n[t] < 0 or prog_start[t] + prog_n[t] > nops:
            raise ValueError("render_args: program outside the op table")
        b = 2
        for q in range(prog_start[t], prog_start[t] + prog_n[t]):
            if op_lit[q] < 0 or op_lit_len[q] < 0 or op_lit[q] + op_lit_len[q] > lits.shape[0]:
                raise ValueError("render_args: key literal outside the literal table")
            # a number is at most 20 characters and a pooled value at most the longest
            b += op_lit_len[q] + max(21, longest)
        bound[t] = b
    offsets = np.zeros(m + 1, np.int64)
    cap = 0
    for i in range(m):
        t = tidx[i]
        rp = row_pool[i]
        if rp >= npool or t >= nt:
            raise ValueError("render_args: row pool fragment or type out of range")
        if rp >= 0:
            cap += pool_off[rp + 1] - pool_off[rp]
        elif t >= 0:
            # every string comes from the payload (6 bytes out per byte in)
            cap += bound[t] + 6 * max(slen[i], 0) + 2
        else:
            cap += 2
    out = np.empty(cap, np.uint8)
    o = 0
    nslots = kind.shape[0]
    for i in range(m):
        t = tidx[i]
        rp = row_pool[i]
        if rp >= 0:
            o = put(out, o, pool, pool_off[rp], pool_off[rp + 1] - pool_off[rp])
        else:
            out[o] = 123
            o += 1
            if t >= 0:
                room = max(slen[i], 0)  # payload bytes the row's strings may still use
                for q in range(prog_start[t], prog_start[t] + prog_n[t]):
                    o = put(out, o, lits, op_lit[q], op_lit_len[q])
                    j = op_slot[q]
                    k = base[i] + j
                    if j < 0 or k < 0 or k >= nslots:
                        o = put_null(out, o)
                        continue
                    kd = kind[k]
                    v = val[k]
                    if kd == K_ABSENT:
                        o = put_null(out, o)
                    elif kd == K_LEN:
                        s = min(max(int(np.int64(v)), 0), nbuf)
                        n = min(max(int(aux[k]), 0), room, nbuf - s)
                        room -= n
                        o = put_text(out, o, buf, s, s + n)
                    elif kd == K_POOL:
                        pv = np.int64(v)
                        if 0 <= pv < npool and pool_off[pv + 1] - pool_off[pv] <= longest:
                            o = put(out, o, pool, pool_off[pv], pool_off[pv + 1] - pool_off[pv])
                        else:
                            o = put_null(out, o)
                    else:
                        mode = op_mode[q]
                        if mode == M_UINT:
                            o = _put_u64(out, o, v)
                        elif mode == M_INT:
                            iv = np.int64(v)
                            if iv < 0:
                                out[o] = 45
                                o = _put_u64(out, o + 1, ~v + np.uint64(1))
                            else:
                                o = _put_u64(out, o, v)
                        elif mode == M_BOOL:
                            o = put_bool(out, o, v != np.uint64(0))
                        else:
                            z = np.int64(v >> np.uint64(1)) ^ -np.int64(v & np.uint64(1))
                            o = put_int(out, o, int(z))
            out[o] = 125
            o += 1
        offsets[i + 1] = o
    return offsets, out[:o]


__all__ = [
    "K_ABSENT",
    "K_LEN",
    "K_NUM",
    "K_POOL",
    "M_BOOL",
    "M_INT",
    "M_UINT",
    "M_ZIGZAG",
    "bundle_fields",
    "decode_fields",
    "error_text",
    "factorize",
    "render_args",
    "walk_events",
]
