"""Compiled scanners for ftrace text: line bounds and headers, no Python per line.

Text ingest is bound by per-line string work. Columnar string kernels (one pass
and one new column per field) cost about three CPU seconds per million lines
here; these numba-compiled loops read each byte once and write the final
buffers directly, which is what lets ingest keep up with DuckDB.

:func:`line_bounds` finds the non-blank lines of a block (blank lines cost one
byte comparison each and no memory), :func:`scan_headers` finds, for every line,
its kind (event, stack frame, other) and the header fields, and flags values
outside their column's range instead of wrapping them. The ``args`` JSON is
rendered by :mod:`tracereplay.formats.text.args`. Layouts are described in
:mod:`tracereplay.formats.text.block`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

# line kinds
EVENT, FRAME, OTHER, BLANK = 0, 1, 2, 3
# Headers.range_error: which header value is outside its column's range (0: none)
RANGE_CPU, RANGE_PID, RANGE_TGID, RANGE_TS = 1, 2, 3, 4
# Headers.syscall: tracefs syscall forms "sys_name(args)" and "sys_name -> ret"
SC_ENTER, SC_EXIT = 1, 2


class Headers(NamedTuple):
    """The header fields of every line (int64 each; -1 where a line has none).

    ``kind``: EVENT, FRAME, OTHER or BLANK; ``ts`` in ns, or raw clock counts when
    ``raw_clock`` is 1; ``comm``, ``name``, ``payload``: byte ranges of the block;
    ``sys_end``: the end of a ``system:`` prefix of the name (perf), else -1;
    ``marker``: 1 for a stack-trace entry; ``range_error``: RANGE_* of a value that
    does not fit its column (the line is then OTHER); ``syscall``: SC_* of tracefs'
    syscall forms, else 0.
    """

    kind: npt.NDArray[np.int64]
    cpu: npt.NDArray[np.int64]
    pid: npt.NDArray[np.int64]
    tgid: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    raw_clock: npt.NDArray[np.int64]
    comm_start: npt.NDArray[np.int64]
    comm_end: npt.NDArray[np.int64]
    name_start: npt.NDArray[np.int64]
    name_end: npt.NDArray[np.int64]
    sys_end: npt.NDArray[np.int64]
    payload_start: npt.NDArray[np.int64]
    payload_end: npt.NDArray[np.int64]
    marker: npt.NDArray[np.int64]
    range_error: npt.NDArray[np.int64]
    syscall: npt.NDArray[np.int64]

    def take(self, rows: npt.NDArray[np.int64]) -> Headers:
        """The headers of ``rows`` only."""
        return Headers(*(a[rows] for a in self))


_FIELDS = len(Headers._fields)

SP, TAB, NL, CR = 32, 9, 10, 13
INT32_MAX = 2147483647
# line_bounds sizes its arrays from the newline count up to this many lines (24 bytes
# each); above, the block is mostly blank and its non-blank lines are counted first
_DIRECT_LINES = 1 << 21
# largest seconds value whose nanoseconds fit a signed 64-bit integer
_TS_SEC_MAX = 9223372036
_TS_FRAC_MAX = 854775807


@njit(cache=True, inline="always")
def _content_end(buf: np.ndarray, s: int, e: int) -> int:
    """End of line ``[s, e)`` without its CR, or -1 when the line is blank."""
    if e > s and buf[e - 1] == CR:
        e -= 1
    q = e - 1  # from the end: lines rarely end with blanks, tracefs ones often start so
    while q >= s and (buf[q] == SP or buf[q] == TAB or buf[q] == CR):
        q -= 1
    return e if q >= s else -1


@njit(cache=True, nogil=True)
def line_bounds(
    buf: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Non-blank lines of a block: (starts, ends, line index, lines, longest, its index).

    ``ends`` exclude ``\\r\\n``; a line of blanks (space, tab, CR) is skipped and
    takes no memory (the reader caps the non-blank lines of a block);
    ``lines`` counts every line (the last one even without a newline); ``longest``
    is the length of the longest line, blank or not.
    """
    n = buf.shape[0]
    count = 0
    for i in range(n):  # a plain count: vectorized by LLVM
        if buf[i] == NL:
            count += 1
    size = count + 1
    if size > _DIRECT_LINES:  # mostly blank (blocks hold few non-blank lines): count them
        size = 1  # the last line, even without a newline
        s = 0
        for i in range(n):
            if buf[i] == NL:
                if _content_end(buf, s, i) >= 0:
                    size += 1
                s = i + 1
    starts = np.empty(size, np.int64)
    ends = np.empty(size, np.int64)
    index = np.empty(size, np.int64)
    k = 0
    s = 0
    line = 0
    longest = 0
    longest_line = 0
    for i in range(n):
        if buf[i] == NL:
            if i - s > longest:
                longest = i - s
                longest_line = line
            e = _content_end(buf, s, i)
            if e >= 0:
                starts[k] = s
                ends[k] = e
                index[k] = line
                k += 1
            s = i + 1
            line += 1
    if s < n:  # a last line without a newline
        if n - s > longest:
            longest = n - s
            longest_line = line
        e = _content_end(buf, s, n)
        if e >= 0:
            starts[k] = s
            ends[k] = e
            index[k] = line
            k += 1
        line += 1
    return starts[:k], ends[:k], index[:k], line, longest, longest_line


