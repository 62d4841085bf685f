"""Compiled walking of ftrace ring-buffer pages: the records of every page, bounded reads.

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
header once; the records' fields are rendered by
:mod:`tracereplay.formats.tracefs.record_args`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["read_int", "read_ints", "walk_pages"]

_MISSED_EVENTS = 1 << 31
_MISSED_STORED = 1 << 30
_COMMIT_MASK = (1 << 27) - 1
_TS_MSB = np.uint64(0xF8 << 56)
_PADDING, _TIME_EXTEND, _TIME_STAMP = 29, 30, 31

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
