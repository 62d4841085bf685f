"""Compiled rendering of the ``args`` JSON of ftrace text events (numba, no Python per line).

:func:`build_args` renders every event row of a block: known events through
the print-format templates of :mod:`tracereplay.formats.common.known_events`, compiled
to flat arrays by :class:`TemplateTable`; syscall events (whose fields differ
per syscall) by their own parsers; anything else as ``key=value`` pairs or
``{"_text": payload}``. Values are never wrapped: a number that does not fit
its field (wider than 64 bits, a negative magnitude above 2^63, a decimal above
2^63 in a signed field) is written as ``null`` and counted, so the reader can
flag the result partial and name the first line.

Rows of the events the store keeps as numbers only (``numbers_only``, store/split.py)
can be given as numbers instead: when every field of the matched template is an
integer whose JSON would be exactly its unsigned value, within the field's column,
the values go to a matrix and the row's args are ``{}``; any other row of the event
is rendered as usual (the store then reads it from its JSON).

Output size: every row's JSON is bounded by ``6 * payload + 32`` plus a
per-template allowance (:func:`_row_bound`); the buffer is grown before a row
that might not fit, so no write goes past its end.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from tracereplay.formats.common.args_json import (
    OP_BOOL,
    OP_HEX,
    OP_HEXLIST,
    OP_INT,
    OP_STR,
    OP_SYM,
    OP_UINT,
)
from tracereplay.formats.common.jsonbuf import put as _put
from tracereplay.formats.common.jsonbuf import put_bool as _put_bool
from tracereplay.formats.common.jsonbuf import put_null as _put_null
from tracereplay.formats.common.jsonbuf import put_str as _put_str
from tracereplay.formats.common.jsonbuf import put_uint as _put_uint
from tracereplay.formats.text.line_scan import SP, TAB, _isdigit
from tracereplay.formats.text.templates import (
    EV_SYSCALL_ENTER,
    EV_SYSCALL_EXIT,
    MAX_SLOTS,
    R_DEC,
    R_HEX,
    R_HEX0X,
    Templates,
)

# literals written by the loops (constant arrays: no unicode handling in compiled code)
_TEXT_KEY = np.frombuffer(b'"_text":', np.uint8)
_RET_KEY = np.frombuffer(b'{"ret":', np.uint8)
_VAL_SUFFIX = np.frombuffer(b"_val", np.uint8)

_U64_TENTH = np.uint64(1844674407370955161)  # (2^64 - 1) // 10
_I64_MIN_MAG = np.uint64(1) << np.uint64(63)


@njit(cache=True)
def _parse_int(buf: np.ndarray, s: int, e: int, radix: int) -> tuple[bool, np.uint64, bool]:
    """(ok, magnitude or two's complement bits, negative) of a printed integer.

    Not ok when it is not a number or does not fit 64 bits (never wrapped).
    """
    neg = False
    if radix == R_HEX0X and e - s >= 2 and buf[s] == 48 and (buf[s + 1] == 120 or buf[s + 1] == 88):
        s += 2
    if radix == R_DEC and s < e and buf[s] == 45:
        neg = True
        s += 1
    if s >= e:
        return False, np.uint64(0), False
    while e - s > 1 and buf[s] == 48:  # leading zeros do not count towards the width
        s += 1
    v = np.uint64(0)
    if radix == R_DEC:
        if e - s > 20:
            return False, v, False
        for k in range(s, e):
            c = buf[k]
            if not _isdigit(c):
                return False, v, False
            d = np.uint64(c - 48)
            if v > _U64_TENTH or (v == _U64_TENTH and d > np.uint64(5)):
                return False, v, False
            v = v * np.uint64(10) + d
        if neg and v > _I64_MIN_MAG:
            return False, v, False
    else:
        if e - s > 16:
            return False, v, False
        for k in range(s, e):
            c = buf[k]
            if 48 <= c <= 57:
                d = c - 48
            elif 97 <= c <= 102:
                d = c - 87
            elif 65 <= c <= 70:
                d = c - 55
            else:
                return False, v, False
            v = (v << np.uint64(4)) | np.uint64(d)
    return True, v, neg


@njit(cache=True, inline="always")
def _put_number(out: np.ndarray, o: int, v: np.uint64, neg: bool, kind: int, radix: int) -> int:
    """A parsed integer as its field's JSON value, or -1 when out of the field's range."""
    if neg:
        if kind == OP_INT:
            out[o] = 45
            return _put_uint(out, o + 1, v)
        v = ~v + np.uint64(1)  # an unsigned field printed with %ld (pages:-1): the kernel's value
    elif kind == OP_INT and v >= _I64_MIN_MAG:
        if radix == R_DEC:
            return -1  # a decimal above 2^63 - 1 in a signed field
        out[o] = 45  # a signed field printed in hex (%lx): two's complement
        return _put_uint(out, o + 1, ~v + np.uint64(1))
    return _put_uint(out, o, v)


@njit(cache=True)
def _put_hex_list(out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int) -> int:
    """``7f00, 1000, e`` (hex without 0x, ", "-separated) -> ``[139637976727552,4096,14]``."""
    out[o] = 91
    o += 1
    p = s
    first = True
    while p < e:
        q = p
        while q < e and buf[q] != 44:
            q += 1
        ok, v, _neg = _parse_int(buf, p, q, R_HEX)
        if not ok:
            return -1
        if not first:
            out[o] = 44
            o += 1
        first = False
        o = _put_uint(out, o, v)
        p = q
        if p < e:
            if p + 1 >= e or buf[p + 1] != SP:
                return -1
            p += 2
    out[o] = 93
    return o + 1


@njit(cache=True)
def _put_value(
    out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int, kind: int, radix: int
) -> tuple[int, bool]:
    """(new end, value understood): ``null`` is written for a value that is not."""
    if kind == OP_STR:
        return _put_str(out, o, buf, s, e), True
    if kind == OP_SYM:
        q = s
        while q < e and buf[q] != 43:  # '+'
            q += 1
        return _put_str(out, o, buf, s, q), True
    if kind == OP_BOOL:
        if e - s == 4 and buf[s] == 116:
            return _put_bool(out, o, True), True
        if e - s == 5 and buf[s] == 102:
            return _put_bool(out, o, False), True
        return _put_null(out, o), False
    if kind == OP_HEXLIST:
        end = _put_hex_list(out, o, buf, s, e)
        return (end, True) if end >= 0 else (_put_null(out, o), False)
    if kind == OP_HEX and radix == R_DEC:
        radix = R_HEX
    ok, v, neg = _parse_int(buf, s, e, radix)
    if ok:
        end = _put_number(out, o, v, neg, kind, radix)
        if end >= 0:
            return end, True
    return _put_null(out, o), False


@njit(cache=True, inline="always")
def _uint_of(buf: np.ndarray, s: int, e: int, kind: int, radix: int) -> tuple[bool, np.uint64]:
    """(ok, value) of an integer field whose JSON :func:`_put_value` would write as exactly
    this unsigned value (not ok: another op, not a number, or a negative JSON value)."""
    if kind != OP_UINT and kind != OP_INT and kind != OP_HEX:
        return False, np.uint64(0)
    if kind == OP_HEX and radix == R_DEC:
        radix = R_HEX
    ok, v, neg = _parse_int(buf, s, e, radix)
    if not ok:
        return False, v
    if neg:
        if kind == OP_INT:
            return False, v
        return True, ~v + np.uint64(1)  # as _put_number writes an unsigned field's -1
    if kind == OP_INT and v >= _I64_MIN_MAG:
        return False, v
    return True, v


@njit(cache=True, inline="always")
def _find(buf: np.ndarray, s: int, e: int, lit: np.ndarray, off: int, ln: int) -> int:
    """First position >= s where lit[off:off+ln] occurs in buf[s:e], or -1."""
    last = e - ln
    first = lit[off]
    for q in range(s, last + 1):
        if buf[q] == first:
            same = True
            for k in range(1, ln):
                if buf[q + k] != lit[off + k]:
                    same = False
                    break
            if same:
                return q
    return -1


@njit(cache=True, inline="always")
def _is_key_char(c: int) -> bool:
    return (
        48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 95 or c == 46 or c == 91 or c == 93
    )


@njit(cache=True)
def _generic(out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int) -> int:
    """``k=v k=v`` -> {"k":"v",...}; anything else -> {"_text": payload}; empty -> {}."""
    while e > s and (buf[e - 1] == SP or buf[e - 1] == TAB):
        e -= 1
    q = s
    while q < e and (buf[q] == SP or buf[q] == TAB):
        q += 1
    if q >= e:
        out[o] = 123
        out[o + 1] = 125
        return o + 2
    kv = True
    r = q
    while r < e:
        k0 = r
        while r < e and _is_key_char(buf[r]):
            r += 1
        if r == k0 or r >= e or buf[r] != 61:
            kv = False
            break
        while r < e and buf[r] != SP and buf[r] != TAB:
            r += 1
        while r < e and (buf[r] == SP or buf[r] == TAB):
            r += 1
    out[o] = 123
    o += 1
    if not kv:
        o = _put(out, o, _TEXT_KEY, 0, 8)
        o = _put_str(out, o, buf, s, e)
    else:
        r = q
        first = True
        while r < e:
            k0 = r
            while buf[r] != 61:
                r += 1
            v0 = r + 1
            v1 = v0
            while v1 < e and buf[v1] != SP and buf[v1] != TAB:
                v1 += 1
            if not first:
                out[o] = 44
                o += 1
            first = False
            o = _put_str(out, o, buf, k0, r)
            out[o] = 58
            o = _put_str(out, o + 1, buf, v0, v1)
            r = v1
            while r < e and (buf[r] == SP or buf[r] == TAB):
                r += 1
    out[o] = 125
    return o + 1


@njit(cache=True, inline="always")
def _is_ident(c: int) -> bool:
    return 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 95


@njit(cache=True)
def _put_key(out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int, wrap: bool) -> int:
    """``"key":`` (``"__key_val":`` when ``wrap``: the kernel's name for a user string)."""
    out[o] = 34
    o += 1
    if wrap:
        out[o] = 95
        out[o + 1] = 95
        o += 2
    for k in range(s, e):
        out[o] = buf[k]
        o += 1
    if wrap:
        o = _put(out, o, _VAL_SUFFIX, 0, 4)
    out[o] = 34
    out[o + 1] = 58
    return o + 2


@njit(cache=True)
def _string_end(buf: np.ndarray, s: int, e: int) -> int:
    """End quote of a user-space string value that starts after ``buf[s - 1] == '"'``: the
    first quote followed by the end or by ``, name:``; -1 when there is none."""
    for q in range(s, e):
        if buf[q] != 34:
            continue
        if q + 1 == e:
            return q
        if q + 2 < e and buf[q + 1] == 44 and buf[q + 2] == SP:
            r = q + 3
            while r < e and _is_ident(buf[r]):
                r += 1
            if r > q + 3 and r < e and buf[r] == 58:
                return q
    return -1


@njit(cache=True)
def _syscall_enter(out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int) -> tuple[int, int]:
    """(new end or -1 when not this form, values not understood) of a syscall's arguments.

    ``start: 0x7f.., len_in: 0x1000, behavior: 4`` (tracefs prints values below 10 in
    decimal, the format file's ``0x%08lx`` gives ``0x0000000e`` in trace-cmd and perf),
    optionally with types before the names (tracefs ``verbose``) and, since 6.19, the
    user-space string a pointer argument points at (``filename: 0x55.. "/etc/x"``),
    stored as ``__filename_val`` like the event's format file names it. Values are
    unsigned: the format files declare every argument 8 bytes, ``signed:0``.
    """
    bad = 0
    out[o] = 123
    o += 1
    p = s
    first = True
    while p < e:
        colon = p
        while colon + 1 < e and not (buf[colon] == 58 and buf[colon + 1] == SP):
            colon += 1
        if colon + 1 >= e:
            return -1, 0
        k0 = colon
        while k0 > p and _is_ident(buf[k0 - 1]):
            k0 -= 1
        if k0 == colon:
            return -1, 0
        v0 = colon + 2
        v1 = v0
        while v1 < e and buf[v1] != 44 and buf[v1] != SP:
            v1 += 1
        if not first:
            out[o] = 44
            o += 1
        first = False
        o = _put_key(out, o, buf, k0, colon, False)
        hexa = v1 - v0 > 2 and buf[v0] == 48 and buf[v0 + 1] == 120
        ok, v, neg = _parse_int(buf, v0, v1, R_HEX0X if hexa else R_DEC)
        if ok and not neg:
            o = _put_uint(out, o, v)
        else:
            o = _put_null(out, o)
            bad += 1
        p = v1
        if p + 1 < e and buf[p] == SP and (buf[p + 1] == 34 or buf[p + 1] == 40):
            # the user-space data of a pointer argument: "string" or (hex:bytes)
            if buf[p + 1] == 34:
                q = _string_end(buf, p + 2, e)
                if q < 0:
                    return -1, 0
                out[o] = 44
                o = _put_key(out, o + 1, buf, k0, colon, True)
                o = _put_str(out, o, buf, p + 2, q)
                p = q + 1
            else:
                q = p + 2
                while q < e and buf[q] != 41:
                    q += 1
                if q >= e:
                    return -1, 0
                out[o] = 44
                o = _put_key(out, o + 1, buf, k0, colon, True)
                o = _put_str(out, o, buf, p + 2, q)
                p = q + 1
        if p < e:
            if p + 1 >= e or buf[p] != 44 or buf[p + 1] != SP:
                return -1, 0
            p += 2
    out[o] = 125
    return o + 1, bad


@njit(cache=True)
def _syscall_exit(out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int) -> tuple[int, int]:
    """``0xfffffffffffffffe`` -> ``{"ret":-2}`` (``long ret``, printed with ``0x%lx``)."""
    while e > s and buf[e - 1] == SP:
        e -= 1
    hexa = e - s > 2 and buf[s] == 48 and buf[s + 1] == 120
    ok, v, neg = _parse_int(buf, s, e, R_HEX0X if hexa else R_DEC)
    if not ok and not hexa:
        return -1, 0
    o = _put(out, o, _RET_KEY, 0, 7)
    end = _put_number(out, o, v, neg, OP_INT, R_HEX if hexa else R_DEC) if ok else -1
    o = _put_null(out, o) if end < 0 else end
    out[o] = 125
    return o + 1, 0 if end >= 0 else 1


class Payloads(NamedTuple):
    """The event rows of a block: payload ``buf[start:end]``, event id (a template index,
    or EV_*), and whether the row is a stack marker (``{}``)."""

    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    event: npt.NDArray[np.int64]
    marker: npt.NDArray[np.bool_]


class GivenNumbers(NamedTuple):
    """Rows to give as numbers: ``elide[i]`` the planned event of row i (-1: none; an
    empty array: no row), ``maxima[k]`` the largest value each key of planned event k
    may take (its column's range), the keys being its template slots in order."""

    elide: npt.NDArray[np.int64]
    maxima: npt.NDArray[np.uint64]


@njit(cache=True, inline="always")
def _row_bound(s: int, e: int, ev: int, bound: np.ndarray) -> int:
    """Most bytes the JSON of one row can take (6 per payload byte covers escaping,
    ``bound[ev]`` the keys and values of a template)."""
    return 6 * (e - s) + 32 + (bound[ev] if ev >= 0 else 0)


@njit(cache=True, nogil=True)
def build_args(
    buf: np.ndarray, rows: Payloads, t: Templates, numbers: GivenNumbers
) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray, np.ndarray]:
    """JSON ``args`` of every event row (see :class:`Templates` for the tables), and the
    values of the rows given as numbers (see :class:`GivenNumbers`).

    Returns (Arrow offsets, data, values not understood, first row with one or -1,
    values (row, key), whether each row was given as numbers).
    """
    pstart, pend, event_id, marker = rows
    elide, maxima = numbers
    lit = t.lit
    events, slots, tmpl, fields = t.events, t.slots, t.templates, t.fields
    n = pstart.shape[0]
    if pend.shape[0] != n or event_id.shape[0] != n or marker.shape[0] != n:
        raise ValueError("build_args: row arrays differ in length")
    if elide.shape[0] != n and elide.shape[0] != 0:
        raise ValueError("build_args: the rows to give as numbers differ in length")
    ne = events.first_tmpl.shape[0]
    width = maxima.shape[1]
    for i in range(n):
        if event_id[i] >= ne or pstart[i] < 0 or pend[i] < pstart[i] or pend[i] > buf.shape[0]:
            raise ValueError("build_args: row outside the templates or the buffer")
        # checked here so that the writes below stay inside values and maxima
        if (
            elide.shape[0]
            and elide[i] >= 0
            and (
                elide[i] >= maxima.shape[0]
                or event_id[i] < 0
                or events.n_slots[event_id[i]] > width
            )
        ):
            raise ValueError("build_args: a row given as numbers outside the plan")
    given = np.zeros(n, np.bool_)
    values = np.empty((n if elide.shape[0] else 0, width), np.uint64)
    cap = 0
    for i in range(n):
        cap += _row_bound(pstart[i], pend[i], event_id[i], events.bound)
    out = np.empty(max(cap, 16), np.uint8)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    vs = np.empty(2 * MAX_SLOTS, np.int64)
    ve = np.empty(2 * MAX_SLOTS, np.int64)
    o = 0
    bad = 0
    first_bad = -1
    for i in range(n):
        s = pstart[i]
        e = pend[i]
        ev = event_id[i]
        need = o + _row_bound(s, e, ev, events.bound)
        if need > out.shape[0]:  # never with a right bound; a guard, not a path
            grown = np.empty(max(need, 2 * out.shape[0]), np.uint8)
            grown[:o] = out[:o]
            out = grown
        if marker[i]:
            out[o] = 123
            out[o + 1] = 125
            o += 2
            offsets[i + 1] = o
            continue
        done = False
        row_bad = 0
        if ev == EV_SYSCALL_ENTER:
            end, row_bad = _syscall_enter(out, o, buf, s, e)
            if end >= 0:
                o = end
                done = True
        elif ev == EV_SYSCALL_EXIT:
            end, row_bad = _syscall_exit(out, o, buf, s, e)
            if end >= 0:
                o = end
                done = True
        elif ev >= 0:
            nslot = events.n_slots[ev]
            t0 = events.first_tmpl[ev]
            for k_t in range(t0, t0 + events.n_tmpl[ev]):
                for j in range(nslot):
                    vs[j] = -1
                pre_off, pre_len = tmpl.prefix_off[k_t], tmpl.prefix_len[k_t]
                f0, nf = tmpl.first_field[k_t], tmpl.n_fields[k_t]
                if e - s < pre_len:
                    continue
                ok = True
                for k in range(pre_len):
                    if buf[s + k] != lit[pre_off + k]:
                        ok = False
                        break
                if not ok:
                    continue
                p = s + pre_len
                for f in range(f0, f0 + nf):
                    slot, after_off, after_len = (
                        fields.slot[f],
                        fields.sep_off[f],
                        fields.sep_len[f],
                    )
                    if after_len > 0:
                        q = _find(buf, p, e, lit, after_off, after_len)
                        if q < 0:
                            ok = False
                            break
                        if f == f0 + nf - 1 and q + after_len != e:
                            ok = False
                            break
                        vend = q
                        nxt = q + after_len
                    else:
                        vend = e
                        nxt = e
                    if slot >= 0:
                        vs[slot] = p
                        ve[slot] = vend
                        # radix of this template's field, kept per slot
                        vs[MAX_SLOTS + slot] = fields.radix[f]
                    p = nxt
                if not ok:
                    continue
                base = events.first_slot[ev]
                k_el = elide[i] if elide.shape[0] else -1
                if k_el >= 0:
                    all_numbers = True
                    for j in range(nslot):
                        if vs[j] < 0:
                            all_numbers = False
                            break
                        got, v = _uint_of(buf, vs[j], ve[j], slots.op[base + j], vs[MAX_SLOTS + j])
                        if not got or v > maxima[k_el, j]:
                            all_numbers = False
                            break
                        values[i, j] = v
                    if all_numbers:
                        given[i] = True
                        out[o] = 123
                        out[o + 1] = 125
                        o += 2
                        done = True
                        break
                out[o] = 123
                o += 1
                for j in range(nslot):
                    key_off, key_len = slots.key_off[base + j], slots.key_len[base + j]
                    kind = slots.op[base + j]
                    if j > 0:
                        out[o] = 44
                        o += 1
                    o = _put(out, o, lit, key_off, key_len)
                    if vs[j] < 0:
                        o = _put_null(out, o)
                    else:
                        o, good = _put_value(out, o, buf, vs[j], ve[j], kind, vs[MAX_SLOTS + j])
                        if not good:
                            row_bad += 1
                out[o] = 125
                o += 1
                done = True
                break
        if not done:
            o = _generic(out, o, buf, s, e)
            row_bad = 0
        if row_bad:
            bad += row_bad
            if first_bad < 0:
                first_bad = i
        offsets[i + 1] = o
    return offsets, out[:o], bad, first_bad, values, given


__all__ = ["GivenNumbers", "Payloads", "build_args"]