@njit(cache=True, inline="always")
def _isdigit(c: int) -> bool:
    return 48 <= c <= 57


@njit(cache=True, inline="always")
def _ishex(c: int) -> bool:
    return 48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70


@njit(cache=True)
def _decimal(buf: np.ndarray, s: int, e: int, limit: int) -> int:
    """Value of the decimal digits ``buf[s:e]`` (at most 18), or -1 when above ``limit``."""
    while e - s > 1 and buf[s] == 48:  # leading zeros ("[001]")
        s += 1
    if e - s > 18:
        return -1
    v = 0
    for t in range(s, e):
        v = v * 10 + buf[t] - 48
    return v if v <= limit else -1


@njit(cache=True)
def _syscall_form(buf: np.ndarray, ns: int, e: int) -> tuple[int, int, int, int]:
    """(kind, name end, payload start, payload end) of tracefs' syscall lines, kind 0 if not.

    The kernel prints syscall events with its own functions (print_syscall_enter /
    print_syscall_exit in kernel/trace/trace_syscalls.c), not ``name: payload``:
    ``sys_madvise(start: 0x7f.., len_in: 0x1000, behavior: 4)`` and ``sys_madvise -> 0x0``.
    """
    if e - ns < 6 or buf[ns] != 115 or buf[ns + 1] != 121 or buf[ns + 2] != 115:
        return 0, 0, 0, 0
    if buf[ns + 3] != 95:  # "sys_"
        return 0, 0, 0, 0
    q = ns + 4
    while q < e and (_isdigit(buf[q]) or 97 <= buf[q] <= 122 or 65 <= buf[q] <= 90 or buf[q] == 95):
        q += 1
    if q == ns + 4 or q >= e:
        return 0, 0, 0, 0
    if buf[q] == 40:  # '('
        pe = e - 1 if buf[e - 1] == 41 else e
        return SC_ENTER, q, q + 1, max(pe, q + 1)
    if e - q >= 4 and buf[q] == SP and buf[q + 1] == 45 and buf[q + 2] == 62 and buf[q + 3] == SP:
        return SC_EXIT, q, q + 4, e
    return 0, 0, 0, 0


