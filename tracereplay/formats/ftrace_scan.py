"""Compiled scanners for ftrace text: line headers and ``args`` JSON, no Python per line.

Text ingest is bound by per-line string work. Columnar string kernels (one pass
and one new column per field) cost about three CPU seconds per million lines
here; these numba-compiled loops read each byte once and write the final
buffers directly, which is what lets ingest keep up with DuckDB.

:func:`scan_headers` finds, for every line of a block, its kind (event, stack
frame, other) and the header fields; :func:`build_args` renders the JSON
``args`` of every event from the print-format templates of
:mod:`tracereplay.formats.text_events`, compiled to flat arrays by
:class:`TemplateTable`. Layouts are described in
:mod:`tracereplay.formats.ftrace_lines`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tracereplay.formats.jsonbuf import put as _put
from tracereplay.formats.jsonbuf import put_str as _put_str
from tracereplay.formats.jsonbuf import put_uint as _put_uint

# line kinds
EVENT, FRAME, OTHER, BLANK = 0, 1, 2, 3
# field kinds (JSON rendering), mirrored from text_events
K_UNSIGNED, K_SIGNED, K_HEX, K_STR, K_SYM, K_BOOL, K_SKIP = 0, 1, 2, 3, 4, 5, 6
# printed radix of a field
R_DEC, R_HEX, R_HEX0X = 0, 1, 2

SP, TAB, NL, CR = 32, 9, 10, 13


@njit(cache=True, nogil=True)
def line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, without ``\\r\\n``) of every line."""
    n = buf.shape[0]
    count = 0
    for i in range(n):
        if buf[i] == NL:
            count += 1
    if n > 0 and buf[n - 1] != NL:
        count += 1
    starts = np.empty(count, np.int64)
    ends = np.empty(count, np.int64)
    k = 0
    s = 0
    for i in range(n):
        if buf[i] == NL:
            e = i
            if e > s and buf[e - 1] == CR:
                e -= 1
            starts[k] = s
            ends[k] = e
            k += 1
            s = i + 1
    if s < n:
        starts[k] = s
        ends[k] = n
    return starts, ends


@njit(cache=True, inline="always")
def _isdigit(c: int) -> bool:
    return 48 <= c <= 57


@njit(cache=True, inline="always")
def _ishex(c: int) -> bool:
    return 48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70


