"""Compiled decoding of ftrace ring-buffer pages and of tracepoint records (DESIGN §9).

A per-CPU trace is a run of sub-buffer pages, each::

    u64 timestamp | long commit (data size + flags) | records ...

and each record starts with a 32-bit header: ``type_len`` (5 bits) and
``time_delta`` (27 bits) (kernel/trace/ring_buffer.c, unchanged since 2.6.31):

* ``type_len`` 1..28: data of ``4 * type_len`` bytes follows;
* 0: the next u32 is the length (+4) and the data follows it;
* 29 padding (``time_delta == 0``: rest of the page is empty), 30 time extend
  (``delta = array[0] << 27 | time_delta``), 31 absolute time stamp (59 bits
  since 5.10: the top 5 bits come from the running time).

Like the text scanner (:mod:`tracereplay.formats.text.line_scan`), the loops are
numba-compiled (``nogil``, cached): :func:`walk_pages` reads every record
header once; :func:`render_args` decodes the fields of every record from a
flat *program* per event type (built by
:class:`tracereplay.formats.tracefs.event_decoder.EventDecoder` from the format files)
and writes the JSON ``args`` straight into Arrow ``large_string`` buffers.
Values rendered by Python tables (symbols, ``__print_symbolic`` /
``__print_flags`` names) come from per-field dictionaries of JSON fragments,
filled for the values a batch reports missing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from tracereplay.formats.common.jsonbuf import (
    put,
    put_bool,
    put_hex16,
    put_int,
    put_null,
    put_str_utf8,
    put_uint,
)

__all__ = [
    "M_ARR",
    "M_BOOL",
    "M_CPUMASK",
    "M_DARR",
    "M_DICT",
    "M_DSTR",
    "M_INT",
    "M_NULL",
    "M_PTR",
    "M_QNUM",
    "M_STR",
    "M_UINT",
    "cpulist",
    "print_flags",
    "read_int",
    "read_ints",
    "render_args",
    "walk_pages",
]

_MISSED_EVENTS = 1 << 31
_MISSED_STORED = 1 << 30
_COMMIT_MASK = (1 << 27) - 1
_TS_MSB = np.uint64(0xF8 << 56)
_PADDING, _TIME_EXTEND, _TIME_STAMP = 29, 30, 31

# field render modes of an args program (one row of ``ops`` per output key):
# (mode, key offset, key length, field offset, size, signed, p1, p2)
M_NULL, M_UINT, M_INT, M_BOOL, M_QNUM, M_PTR, M_DICT = 0, 1, 2, 3, 4, 5, 6
M_STR, M_DSTR, M_CPUMASK, M_ARR, M_DARR = 7, 8, 9, 10, 11
# p1 / p2: M_DICT (dict id, -); dynamic modes (extra offset of __rel_loc, -);
# M_ARR (element count, -); M_DARR (extra offset, element size)

I64 = npt.NDArray[np.int64]


@njit(cache=True, inline="always")
def _rd(buf: np.ndarray, at: int | np.int64, size: int, signed: bool) -> int:
    """Little-endian integer of ``size`` bytes at ``at`` (zero bytes past the buffer)."""
    n = buf.shape[0]
    v = np.uint64(0)
    for k in range(size):
        if 0 <= at + k < n:
            v |= np.uint64(buf[np.uint64(at + k)]) << np.uint64(8 * k)
    if signed and size < 8 and (v >> np.uint64(8 * size - 1)) & np.uint64(1):
        v |= ~((np.uint64(1) << np.uint64(8 * size)) - np.uint64(1))
    return int(np.int64(v))


# the public name, for compiled loops of other modules
read_int = _rd


@njit(cache=True, nogil=True)
def read_ints(buf: np.ndarray, off: np.ndarray, at: int, size: int, signed: bool) -> np.ndarray:
    """Integers of ``size`` bytes at ``off + at`` (int64; bit pattern of u64 when unsigned)."""
    out = np.empty(off.shape[0], np.int64)
    for i in range(off.shape[0]):
        out[i] = _rd(buf, off[i] + at, size, signed)
    return out


@njit(cache=True, nogil=True)
def walk_pages(
    buf: np.ndarray, page_size: int, data_offset: int, commit_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Every data record of whole pages of one CPU, in page then record order.

    Returns (payload offset, payload length, raw timestamp, lost-page index,
    lost count or -1, page timestamps, pages with inconsistent headers). Every
    read is bounded by ``buf``; a record is only returned whole inside its page.
    """
    if page_size <= 0 or data_offset < 0 or commit_size < 1 or commit_size > 8:
        raise ValueError("walk_pages: page size, data offset or commit size out of range")
    n_pages = buf.shape[0] // page_size
    n = buf.shape[0]
    # every record takes at least 8 bytes: no growth (rebinding arrays in a loop is slow)
    cap = n // 8 + 1
    off = np.empty(cap, np.int64)
    ln = np.empty(cap, np.int64)
    tss = np.empty(cap, np.uint64)
    lost_p = np.empty(n_pages, np.int64)
    lost_c = np.empty(n_pages, np.int64)
    page_ts = np.empty(n_pages, np.uint64)
    nl = 0
    k = 0
    bad_pages = 0
    room = page_size - data_offset
    for p in range(n_pages):
        base = p * page_size
        ts = np.uint64(_rd(buf, base, 8, False))
        page_ts[p] = ts
        commit = np.uint64(_rd(buf, base + 8, commit_size, False))
        size = np.int64(commit & np.uint64(_COMMIT_MASK))
        bad = size > room
        if bad:
            size = np.int64(0)
        if commit & np.uint64(_MISSED_EVENTS):
            lost_p[nl] = p
            lost_c[nl] = -1
            if commit & np.uint64(_MISSED_STORED) and size + commit_size <= room:
                lost_c[nl] = _rd(buf, base + data_offset + size, commit_size, False)
            nl += 1
        cur = np.int64(0)
        end = size
        overrun = False
        while cur < end:
            at = base + data_offset + cur
            hdr = np.uint64(_rd(buf, min(at, n - 4), 4, False))
            arr0 = np.uint64(_rd(buf, min(at + 4, n - 4), 4, False))
            type_len = np.int64(hdr & np.uint64(31))
            delta = hdr >> np.uint64(5)
            is_data = 1 <= type_len <= 28
            is_big = type_len == 0
            if is_data:
                rec_len = 4 + type_len * 4
            elif is_big:
                rec_len = ((np.int64(arr0) - 4 + 3) & ~3) + 8
            elif type_len == _PADDING:
                rec_len = end - cur if delta == 0 else np.int64(arr0) + 4
            else:
                rec_len = np.int64(8)
            ext = (arr0 << np.uint64(27)) + delta
            if type_len == _TIME_STAMP:
                ts = ext | (ts & _TS_MSB)
            elif type_len == _TIME_EXTEND:
                ts = ts + ext
            else:
                ts = ts + delta
            nxt = cur + rec_len
            broken = rec_len <= 0 or nxt > end or (is_big and arr0 < np.uint64(4))
            if (is_data or is_big) and not broken:
                payload = 8 if is_big else 4
                off[k] = at + payload
                ln[k] = rec_len - payload
                tss[k] = ts
                k += 1
            if broken:
                # padding that runs to the end is how pages end early: not an error
                overrun = not (type_len == _PADDING and nxt >= end)
                break
            cur = nxt
        if bad or overrun:
            bad_pages += 1
    return (
        off[:k].copy(),
        ln[:k].copy(),
        tss[:k].copy(),
        lost_p[:nl],
        lost_c[:nl],
        page_ts,
        bad_pages,
    )


