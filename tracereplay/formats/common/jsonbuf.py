"""Compiled helpers that write JSON text into a byte buffer (numba, no Python per value).

Shared by the text scanner (:mod:`tracereplay.formats.text.line_scan`) and the
binary record renderer (:mod:`tracereplay.formats.tracefs.ring_buffer`), so every
reader escapes strings and prints numbers the same way. Each helper writes at
``out[o:]`` and returns the new end; callers size ``out`` beforehand (a string
of ``n`` bytes needs at most ``6 * n + 2``, a number 21).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "put",
    "put_bool",
    "put_hex16",
    "put_int",
    "put_null",
    "put_str",
    "put_str_utf8",
    "put_text",
    "put_uint",
    "utf8_valid",
]

TAB = 9
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
# "00" .. "99": two digits per division
_DIGITS2 = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), np.uint8)


@njit(cache=True, inline="always")
def put(out: np.ndarray, o: int, lit: np.ndarray, off: int, ln: int) -> int:
    """Copy ``lit[off:off + ln]`` (``o``, ``off``, ``ln`` >= 0)."""
    # unsigned indices skip numba's negative-index fix-up on every byte (~2x faster)
    a = np.uint64(o)
    b = np.uint64(off)
    for k in range(np.uint64(ln)):
        out[a + k] = lit[b + k]
    return o + ln


@njit(cache=True, inline="always")
def put_null(out: np.ndarray, o: int) -> int:
    out[o] = 110
    out[o + 1] = 117
    out[o + 2] = 108
    out[o + 3] = 108
    return o + 4


@njit(cache=True, inline="always")
def put_bool(out: np.ndarray, o: int, v: bool) -> int:
    """``true`` / ``false``."""
    if v:
        out[o] = 116
        out[o + 1] = 114
        out[o + 2] = 117
        out[o + 3] = 101
        return o + 4
    out[o] = 102
    out[o + 1] = 97
    out[o + 2] = 108
    out[o + 3] = 115
    out[o + 4] = 101
    return o + 5


@njit(cache=True, inline="always")
def _esc(out: np.ndarray, o: int, c: int) -> int:
    """One ASCII byte inside a JSON string (quotes, backslashes and controls escaped)."""
    if c == 34 or c == 92:
        out[o] = 92
        out[o + 1] = c
        return o + 2
    if c == TAB:
        out[o] = 92
        out[o + 1] = 116
        return o + 2
    if c < 32:
        out[o] = 92
        out[o + 1] = 117
        out[o + 2] = 48
        out[o + 3] = 48
        out[o + 4] = _HEX[c >> 4]
        out[o + 5] = _HEX[c & 15]
        return o + 6
    out[o] = c
    return o + 1


@njit(cache=True)
def put_str(out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int) -> int:
    """A JSON string literal of ``buf[s:e]`` (bytes copied as they are, controls escaped)."""
    out[o] = 34
    o += 1
    for k in range(s, e):
        o = _esc(out, o, buf[k])
    out[o] = 34
    return o + 1


@njit(cache=True, inline="always")
def _utf8_len(buf: np.ndarray, k: int, e: int) -> tuple[int, int]:
    """(length of the well-formed UTF-8 sequence at k or 0, bytes of its maximal bad prefix).

    Follows Unicode's table of well-formed sequences (and Python's "replace"
    handler: one U+FFFD per maximal subpart of an ill-formed sequence).
    """
    c = buf[k]
    if c < 0x80:
        return 1, 0
    if 0xC2 <= c <= 0xDF:
        need = 1
        lo, hi = 0x80, 0xBF
    elif c == 0xE0:
        need, lo, hi = 2, 0xA0, 0xBF
    elif c == 0xED:
        need, lo, hi = 2, 0x80, 0x9F
    elif 0xE1 <= c <= 0xEF:
        need, lo, hi = 2, 0x80, 0xBF
    elif c == 0xF0:
        need, lo, hi = 3, 0x90, 0xBF
    elif c == 0xF4:
        need, lo, hi = 3, 0x80, 0x8F
    elif 0xF1 <= c <= 0xF3:
        need, lo, hi = 3, 0x80, 0xBF
    else:
        return 0, 1
    for j in range(1, need + 1):
        if k + j >= e:
            return 0, j
        b = buf[k + j]
        if j == 1:
            if b < lo or b > hi:
                return 0, 1
        elif b < 0x80 or b > 0xBF:
            return 0, j
    return need + 1, 0


@njit(cache=True)
def put_str_utf8(
    out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int, short_newlines: bool = False
) -> int:
    """Like :func:`put_str`, replacing ill-formed UTF-8 with U+FFFD as Python's decoder does."""
    out[o] = 34
    o += 1
    k = s
    while k < e:
        c = buf[k]
        if c < 0x80:
            if short_newlines and (c == 10 or c == 13):
                out[o] = 92
                out[o + 1] = 110 if c == 10 else 114
                o += 2
            else:
                o = _esc(out, o, c)
            k += 1
            continue
        good, bad = _utf8_len(buf, k, e)
        if good:
            for j in range(good):
                out[o + j] = buf[k + j]
            o += good
            k += good
        else:
            out[o] = 0xEF
            out[o + 1] = 0xBF
            out[o + 2] = 0xBD
            o += 3
            k += bad
    out[o] = 34
    return o + 1