@njit(cache=True, nogil=True)
def scan_headers(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Header fields of every line.

    Returns ``ints`` (14 x n int64, one row per field: kind, cpu, pid, tgid, ts, raw_clock,
    comm_start, comm_end, name_start, name_end, sys_end, payload_start,
    payload_end, is_marker) and ``ok`` (n bool). Missing tgid is -1; ``sys_end``
    is -1 unless the name carries a ``system:`` prefix (perf).
    """
    n = starts.shape[0]
    out = np.full((14, n), -1, np.int64)
    for li in range(n):
        s = starts[li]
        e = ends[li]
        out[0, li] = OTHER
        # leading blanks
        p = s
        while p < e and (buf[p] == SP or buf[p] == TAB):
            p += 1
        if p >= e:
            out[0, li] = BLANK
            continue
        # stack frames: " => sym" (tracefs, trace-cmd) or "\t ffffffff81 sym+0x1 (dso)" (perf)
        if buf[p] == 61 and p + 1 < e and buf[p + 1] == 62:  # "=>"
            out[0, li] = FRAME
            continue
        if p > s:
            q = p
            while q < e and _ishex(buf[q]):
                q += 1
            if q - p >= 8 and q < e and buf[q] == SP:
                out[0, li] = FRAME
                continue
        if buf[p] == 35:  # '#': comment
            continue
        # the CPU bracket: first " [" + digits + "] "
        lb = -1
        q = p
        while q + 3 < e:
            if buf[q] == 91 and buf[q - 1] == SP:
                r = q + 1
                while r < e and buf[r] == SP:
                    r += 1
                d0 = r
                while r < e and _isdigit(buf[r]):
                    r += 1
                if r > d0 and r + 1 < e and buf[r] == 93 and buf[r + 1] == SP:
                    lb = q
                    cpu = 0
                    for t in range(d0, r):
                        cpu = cpu * 10 + buf[t] - 48
                    out[1, li] = cpu
                    rb = r
                    break
            q += 1
        if lb < 0:
            continue
        # right to left over "comm-pid (tgid) " or "comm pid[/tid] "
        q = lb - 1
        while q > p and buf[q] == SP:
            q -= 1
        tgid = -1
        if buf[q] == 41:  # ')'
            r = q - 1
            while r > p and buf[r] != 40:
                r -= 1
            if buf[r] != 40:
                continue
            v = 0
            digits = 0
            for t in range(r + 1, q):
                c = buf[t]
                if _isdigit(c):
                    v = v * 10 + c - 48
                    digits += 1
            if digits > 0:
                tgid = v
            q = r - 1
            while q > p and buf[q] == SP:
                q -= 1
        # digits of the (last) id
        d_end = q + 1
        while q >= p and _isdigit(buf[q]):
            q -= 1
        if q + 1 == d_end or q < p:
            continue
        v = 0
        for t in range(q + 1, d_end):
            v = v * 10 + buf[t] - 48
        pid = v
        if buf[q] == 47:  # '/': perf "pid/tid"
            d_end = q
            q -= 1
            while q >= p and _isdigit(buf[q]):
                q -= 1
            if q + 1 == d_end or q < p:
                continue
            v = 0
            for t in range(q + 1, d_end):
                v = v * 10 + buf[t] - 48
            tgid = v
        if buf[q] != 45 and buf[q] != SP:  # '-' or ' ' before the id
            continue
        comm_end = q
        while comm_end > p and buf[comm_end - 1] == SP:
            comm_end -= 1
        out[2, li] = pid
        out[3, li] = tgid
        out[6, li] = p
        out[7, li] = comm_end
        # after "] ": optional flags token, then the timestamp ending in ':'
        q = rb + 1
        while q < e and buf[q] == SP:
            q += 1
        ts_ok = False
        for _attempt in range(2):
            t0 = q
            sec = 0
            frac = 0
            fdig = 0
            seen_dot = False
            while q < e and (_isdigit(buf[q]) or buf[q] == 46):
                c = buf[q]
                if c == 46:
                    if seen_dot:
                        break
                    seen_dot = True
                elif seen_dot:
                    if fdig < 9:
                        frac = frac * 10 + c - 48
                        fdig += 1
                else:
                    sec = sec * 10 + c - 48
                q += 1
            if q > t0 and q < e and buf[q] == 58:  # ':'
                ts_ok = True
                break
            # not a timestamp: it was the flags column; skip it
            q = t0
            while q < e and buf[q] != SP:
                q += 1
            while q < e and buf[q] == SP:
                q += 1
        if not ts_ok:
            continue
        if seen_dot:
            for _ in range(fdig, 9):
                frac *= 10
            out[4, li] = sec * 1_000_000_000 + frac
            out[5, li] = 0
        else:
            out[4, li] = sec
            out[5, li] = 1
        q += 1  # the ':'
        while q < e and buf[q] == SP:
            q += 1
        ns = q
        sys_end = -1
        # the name ends at a ':' followed by a blank or the end of the line
        ne = -1
        while q < e:
            if buf[q] == 58:
                if q + 1 == e or buf[q + 1] == SP:
                    ne = q
                    break
                if sys_end < 0:
                    sys_end = q
            q += 1
        marker = 0
        if ne < 0:
            # "<stack trace>" has no colon after it
            if e - ns >= 13 and buf[ns] == 60:
                ne = e
                marker = 1
            else:
                continue
        if ne == ns:
            continue
        if buf[ns] == 60:  # '<stack trace>'
            marker = 1
        elif ne - ns == 12:
            # "kernel_stack" (trace-cmd)
            word = "kernel_stack"
            same = True
            for t in range(12):
                if buf[ns + t] != ord(word[t]):
                    same = False
                    break
            if same:
                marker = 1
        out[8, li] = ns
        out[9, li] = ne
        out[10, li] = sys_end
        ps = ne + 1
        while ps < e and buf[ps] == SP:
            ps += 1
        out[11, li] = ps if ps < e else e
        out[12, li] = e
        out[13, li] = marker
        out[0, li] = EVENT
    return out, out[0] == EVENT


@njit(cache=True, nogil=True)
def gather(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrow large_string offsets and data of the byte ranges ``[starts, ends)``."""
    n = starts.shape[0]
    offsets = np.empty(n + 1, np.int64)
    total = 0
    offsets[0] = 0
    for i in range(n):
        ln = ends[i] - starts[i]
        if ln < 0:
            ln = 0
        total += ln
        offsets[i + 1] = total
    data = np.empty(total, np.uint8)
    for i in range(n):
        o = offsets[i]
        for k in range(offsets[i + 1] - o):
            data[o + k] = buf[starts[i] + k]
    return offsets, data


@njit(cache=True, inline="always")
def _parse_int(buf: np.ndarray, s: int, e: int, radix: int) -> tuple[bool, np.uint64, bool]:
    """(ok, magnitude or two's complement bits, negative) of a printed integer."""
    neg = False
    if radix == R_HEX0X and e - s >= 2 and buf[s] == 48 and (buf[s + 1] == 120 or buf[s + 1] == 88):
        s += 2
    if radix == R_DEC and s < e and buf[s] == 45:
        neg = True
        s += 1
    if s >= e:
        return False, np.uint64(0), False
    v = np.uint64(0)
    if radix == R_DEC:
        if e - s > 20:
            return False, v, False
        for k in range(s, e):
            c = buf[k]
            if not _isdigit(c):
                return False, v, False
            v = v * np.uint64(10) + np.uint64(c - 48)
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
def _put_value(
    out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int, kind: int, radix: int
) -> int:
    if kind == K_STR:
        return _put_str(out, o, buf, s, e)
    if kind == K_SYM:
        q = s
        while q < e and buf[q] != 43:  # '+'
            q += 1
        return _put_str(out, o, buf, s, q)
    if kind == K_BOOL:
        if e - s == 4 and buf[s] == 116:
            for k, c in enumerate("true"):
                out[o + k] = ord(c)
            return o + 4
        if e - s == 5 and buf[s] == 102:
            for k, c in enumerate("false"):
                out[o + k] = ord(c)
            return o + 5
        for k, c in enumerate("null"):
            out[o + k] = ord(c)
        return o + 4
    if kind == K_HEX and radix == R_DEC:
        radix = R_HEX
    ok, v, neg = _parse_int(buf, s, e, radix)
    if not ok:
        for k, c in enumerate("null"):
            out[o + k] = ord(c)
        return o + 4
    if neg:
        if kind == K_SIGNED:
            out[o] = 45
            return _put_uint(out, o + 1, v)
        v = ~v + np.uint64(1)  # an unsigned field printed with %ld: wrap
    elif kind == K_SIGNED and v >= np.uint64(1) << np.uint64(63):
        out[o] = 45
        return _put_uint(out, o + 1, ~v + np.uint64(1))
    return _put_uint(out, o, v)


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
) -> tuple[np.ndarray, np.ndarray]:
    """JSON ``args`` of every event row (see TemplateTable for the array layouts)."""
    n = pstart.shape[0]
    bound = 0
    for i in range(n):
        bound += 6 * (pend[i] - pstart[i]) + 32
        ev = event_id[i]
        if ev >= 0:
            bound += 32 * ev_slots[ev, 1] + 2 * ev_slots[ev, 1]
            for j in range(ev_slots[ev, 1]):
                bound += slots[ev_slots[ev, 0] + j, 1]
    out = np.empty(bound, np.uint8)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    vs = np.empty(64, np.int64)
    ve = np.empty(64, np.int64)
    o = 0
    for i in range(n):
        s = pstart[i]
        e = pend[i]
        ev = event_id[i]
        if marker[i]:
            out[o] = 123
            out[o + 1] = 125
            o += 2
            offsets[i + 1] = o
            continue
        done = False
        if ev >= 0:
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
                        vs[32 + slot] = fields[f, 1]
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
                        for k, c in enumerate("null"):
                            out[o + k] = ord(c)
                        o += 4
                    else:
                        o = _put_value(out, o, buf, vs[j], ve[j], kind, vs[32 + j])
                out[o] = 125
                o += 1
                done = True
                break
        if not done:
            o = _generic(out, o, buf, s, e)
        offsets[i + 1] = o
    return offsets, out[:o]