@njit(cache=True, inline="always")
def _dyn_span(buf: np.ndarray, rec: int, rec_len: int, at: int, extra: int) -> tuple[int, int]:
    """(absolute start, length) of a ``__data_loc`` / ``__rel_loc`` payload, clamped to the record."""
    loc = _rd(buf, rec + at, 4, False) if at + 4 <= rec_len else 0
    off = loc & 0xFFFF
    length = loc >> 16
    off += extra
    off = min(off, rec_len)
    length = min(length, rec_len - off)
    return rec + off, length


@njit(cache=True, inline="always")
def _put_text(out: np.ndarray, o: int, buf: np.ndarray, s: int, length: int) -> int:
    """A C string of at most ``length`` bytes (cut at NUL and at the buffer end), as JSON."""
    s = min(max(s, 0), buf.shape[0])
    e = min(s + max(length, 0), buf.shape[0])
    q = s
    while q < e and buf[q] != 0:
        q += 1
    return put_str_utf8(out, o, buf, s, q)


@njit(cache=True, inline="always")
def _put_run(out: np.ndarray, o: int, a: int, b: int, first: bool) -> int:
    if not first:
        out[o] = 44
        o += 1
    o = put_uint(out, o, np.uint64(a))
    if b != a:
        out[o] = 45
        o = put_uint(out, o + 1, np.uint64(b))
    return o


