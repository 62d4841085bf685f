"""Compiled rendering of the ``args`` JSON of ftrace text events (numba, no Python per line).

:func:`build_args` renders every event row of a block: known events through
the print-format templates of :mod:`tracereplay.formats.common.known_events`, compiled
to flat arrays by :class:`TemplateTable`; syscall events (whose fields differ
per syscall) by their own parsers; anything else as ``key=value`` pairs or
``{"_text": payload}``. Values are never wrapped: a number that does not fit
its field (wider than 64 bits, a negative magnitude above 2^63, a decimal above
2^63 in a signed field) is written as ``null`` and counted, so the reader can
flag the result partial and name the first line.

Output size: every row's JSON is bounded by ``6 * payload + 32`` plus a
per-template allowance (:func:`_row_bound`); the buffer is grown before a row
that might not fit, so no write goes past its end.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracereplay.formats.common.jsonbuf import put as _put
from tracereplay.formats.common.jsonbuf import put_null as _put_null
from tracereplay.formats.common.jsonbuf import put_str as _put_str
from tracereplay.formats.common.jsonbuf import put_uint as _put_uint
from tracereplay.formats.text.line_scan import SP, TAB, _isdigit

# field kinds (JSON rendering), mirrored from common.known_events
K_UNSIGNED, K_SIGNED, K_HEX, K_STR, K_SYM, K_BOOL, K_SKIP, K_HEXLIST = 0, 1, 2, 3, 4, 5, 6, 7
# printed radix of a field
R_DEC, R_HEX, R_HEX0X = 0, 1, 2
# event ids of rows without a template (>= 0: index into TemplateTable)
EV_GENERIC, EV_SYSCALL_ENTER, EV_SYSCALL_EXIT = -1, -2, -3
# most output fields of one template (build_args keeps per-slot scratch of twice this)
MAX_SLOTS = 32

_U64_TENTH = np.uint64(1844674407370955161)  # (2^64 - 1) // 10
_I64_MIN_MAG = np.uint64(1) << np.uint64(63)


@njit(cache=True, inline="always")
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
        if kind == K_SIGNED:
            out[o] = 45
            return _put_uint(out, o + 1, v)
        v = ~v + np.uint64(1)  # an unsigned field printed with %ld (pages:-1): the kernel's value
    elif kind == K_SIGNED and v >= _I64_MIN_MAG:
        if radix == R_DEC:
            return -1  # a decimal above 2^63 - 1 in a signed field
        out[o] = 45  # a signed field printed in hex (%lx): two's complement
        return _put_uint(out, o + 1, ~v + np.uint64(1))
    return _put_uint(out, o, v)


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def _put_value(
    out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int, kind: int, radix: int
) -> tuple[int, bool]:
    """(new end, value understood): ``null`` is written for a value that is not."""
    if kind == K_STR:
        return _put_str(out, o, buf, s, e), True
    if kind == K_SYM:
        q = s
        while q < e and buf[q] != 43:  # '+'
            q += 1
        return _put_str(out, o, buf, s, q), True
    if kind == K_BOOL:
        if e - s == 4 and buf[s] == 116:
            for k, c in enumerate("true"):
                out[o + k] = ord(c)
            return o + 4, True
        if e - s == 5 and buf[s] == 102:
            for k, c in enumerate("false"):
                out[o + k] = ord(c)
            return o + 5, True
        return _put_null(out, o), False
    if kind == K_HEXLIST:
        end = _put_hex_list(out, o, buf, s, e)
        return (end, True) if end >= 0 else (_put_null(out, o), False)
    if kind == K_HEX and radix == R_DEC:
        radix = R_HEX
    ok, v, neg = _parse_int(buf, s, e, radix)
    if ok:
        end = _put_number(out, o, v, neg, kind, radix)
        if end >= 0:
            return end, True
    return _put_null(out, o), False


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


@njit(cache=True, inline="always")
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
        for k, c in enumerate('"_text":'):
            out[o + k] = ord(c)
        o = _put_str(out, o + 8, buf, s, e)
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


@njit(cache=True, inline="always")
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
        for k, c in enumerate("_val"):
            out[o + k] = ord(c)
        o += 4
    out[o] = 34
    out[o + 1] = 58
    return o + 2


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def _syscall_exit(out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int) -> tuple[int, int]:
    """``0xfffffffffffffffe`` -> ``{"ret":-2}`` (``long ret``, printed with ``0x%lx``)."""
    while e > s and buf[e - 1] == SP:
        e -= 1
    hexa = e - s > 2 and buf[s] == 48 and buf[s + 1] == 120
    ok, v, neg = _parse_int(buf, s, e, R_HEX0X if hexa else R_DEC)
    if not ok and not hexa:
        return -1, 0
    for k, c in enumerate('{"ret":'):
        out[o + k] = ord(c)
    o += 7
    end = _put_number(out, o, v, neg, K_SIGNED, R_HEX if hexa else R_DEC) if ok else -1
    o = _put_null(out, o) if end < 0 else end
    out[o] = 125
    return o + 1, 0 if end >= 0 else 1


@njit(cache=True, inline="always")
def _row_bound(s: int, e: int, ev: int, ev_slots: np.ndarray) -> int:
    """Most bytes the JSON of one row can take (6 per payload byte covers escaping,
    ``ev_slots[ev, 2]`` the keys and values of a template)."""
    return 6 * (e - s) + 32 + (ev_slots[ev, 2] if ev >= 0 else 0)


@njit(cache=True, nogil=True)
def build_args(
    buf: np.ndarray,
    pstart: np.ndarray,
    pend: np.ndarray,
    event_id: np.ndarray,
    marker: np.ndarray,
    lit: np.ndarray,
    ev_tmpl: np.ndarray,
    ev_slots: np.ndarray,
    slots: np.ndarray,
    tmpl: np.ndarray,
    fields: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """JSON ``args`` of every event row (see TemplateTable for the array layouts).

    Returns (Arrow offsets, data, values not understood, first row with one or -1).
    """
    n = pstart.shape[0]
    cap = 0
    for i in range(n):
        cap += _row_bound(pstart[i], pend[i], event_id[i], ev_slots)
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
        need = o + _row_bound(s, e, ev, ev_slots)
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
            nslot = ev_slots[ev, 1]
            for t in range(ev_tmpl[ev, 0], ev_tmpl[ev, 0] + ev_tmpl[ev, 1]):
                for j in range(nslot):
                    vs[j] = -1
                pre_off, pre_len, f0, nf = tmpl[t, 0], tmpl[t, 1], tmpl[t, 2], tmpl[t, 3]
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
                    slot, after_off, after_len = fields[f, 0], fields[f, 2], fields[f, 3]
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
                        vs[MAX_SLOTS + slot] = fields[f, 1]
                    p = nxt
                if not ok:
                    continue
                out[o] = 123
                o += 1
                base = ev_slots[ev, 0]
                for j in range(nslot):
                    key_off, key_len, kind = (
                        slots[base + j, 0],
                        slots[base + j, 1],
                        slots[base + j, 2],
                    )
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
    return offsets, out[:o], bad, first_bad


class TemplateTable:
    """The print-format templates of known events, flattened for :func:`build_args`.

    Layout (all int64 unless noted):

    * ``lit`` (uint8): every literal: template prefixes and separators, and the
      ``"key":`` text of every output field;
    * ``ev_tmpl[e] = (first template, count)``,
      ``ev_slots[e] = (first slot, count, output bound of the slots)``;
    * ``slots[k] = (key offset, key length, kind)``: output fields in order;
    * ``tmpl[t] = (prefix offset, prefix length, first field, field count)``;
    * ``fields[f] = (slot or -1, radix, separator offset, separator length)``.
    """

    def __init__(self) -> None:
        from tracereplay.formats.common.known_events import TEXT_EVENTS, parse_template

        kinds = {
            "u": K_UNSIGNED,
            "i": K_SIGNED,
            "x": K_HEX,
            "s": K_STR,
            "sym": K_SYM,
            "b": K_BOOL,
            "xl": K_HEXLIST,
        }
        radixes = {None: R_DEC, "": R_DEC, "x": R_HEX, "#x": R_HEX0X}
        lit = bytearray()

        def add(text: str) -> tuple[int, int]:
            data = text.encode()
            off = len(lit)
            lit.extend(data)
            return off, len(data)

        self.event_index: dict[str, int] = {}
        ev_tmpl: list[tuple[int, int]] = []
        ev_slots: list[tuple[int, int]] = []
        slots: list[tuple[int, int, int]] = []
        tmpl: list[tuple[int, int, int, int]] = []
        fields: list[tuple[int, int, int, int]] = []
        for e, (name, spec) in enumerate(TEXT_EVENTS.items()):
            self.event_index[name] = e
            order = list(spec.fields)
            if len(order) > MAX_SLOTS:
                raise ValueError(f"{name}: more than {MAX_SLOTS} fields")
            ev_slots.append((len(slots), len(order)))
            for field in order:
                off, ln = add(f'"{field}":')
                slots.append((off, ln, kinds[spec.fields[field]]))
            ev_tmpl.append((len(tmpl), len(spec.templates)))
            for template in spec.templates:
                prefix, parts = parse_template(template)
                p_off, p_len = add(prefix)
                tmpl.append((p_off, p_len, len(fields), len(parts)))
                for field, radix, after in parts:
                    slot = order.index(field) if field in spec.fields else -1
                    a_off, a_len = add(after)
                    fields.append((slot, radixes[radix], a_off, a_len))
        self.lit = np.frombuffer(bytes(lit) or b"\0", np.uint8)
        self.ev_tmpl = np.array(ev_tmpl, np.int64).reshape(-1, 2)
        # third column: the most bytes a row's keys and values add beyond its payload
        extra = [sum(34 + slots[first + j][1] for j in range(count)) for first, count in ev_slots]
        self.ev_slots = np.column_stack(
            [np.array(ev_slots, np.int64).reshape(-1, 2), np.array(extra, np.int64)]
        )
        self.slots = np.array(slots, np.int64).reshape(-1, 3)
        self.tmpl = np.array(tmpl, np.int64).reshape(-1, 4)
        self.fields = np.array(fields, np.int64).reshape(-1, 4)


__all__ = [
    "EV_GENERIC",
    "EV_SYSCALL_ENTER",
    "EV_SYSCALL_EXIT",
    "TemplateTable",
    "build_args",
]
