"""Compiled walking of perf.data records: the size chain, record headers, SAMPLE fields.

Layout in tools/perf/Documentation/perf.data-file-format.txt: records
``{u32 type, u16 misc, u16 size}``, 8-byte aligned and chained by their size.
Every read is bounded by the buffer and by the record it belongs to.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from tracereplay.formats.tracefs.ring_buffer import read_int

__all__ = ["COMPILED", "SampleLayout", "chain_records", "record_headers", "sample_fields"]


class SampleLayout(NamedTuple):
    """Where a SAMPLE record's fields are (byte offsets in the record, -1: absent): the
    pid/tid pair, the time, the cpu, and ``rest``: the callchain (``u64 nr, ips``) when
    ``callchain``, else the raw data's u32 size."""

    tid: int
    time: int
    cpu: int
    rest: int
    callchain: bool


@njit(cache=True, nogil=True)
def record_headers(
    buf: np.ndarray, words: np.ndarray, recs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(type, size) of the records at ``recs``: ``{u32 type, u16 misc, u16 size}``."""
    n = recs.shape[0]
    rtype = np.empty(n, np.int64)
    size = np.empty(n, np.int64)
    for i in range(n):
        r = recs[i]
        if r % 8 == 0 and 0 <= r < 8 * words.shape[0]:
            v = words[r // 8]  # records are 8-byte aligned: one load per header
            rtype[i] = np.int64(v & np.uint64(0xFFFFFFFF))
            size[i] = np.int64(v >> np.uint64(48))
        else:
            rtype[i] = read_int(buf, r, 4, False)
            size[i] = read_int(buf, r + 6, 2, False)
    return rtype, size


@njit(cache=True, nogil=True)
def sample_fields(
    buf: np.ndarray, words: np.ndarray, s: np.ndarray, size: np.ndarray, at: SampleLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pid, tid, time, cpu, callchain length, raw size) of the samples at ``s``.

    ``at``: where the fields are (an absent one reads as zeros). Every read is
    inside the sample: a sample too short for its fields, or whose callchain does
    not leave room for the raw size, gets raw size -1 (malformed) and no callchain.
    Time is the u64 bit pattern. ``words``: ``buf`` as little-endian u64 (whole
    words only), read directly when a sample is 8-byte aligned (as perf writes
    them: every field here then starts a word).
    """
    at_tid, at_time, at_cpu, at_rest, callchain = at
    n = s.shape[0]
    pid = np.zeros(n, np.int64)
    tid = np.zeros(n, np.int64)
    time = np.zeros(n, np.int64)
    cpu = np.zeros(n, np.int32)
    cc_nr = np.zeros(n, np.int64)
    raw_len = np.full(n, -1, np.int64)
    limit = 8 * words.shape[0]
    nbuf = buf.shape[0]
    aligned = at_tid % 8 == 0 and at_time % 8 == 0 and at_cpu % 8 == 0 and at_rest % 8 == 0
    # the callchain's nr word, or the raw size, must be inside the sample
    need = at_rest + (8 if callchain else 4)
    for i in range(n):
        r = s[i]
        sz = size[i]
        if r < 0 or sz < need or r + sz > nbuf:
            continue
        if aligned and r % 8 == 0 and r + sz <= limit:
            w = r // 8
            if at_tid >= 0:
                v = words[w + at_tid // 8]
                pid[i] = np.int64(np.int32(v & np.uint64(0xFFFFFFFF)))
                tid[i] = np.int64(np.int32(v >> np.uint64(32)))
            if at_time >= 0:
                time[i] = np.int64(words[w + at_time // 8])
            if at_cpu >= 0:
                cpu[i] = np.int32(words[w + at_cpu // 8] & np.uint64(0xFFFFFFFF))
        else:
            if at_tid >= 0:
                pid[i] = read_int(buf, r + at_tid, 4, True)
                tid[i] = read_int(buf, r + at_tid + 4, 4, True)
            if at_time >= 0:
                time[i] = read_int(buf, r + at_time, 8, False)
            if at_cpu >= 0:
                cpu[i] = read_int(buf, r + at_cpu, 4, False)
        p = r + at_rest
        if callchain:
            nr = np.uint64(read_int(buf, p, 8, False))
            room = (sz - at_rest - 12) // 8  # ips, then the u32 raw size
            if room < 0 or nr > np.uint64(room):
                continue
            cc_nr[i] = np.int64(nr)
            p += 8 + 8 * np.int64(nr)
        raw_len[i] = read_int(buf, p, 4, False)
    return pid, tid, time, cpu, cc_nr, raw_len


@njit(cache=True, nogil=True)
def chain_records(buf: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.int64]:
    """Records chained by their size from ``start`` (the first taken as is), up to ``end``.

    A next record must start on the 8-byte grid of ``start``, have a plausible
    header (size a multiple of 8, type 1..127) and end by ``end``. Returns the
    offsets and the end of the last record.
    """
    end = min(end, buf.shape[0])
    if start < 0 or start + 8 > end:
        return np.zeros(0, np.int64), np.int64(start)
    # records are at least 8 bytes: no growth (rebinding arrays in a loop is slow)
    out = np.empty(max(end - start, 0) // 8 + 1, np.int64)
    k = 0
    pos = np.int64(start)
    while True:
        out[k] = pos
        k += 1
        size = np.int64(buf[pos + 6]) | (np.int64(buf[pos + 7]) << 8)
        nxt = pos + size
        if size <= 0 or nxt >= end - 7 or (nxt - start) % 8:
            break
        s2 = np.int64(buf[nxt + 6]) | (np.int64(buf[nxt + 7]) << 8)
        t2 = (
            np.int64(buf[nxt])
            | (np.int64(buf[nxt + 1]) << 8)
            | (np.int64(buf[nxt + 2]) << 16)
            | (np.int64(buf[nxt + 3]) << 24)
        )
        if s2 < 8 or s2 % 8 or t2 <= 0 or t2 >= 128 or nxt + s2 > end:
            break
        pos = nxt
    return out[:k].copy(), pos + (np.int64(buf[pos + 6]) | (np.int64(buf[pos + 7]) << 8))


# the compiled functions every perf.data read runs (for the first-run compile notice)
COMPILED = (chain_records, record_headers, sample_fields)