@njit(cache=True, nogil=True)
def scan_headers(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Headers:
    """Header fields of every line (see :class:`Headers`).

    Missing tgid is -1. A line whose cpu, pid, tgid or timestamp does not fit its
    column (int32, int64 ns) is left OTHER with ``range_error`` set (RANGE_*).
    """
    n = starts.shape[0]
    c = np.full((_FIELDS, n), -1, np.int64)  # one block, a row per field
    c[0] = OTHER
    c[14:] = 0  # range_error, syscall
    h = Headers(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15])  # fmt: skip
    for li in range(n):
        s = starts[li]
        e = ends[li]
        h.kind[li] = OTHER
        # leading blanks
        p = s
        while p < e and (buf[p] == SP or buf[p] == TAB):
            p += 1
        if p >= e:
            h.kind[li] = BLANK
            continue
        # stack frames: " => sym" (tracefs, trace-cmd) or "\t ffffffff81 sym+0x1 (dso)" (perf)
        if buf[p] == 61 and p + 1 < e and buf[p + 1] == 62:  # "=>"
            h.kind[li] = FRAME
            continue
        if p > s:
            q = p
            while q < e and _ishex(buf[q]):
                q += 1
            if q - p >= 8 and q < e and buf[q] == SP:
                h.kind[li] = FRAME
                continue
        if buf[p] == 35:  # '#': comment
            continue
        # the CPU bracket: first " [" + digits + "] "
        lb = -1
        rb = -1
        q = p + 1
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
                    h.cpu[li] = _decimal(buf, d0, r, INT32_MAX)
                    rb = r
                    break
            q += 1
        if lb < 0:
            continue
        if h.cpu[li] < 0:
            h.range_error[li] = RANGE_CPU
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
            d0 = r + 1
            while d0 < q and buf[d0] == SP:
                d0 += 1
            d1 = d0
            while d1 < q and _isdigit(buf[d1]):
                d1 += 1
            if d1 > d0:  # "(-------)": not recorded
                tgid = _decimal(buf, d0, d1, INT32_MAX)
                if tgid < 0:
                    h.range_error[li] = RANGE_TGID
                    continue
            q = r - 1
            while q > p and buf[q] == SP:
                q -= 1
        # digits of the (last) id
        d_end = q + 1
        while q >= p and _isdigit(buf[q]):
            q -= 1
        if q + 1 == d_end or q < p:
            continue
        pid = _decimal(buf, q + 1, d_end, INT32_MAX)
        if pid < 0:
            h.range_error[li] = RANGE_PID
            continue
        if buf[q] == 47:  # '/': perf "pid/tid"
            d_end = q
            q -= 1
            while q >= p and _isdigit(buf[q]):
                q -= 1
            if q + 1 == d_end or q < p:
                continue
            tgid = _decimal(buf, q + 1, d_end, INT32_MAX)
            if tgid < 0:
                h.range_error[li] = RANGE_TGID
                continue
        if buf[q] != 45 and buf[q] != SP:  # '-' or ' ' before the id
            continue
        comm_end = q
        while comm_end > p and buf[comm_end - 1] == SP:
            comm_end -= 1
        # trace-cmd report prefixes events of an instance buffer with "name: " before
        # the right-aligned comm ("%16s"): "rec:          python3-27127 [001] ...";
        # a comm is at most 15 bytes (TASK_COMM_LEN), so only longer ones are looked at
        for t in range(p, comm_end - 2 if comm_end - p > 16 else p):
            if buf[t] == 58 and buf[t + 1] == SP and buf[t + 2] == SP:
                t += 1
                while t < comm_end and buf[t] == SP:
                    t += 1
                if t < comm_end:
                    p = t
                break
        h.pid[li] = pid
        h.tgid[li] = tgid
        h.comm_start[li] = p
        h.comm_end[li] = comm_end
        # after "] ": optional flags token, then the timestamp ending in ':'
        q = rb + 1
        while q < e and buf[q] == SP:
            q += 1
        ts_ok = False
        sec = 0
        frac = 0
        fdig = 0
        sdig = 0
        seen_dot = False
        for _attempt in range(2):
            t0 = q
            sec = 0
            frac = 0
            fdig = 0
            sdig = 0
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
                    if sec > 0 or c != 48:
                        sdig += 1  # significant digits: above 18 it is out of range below
                    if sdig <= 18:
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
            if sdig > 10 or sec > _TS_SEC_MAX or (sec == _TS_SEC_MAX and frac > _TS_FRAC_MAX):
                h.range_error[li] = RANGE_TS
                continue
            h.ts[li] = sec * 1_000_000_000 + frac
            h.raw_clock[li] = 0
        else:
            if sdig > 18:
                h.range_error[li] = RANGE_TS
                continue
            h.ts[li] = sec
            h.raw_clock[li] = 1
        q += 1  # the ':'
        while q < e and buf[q] == SP:
            q += 1
        ns = q
        sys_end = -1
        sc, sc_name_end, sc_ps, sc_pe = _syscall_form(buf, ns, e)
        if sc:
            h.name_start[li] = ns
            h.name_end[li] = sc_name_end
            h.sys_end[li] = -1
            h.payload_start[li] = sc_ps
            h.payload_end[li] = sc_pe
            h.marker[li] = 0
            h.syscall[li] = sc
            h.kind[li] = EVENT
            continue
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
        h.name_start[li] = ns
        h.name_end[li] = ne
        h.sys_end[li] = sys_end
        ps = ne + 1
        while ps < e and buf[ps] == SP:
            ps += 1
        h.payload_start[li] = ps if ps < e else e
        h.payload_end[li] = e
        h.marker[li] = marker
        h.kind[li] = EVENT
    return h


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


@njit(cache=True, nogil=True)
def count_newlines(buf: np.ndarray) -> int:
    """The newlines in ``buf``: vectorized, and without the GIL (``bytes.count`` holds it
    for ~9 ms per 16 MiB block, ten times this)."""
    n = 0
    for i in range(buf.shape[0]):
        n += buf[i] == NL
    return n


@njit(cache=True, nogil=True)
def line_cuts(buf: np.ndarray, max_lines: int) -> np.ndarray:
    """Offsets just after every ``max_lines``-th non-blank line (blank lines are free)."""
    cuts = np.empty(buf.shape[0] // (2 * max_lines) + 1, np.int64)
    k = 0
    seen = 0
    blank = True
    for i in range(buf.shape[0]):
        c = buf[i]
        if c == NL:
            if not blank:
                seen += 1
                if seen == max_lines and k < cuts.shape[0]:
                    cuts[k] = i + 1
                    k += 1
                    seen = 0
            blank = True
        elif c != SP and c != TAB and c != CR:
            blank = False
    return cuts[:k]
