"""Compiled ``args`` JSON of tracepoint records (trace.dat, perf.data), written into Arrow buffers.

Each event type used is compiled once to a program of :class:`~..common.args_json.Op`
(built by :class:`~.event_decoder.EventDecoder` from the format files): one op per
output key, reading its field at a fixed offset of the raw record. Values rendered
by Python tables (symbols, ``__print_symbolic`` / ``__print_flags`` names) come from
per-field dictionaries of JSON fragments (:class:`ValueDicts`), filled for the
values a batch reports missing. Every read stays inside its record and the buffer;
every row's size is bounded from the program before it is written.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from tracereplay.formats.common.args_json import (
    NUMBER_BYTES,
    OP_ARR,
    OP_CPUMASK,
    OP_DARR,
    OP_DSTR,
    OP_FRAGMENT,
    OP_NULL,
    OP_STR,
    Fragments,
    put_fragment,
    put_number,
)
from tracereplay.formats.common.jsonbuf import put, put_int, put_null, put_str_utf8, put_uint
from tracereplay.formats.tracefs.ring_buffer import read_int

__all__ = ["RecordProgram", "Records", "ValueDicts", "render_args"]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]


class Records(NamedTuple):
    """Records of known event types: payload ``buf[off[i]:off[i] + length[i]]``, its slot."""

    buf: U8
    off: I64
    length: I64
    slot: I64


class RecordProgram(NamedTuple):
    """The args programs of a trace's event types (slots).

    Slot ``s`` runs ops ``first[s]`` to ``first[s] + n_ops[s]``; op ``j`` writes the key
    ``lit[key_off[j]:][:key_len[j]]``, then the field at byte ``at[j]`` of the record
    as ``op[j]`` says. ``size``: the field's size (an array's element size);
    ``p1``: a dictionary id (FRAGMENT), the extra offset of a ``__rel_loc`` (DSTR,
    CPUMASK, DARR), the element count (ARR); ``p2``: the element size (DARR).
    """

    first: I64
    n_ops: I64
    op: I64
    key_off: I64
    key_len: I64
    at: I64
    size: I64
    signed: I64
    p1: I64
    p2: I64
    lit: U8


class ValueDicts(NamedTuple):
    """Dictionary ``d`` holds the sorted ``values[lo[d]:hi[d]]``; ``frags`` fragment ``k`` is
    the JSON of ``values[k]``."""

    lo: I64
    hi: I64
    values: U64
    frags: Fragments


@njit(cache=True, inline="always")
def _dyn_span(buf: np.ndarray, rec: int, rec_len: int, at: int, extra: int) -> tuple[int, int]:
    """(absolute start, length) of a ``__data_loc`` / ``__rel_loc`` payload, clamped to the record."""
    loc = read_int(buf, rec + at, 4, False) if at + 4 <= rec_len else 0
    off = loc & 0xFFFF
    length = loc >> 16
    off += extra
    off = min(off, rec_len)
    length = min(length, rec_len - off)
    return rec + off, length


@njit(cache=True)
def _put_cstr(out: np.ndarray, o: int, buf: np.ndarray, s: int, length: int) -> int:
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


@njit(cache=True)
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
def _program_bounds(prog: RecordProgram, dicts: ValueDicts) -> tuple[np.ndarray, np.ndarray]:
    """(fixed bytes, bytes per record byte) that bound a row of each slot's JSON.

    Computed here from the program itself, so a renderer given any program
    writes inside the bound it checked; an op outside the op table / ``lit`` or
    with an impossible size is refused (ValueError: a bug, not bad input).
    """
    ns = prog.first.shape[0]
    nops = prog.op.shape[0]
    for col in (prog.key_off, prog.key_len, prog.at, prog.size, prog.signed, prog.p1, prog.p2):
        if col.shape[0] != nops:
            raise ValueError("render_args: op columns differ in length")
    if prog.n_ops.shape[0] != ns or dicts.hi.shape[0] != dicts.lo.shape[0]:
        raise ValueError("render_args: slot or dictionary columns differ in length")
    n_dicts = dicts.lo.shape[0]
    longest = dicts.frags.longest
    fixed = np.zeros(ns, np.int64)
    per_byte = np.zeros(ns, np.int64)
    for s in range(ns):
        first, count = prog.first[s], prog.n_ops[s]
        if first < 0 or count < 0 or first + count > nops:
            raise ValueError("render_args: slot program outside the op table")
        f = 2
        pb = 0
        for j in range(first, first + count):
            mode, lo, ln, size = prog.op[j], prog.key_off[j], prog.key_len[j], prog.size[j]
            if lo < 0 or ln < 0 or lo + ln > prog.lit.shape[0]:
                raise ValueError("render_args: key literal outside the literal table")
            if mode != OP_NULL and prog.at[j] < 0:
                raise ValueError("render_args: negative field offset")
            f += ln
            if mode == OP_NULL:
                f += 4
            elif mode <= OP_FRAGMENT:
                if size < 1 or size > 8:
                    raise ValueError("render_args: numeric field size not in 1..8")
                if mode == OP_FRAGMENT:
                    # a dictionary that is not built yet renders null (a miss)
                    f += max(longest, 4) if 0 <= prog.p1[j] < n_dicts else 4
                else:
                    f += NUMBER_BYTES
            elif mode == OP_STR:
                # both are also cut at the record's end: a huge declared size costs per byte
                if size <= 4096:
                    f += 6 * max(size, 0) + 2
                else:
                    f += 2
                    pb += 6
            elif mode == OP_ARR:
                if size < 1 or size > 8 or prog.p1[j] < 0:
                    raise ValueError("render_args: bad static array")
                if prog.p1[j] <= 256:
                    f += 22 * prog.p1[j] + 2
                else:
                    f += 2
                    pb += 22
            elif mode == OP_DSTR:
                f += 2
                pb += _PER_BYTE_DSTR
            elif mode == OP_CPUMASK:
                f += 2
                pb += _PER_BYTE_CPUMASK
            elif mode == OP_DARR:
                es = prog.p2[j]
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
    recs: Records,
    prog: RecordProgram,
    dicts: ValueDicts,
    bounds: tuple[np.ndarray, np.ndarray],
    misses: tuple[np.ndarray, np.ndarray],
    nmiss: int,
) -> tuple[int, int, int, int]:
    """Rows from ``i0`` while they surely fit in ``out``; returns (end, next row, misses,
    bytes the next row needs). Reads stay inside each record (a field past its end is
    null, a string or array is cut at it) and inside the buffer."""
    buf = recs.buf
    n = recs.off.shape[0]
    nbuf = buf.shape[0]
    cap = out.shape[0]
    fixed, per_byte = bounds
    miss_id, miss_val = misses
    n_dicts = dicts.lo.shape[0]
    i = i0
    while i < n:
        s = recs.slot[i]
        r = recs.off[i]
        # the record as far as the buffer holds it
        rl = min(max(recs.length[i], 0), max(nbuf - r, 0)) if 0 <= r <= nbuf else 0
        need = fixed[s] + per_byte[s] * rl + 8
        if o + need > cap:
            return o, i, nmiss, need
        out[o] = 123
        o += 1
        first = np.uint64(prog.first[s])
        for j in range(first, first + np.uint64(prog.n_ops[s])):
            mode = prog.op[j]
            o = put(out, o, prog.lit, prog.key_off[j], prog.key_len[j])
            at = prog.at[j]
            size = prog.size[j]
            signed = prog.signed[j] != 0
            if mode == OP_NULL or (mode <= OP_FRAGMENT and (at < 0 or at + size > rl)):
                o = put_null(out, o)
            elif mode < OP_FRAGMENT:
                o = put_number(out, o, mode, np.uint64(read_int(buf, r + at, size, signed)), signed)
            elif mode == OP_FRAGMENT:
                d = prog.p1[j]
                u = np.uint64(read_int(buf, r + at, size, signed))
                k = -1
                if 0 <= d < n_dicts:
                    lo = max(dicts.lo[d], 0)
                    hi = min(dicts.hi[d], dicts.values.shape[0])
                    k = _find(dicts.values, lo, hi, u)
                if k >= 0:
                    o = put_fragment(out, o, dicts.frags, k)
                else:
                    o = put_null(out, o)
                    if nmiss < miss_id.shape[0]:
                        miss_id[nmiss] = d
                        miss_val[nmiss] = u
                    nmiss += 1
            elif mode == OP_STR:
                o = _put_cstr(out, o, buf, r + at, min(size, rl - at))
            elif mode == OP_ARR:
                out[o] = 91
                o += 1
                for e in range(prog.p1[j]):
                    q = at + e * size
                    if q < 0 or q + size > rl:
                        break
                    if e:
                        out[o] = 44
                        o += 1
                    o = _put_num(out, o, read_int(buf, r + q, size, signed), signed)
                out[o] = 93
                o += 1
            else:
                start, length = _dyn_span(buf, r, rl, at, prog.p1[j])
                if mode == OP_DSTR:
                    o = _put_cstr(out, o, buf, start, length)
                elif mode == OP_CPUMASK:
                    o = _put_cpulist(out, o, buf, start, length)
                else:
                    es = prog.p2[j]
                    end = start + length - length % es
                    out[o] = 91
                    o += 1
                    q = start
                    while q + es <= end:
                        if q != start:
                            out[o] = 44
                            o += 1
                        o = _put_num(out, o, read_int(buf, q, es, signed), signed)
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
    recs: Records,
    prog: RecordProgram,
    dicts: ValueDicts,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, int]:
    """JSON ``args`` of every record appended to ``out`` from byte ``o``; the dictionary misses.

    Writes ``offsets[0] = o`` and ``offsets[i + 1]`` = end of row ``i`` (Arrow
    large_string offsets when ``offsets`` is a view into a batch's offsets);
    returns ``out`` (a bigger copy when it had to grow), the end, and the misses:
    a value missing from its dictionary, or a dictionary id the tables do not
    cover yet, is written as ``null`` and reported (dict id, value) so the caller
    can add it and render again. Each row's size is bounded before it is written
    (from the program and the record length), and ``out`` grows when needed.
    """
    n = recs.off.shape[0]
    if recs.length.shape[0] != n or recs.slot.shape[0] != n or offsets.shape[0] < n + 1:
        raise ValueError("render_args: rec, rec_len, slot and offsets do not match")
    if o < 0 or o > out.shape[0]:
        raise ValueError("render_args: bad output position")
    for i in range(n):
        if recs.slot[i] < 0 or recs.slot[i] >= prog.first.shape[0]:
            raise ValueError("render_args: slot out of range")
    bounds = _program_bounds(prog, dicts)
    offsets[0] = o
    misses = (np.empty(1024, np.int64), np.empty(1024, np.uint64))
    i = 0
    nmiss = 0
    while True:
        o, i, nmiss, need = _render_rows(
            out, o, i, offsets, recs, prog, dicts, bounds, misses, nmiss
        )
        if i >= n:
            break
        grown = np.empty(2 * out.shape[0] + need + 4096, np.uint8)
        grown[:o] = out[:o]
        out = grown
    k = min(nmiss, misses[0].shape[0])
    return out, o, misses[0][:k], misses[1][:k], nmiss