@njit(cache=True, inline="always")
def _put_cpulist(out: np.ndarray, o: int, buf: np.ndarray, s: int, length: int) -> int:
    """Kernel ``%*pbl`` list of a little-endian bitmap: ``"0-3,8"``."""
    out[o] = 34
    o += 1
    n = buf.shape[0]
    start = -1
    prev = -2
    first = True
    for k in range(max(length, 0)):
        c = buf[s + k] if 0 <= s + k < n else 0
        if c == 0:
            continue
        for b in range(8):
            if c >> b & 1:
                bit = 8 * k + b
                if bit != prev + 1:
                    if start >= 0:
                        o = _put_run(out, o, start, prev, first)
                        first = False
                    start = bit
                prev = bit
    if start >= 0:
        o = _put_run(out, o, start, prev, first)
    out[o] = 34
    return o + 1


@njit(cache=True, inline="always")
def _put_num(out: np.ndarray, o: int, v: int, signed: bool) -> int:
    if signed:
        return put_int(out, o, v)
    return put_uint(out, o, np.uint64(v))


@njit(cache=True, inline="always")
def _find(vals: np.ndarray, lo: int, hi: int, v: np.uint64) -> int:
    """Index of v in the sorted vals[lo:hi], or -1."""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if vals[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < end and vals[lo] == v else -1


# Worst-case JSON bytes per record byte of a dynamic field (each spans at most the
# record): a C string escapes a control byte as \u00XX; a bitmap of runs of two set
# bits ("524286-524287,") writes 14 bytes per 3 bits; an s8 array "-128," 5.
_PER_BYTE_DSTR, _PER_BYTE_CPUMASK, _PER_BYTE_DARR = 6, 38, 5


@njit(cache=True, nogil=True)
def _program_bounds(
    ev: np.ndarray, ops: np.ndarray, lit: np.ndarray, n_dicts: int, d_maxlen: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fixed bytes, bytes per record byte) that bound a row of each slot's JSON.

    Computed here from the program itself, so a renderer given any program
    writes inside the bound it checked; an op outside ``ops`` / ``lit`` or with
    an impossible size is refused (ValueError: a bug, not bad input).
    """
    ns = ev.shape[0]
    fixed = np.zeros(ns, np.int64)
    per_byte = np.zeros(ns, np.int64)
    for s in range(ns):
        first, count = ev[s, 0], ev[s, 1]
        if first < 0 or count < 0 or first + count > ops.shape[0]:
            raise ValueError("render_args: slot program outside the op table")
        f = 2
        pb = 0
        for j in range(first, first + count):
            mode, lo, ln, size = ops[j, 0], ops[j, 1], ops[j, 2], ops[j, 4]
            if lo < 0 or ln < 0 or lo + ln > lit.shape[0]:
                raise ValueError("render_args: key literal outside the literal table")
            if mode != M_NULL and ops[j, 3] < 0:
                raise ValueError("render_args: negative field offset")
            f += ln
            if mode == M_NULL:
                f += 4
            elif mode <= M_DICT:
                if size < 1 or size > 8:
                    raise ValueError("render_args: numeric field size not in 1..8")
                if mode == M_DICT:
                    # a dictionary that is not built yet renders null (a miss)
                    f += max(d_maxlen, 4) if 0 <= ops[j, 6] < n_dicts else 4
                else:
                    f += 23
            elif mode == M_STR:
                # both are also cut at the record's end: a huge declared size costs per byte
                if size <= 4096:
                    f += 6 * max(size, 0) + 2
                else:
                    f += 2
                    pb += 6
            elif mode == M_ARR:
                if size < 1 or size > 8 or ops[j, 6] < 0:
                    raise ValueError("render_args: bad static array")
                if ops[j, 6] <= 256:
                    f += 22 * ops[j, 6] + 2
                else:
                    f += 2
                    pb += 22
            elif mode == M_DSTR:
                f += 2
                pb += _PER_BYTE_DSTR
            elif mode == M_CPUMASK:
                f += 2
                pb += _PER_BYTE_CPUMASK
            elif mode == M_DARR:
                es = ops[j, 7]
                if es != 1 and es != 2 and es != 4 and es != 8:
                    raise ValueError("render_args: dynamic array element size not 1, 2, 4 or 8")
                f += 2
                pb += _PER_BYTE_DARR
            else:
                raise ValueError("render_args: unknown field mode")
        fixed[s] = f
        per_byte[s] = pb
    return fixed, per_byte


@njit(cache=True, nogil=True)
def _render_rows(
    out: np.ndarray,
    o: int,
    i0: int,
    offsets: np.ndarray,
    buf: np.ndarray,
    rec: np.ndarray,
    rec_len: np.ndarray,
    slot: np.ndarray,
    ops: np.ndarray,
    ev: np.ndarray,
    fixed: np.ndarray,
    per_byte: np.ndarray,
    lit: np.ndarray,
    d_range: np.ndarray,
    d_val: np.ndarray,
    d_frag: np.ndarray,
    d_data: np.ndarray,
    d_maxlen: int,
    miss_id: np.ndarray,
    miss_val: np.ndarray,
    nmiss: int,
) -> tuple[int, int, int, int]:
    """Rows from ``i0`` while they surely fit in ``out``; returns (end, next row, misses,
    bytes the next row needs). Reads stay inside each record (a field past its end is
    null, a string or array is cut at it) and inside ``buf``."""
    n = rec.shape[0]
    nbuf = buf.shape[0]
    cap = out.shape[0]
    n_dicts = d_range.shape[0]
    i = i0
    while i < n:
        s = slot[i]
        r = rec[i]
        # the record as far as the buffer holds it
        rl = min(max(rec_len[i], 0), max(nbuf - r, 0)) if 0 <= r <= nbuf else 0
        need = fixed[s] + per_byte[s] * rl + 8
        if o + need > cap:
            return o, i, nmiss, need
        out[o] = 123
        o += 1
        for j in range(np.uint64(ev[s, 0]), np.uint64(ev[s, 0] + ev[s, 1])):
            mode = ops[j, 0]
            o = put(out, o, lit, ops[j, 1], ops[j, 2])
            at = ops[j, 3]
            size = ops[j, 4]
            signed = ops[j, 5] != 0
            if mode == M_NULL or (mode <= M_DICT and (at < 0 or at + size > rl)):
                o = put_null(out, o)
            elif mode <= M_DICT:
                v = _rd(buf, r + at, size, signed)
                if mode == M_UINT:
                    o = put_uint(out, o, np.uint64(v))
                elif mode == M_INT:
                    o = put_int(out, o, v)
                elif mode == M_BOOL:
                    o = put_bool(out, o, v != 0)
                elif mode == M_QNUM:
                    out[o] = 34
                    o = _put_num(out, o + 1, v, signed)
                    out[o] = 34
                    o += 1
                elif mode == M_PTR:
                    o = put_hex16(out, o, np.uint64(v))
                else:
                    d = ops[j, 6]
                    u = np.uint64(v)
                    k = -1
                    if 0 <= d < n_dicts:
                        lo = max(d_range[d, 0], 0)
                        hi = min(d_range[d, 1], d_val.shape[0], d_frag.shape[0])
                        k = _find(d_val, lo, hi, u)
                    frag_ok = k >= 0 and 0 <= d_frag[k, 1] <= d_maxlen
                    if frag_ok and 0 <= d_frag[k, 0] <= d_data.shape[0] - d_frag[k, 1]:
                        o = put(out, o, d_data, d_frag[k, 0], d_frag[k, 1])
                    else:
                        o = put_null(out, o)
                        if nmiss < miss_id.shape[0]:
                            miss_id[nmiss] = d
                            miss_val[nmiss] = u
                        nmiss += 1
            elif mode == M_STR:
                o = _put_text(out, o, buf, r + at, min(size, rl - at))
            elif mode == M_ARR:
                out[o] = 91
                o += 1
                for e in range(ops[j, 6]):
                    q = at + e * size
                    if q < 0 or q + size > rl:
                        break
                    if e:
                        out[o] = 44
                        o += 1
                    o = _put_num(out, o, _rd(buf, r + q, size, signed), signed)
                out[o] = 93
                o += 1
            else:
                start, length = _dyn_span(buf, r, rl, at, ops[j, 6])
                if mode == M_DSTR:
                    o = _put_text(out, o, buf, start, length)
                elif mode == M_CPUMASK:
                    o = _put_cpulist(out, o, buf, start, length)
                else:
                    es = ops[j, 7]
                    end = start + length - length % es
                    out[o] = 91
                    o += 1
                    q = start
                    while q + es <= end:
                        if q != start:
                            out[o] = 44
                            o += 1
                        o = _put_num(out, o, _rd(buf, q, es, signed), signed)
                        q += es
                    out[o] = 93
                    o += 1
        out[o] = 125
        o += 1
        offsets[i + 1] = o
        i += 1
    return o, i, nmiss, 0


@njit(cache=True, nogil=True)
def render_args(
    out: np.ndarray,
    o: int,
    offsets: np.ndarray,
    buf: np.ndarray,
    rec: np.ndarray,
    rec_len: np.ndarray,
    slot: np.ndarray,
    ev: np.ndarray,
    ops: np.ndarray,
    lit: np.ndarray,
    d_range: np.ndarray,
    d_val: np.ndarray,
    d_frag: np.ndarray,
    d_data: np.ndarray,
    d_maxlen: int,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, int]:
    """JSON ``args`` of every record appended to ``out`` from byte ``o``; the dictionary misses.

    Writes ``offsets[0] = o`` and ``offsets[i + 1]`` = end of row ``i`` (Arrow
    large_string offsets when ``offsets`` is a view into a batch's offsets);
    returns ``out`` (a bigger copy when it had to grow), the end, and the misses.
    ``ev[slot] = (first op, op count, ...)``; ``d_range[dict] = (first, end)``
    into the sorted ``d_val`` with ``d_frag[k] = (offset, length)`` of each
    value's JSON fragment in ``d_data`` (``d_maxlen``: the longest). A value
    missing from its dictionary, or a dictionary id ``d_range`` does not cover
    yet, is written as ``null`` and reported (dict id, value) so the caller can
    add it and render again. Each row's size is bounded before it is written
    (from the program and the record length), and ``out`` grows when needed.
    """
    n = rec.shape[0]
    if rec_len.shape[0] != n or slot.shape[0] != n or offsets.shape[0] < n + 1:
        raise ValueError("render_args: rec, rec_len, slot and offsets do not match")
    if o < 0 or o > out.shape[0] or d_range.shape[1] != 2 or d_frag.shape[1] != 2:
        raise ValueError("render_args: bad output position or dictionary tables")
    for i in range(n):
        if slot[i] < 0 or slot[i] >= ev.shape[0]:
            raise ValueError("render_args: slot out of range")
    fixed, per_byte = _program_bounds(ev, ops, lit, d_range.shape[0], d_maxlen)
    offsets[0] = o
    miss_id = np.empty(1024, np.int64)
    miss_val = np.empty(1024, np.uint64)
    i = 0
    nmiss = 0
    while True:
        o, i, nmiss, need = _render_rows(
            out, o, i, offsets, buf, rec, rec_len, slot, ops, ev, fixed, per_byte, lit,
            d_range, d_val, d_frag, d_data, d_maxlen, miss_id, miss_val, nmiss,
        )  # fmt: skip
        if i >= n:
            break
        grown = np.empty(2 * out.shape[0] + need + 4096, np.uint8)
        grown[:o] = out[:o]
        out = grown
    k = min(nmiss, miss_id.shape[0])
    return out, o, miss_id[:k], miss_val[:k], nmiss


def print_flags(value: int, delim: str, table: list[tuple[int, str]]) -> str:
    """The kernel's ``__print_flags`` (trace_print_flags_seq): names, then leftover hex."""
    out: list[str] = []
    for mask, name in table:
        if mask == 0 and value != 0:
            continue
        if mask == 0 or value & mask == mask:
            out.append(name)
            value &= ~mask
            if mask == 0:
                break
    if value:
        out.append(f"{value:#x}")
    return delim.join(out)


def cpulist(mask: bytes) -> str:
    """Kernel ``%*pbl`` list format of a little-endian bitmap: ``0-3,8``."""
    bits = np.flatnonzero(np.unpackbits(np.frombuffer(mask, dtype=np.uint8), bitorder="little"))
    if not len(bits):
        return ""
    breaks = np.flatnonzero(np.diff(bits) != 1)
    starts = np.concatenate([[bits[0]], bits[breaks + 1]])
    ends = np.concatenate([bits[breaks], [bits[-1]]])
    return ",".join(
        f"{a}" if a == b else f"{a}-{b}"
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    )