@njit(cache=True, inline="always")
def utf8_valid(buf: np.ndarray, s: int, e: int) -> bool:
    k = s
    while k < e:
        if buf[k] < 0x80:
            k += 1
            continue
        good, _bad = _utf8_len(buf, k, e)
        if not good:
            return False
        k += good
    return True


@njit(cache=True)
def put_uint(out: np.ndarray, o: int, v: np.uint64) -> int:
    """Decimal digits of an unsigned 64-bit value."""
    v = np.uint64(v)
    # unsigned indices skip numba's negative-index fix-up (hot path of args)
    n = 1
    t = v
    while t >= np.uint64(10000):
        t = t // np.uint64(10000)
        n += 4
    while t >= np.uint64(10):
        t = t // np.uint64(10)
        n += 1
    e = np.uint64(o + n)
    while v >= np.uint64(100):
        q = v // np.uint64(100)
        r = (v - q * np.uint64(100)) * np.uint64(2)
        e -= np.uint64(2)
        out[e] = _DIGITS2[r]
        out[e + np.uint64(1)] = _DIGITS2[r + np.uint64(1)]
        v = q
    if v >= np.uint64(10):
        r = v * np.uint64(2)
        out[e - np.uint64(2)] = _DIGITS2[r]
        out[e - np.uint64(1)] = _DIGITS2[r + np.uint64(1)]
    else:
        out[e - np.uint64(1)] = 48 + np.uint8(v)
    return o + n


@njit(cache=True)
def put_int(out: np.ndarray, o: int, v: int | np.int64) -> int:
    """Decimal digits of a signed 64-bit value."""
    if v < 0:
        out[o] = 45
        return put_uint(out, o + 1, ~np.uint64(v) + np.uint64(1))
    return put_uint(out, o, np.uint64(v))


@njit(cache=True)
def put_hex16(out: np.ndarray, o: int, v: np.uint64) -> int:
    """``"%016x"`` of a 64-bit value, quoted (how ``%p`` fields are kept)."""
    out[o] = 34
    for j in range(16):
        out[o + 16 - j] = _HEX[np.int64((v >> np.uint64(4 * j)) & np.uint64(15))]
    out[o + 17] = 34
    return o + 18


@njit(cache=True, inline="always")
def put_text(out: np.ndarray, o: int, buf: np.ndarray, s: int, e: int) -> int:
    """:func:`put_str_utf8` with ``\\n`` / ``\\r`` for newlines (the Perfetto reader's historical escaping)."""
    return put_str_utf8(out, o, buf, s, e, True)