class TemplateTable:
    """The print-format templates of known events, flattened for :func:`build_args`.

    Layout (all int64 unless noted):

    * ``lit`` (uint8): every literal: template prefixes and separators, and the
      ``"key":`` text of every output field;
    * ``ev_tmpl[e] = (first template, count)``, ``ev_slots[e] = (first slot, count)``;
    * ``slots[k] = (key offset, key length, kind)``: output fields in order;
    * ``tmpl[t] = (prefix offset, prefix length, first field, field count)``;
    * ``fields[f] = (slot or -1, radix, separator offset, separator length)``.
    """

    def __init__(self) -> None:
        from tracereplay.formats.text_events import KNOWN_EVENTS, parse_template

        kinds = {"u": K_UNSIGNED, "i": K_SIGNED, "x": K_HEX, "s": K_STR, "sym": K_SYM, "b": K_BOOL}
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
        for e, (name, spec) in enumerate(KNOWN_EVENTS.items()):
            self.event_index[name] = e
            order = list(spec.fields)
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
        self.ev_slots = np.array(ev_slots, np.int64).reshape(-1, 2)
        self.slots = np.array(slots, np.int64).reshape(-1, 3)
        self.tmpl = np.array(tmpl, np.int64).reshape(-1, 4)
        self.fields = np.array(fields, np.int64).reshape(-1, 4)
