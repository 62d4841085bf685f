"""The remaining compiled entry points fed hostile input directly: ring-buffer page walking,
integer gathers, the pools, and the JSON writers' documented size bounds (which every
caller sizes its buffer by). Run with NUMBA_BOUNDSCHECK=1 too: an out-of-bounds access
then raises instead of passing silently."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tracereplay.formats.common import columns
from tracereplay.formats.common import jsonbuf as jb
from tracereplay.formats.perfetto import walk as pf
from tracereplay.formats.tracefs import ring_buffer as rb

PAGE = 4096


def _page(ts: int, records: bytes, flags: int = 0) -> bytes:
    body = struct.pack("<QQ", ts, len(records) | flags) + records
    return body + b"\0" * (PAGE - len(body))


def _data(type_len: int, delta: int, payload: bytes) -> bytes:
    return struct.pack("<I", type_len | delta << 5) + payload


def test_walk_pages_reads_real_records():
    recs = _data(2, 10, b"A" * 8) + _data(0, 5, struct.pack("<I", 12 + 4) + b"B" * 12)
    off, ln, ts, lost_p, _lost_c, page_ts, bad = rb.walk_pages(
        np.frombuffer(_page(1000, recs), np.uint8), PAGE, 16, 8
    )
    assert ln.tolist() == [8, 12] and ts.tolist() == [1010, 1015]
    assert off.tolist() == [16 + 4, 16 + 12 + 8] and bad == 0 and len(lost_p) == 0
    assert page_ts.tolist() == [1000]


@pytest.mark.parametrize("seed", range(6))
def test_walk_pages_on_random_pages_stays_inside_them(seed):
    rng = np.random.default_rng(seed)
    pages = rng.integers(0, 256, PAGE * 8, dtype=np.uint8)
    # plausible commits so the walker goes deep into the garbage records
    for p in range(8):
        pages[p * PAGE + 8 : p * PAGE + 16] = np.frombuffer(
            struct.pack("<Q", int(rng.integers(0, PAGE)) | (int(rng.integers(0, 4)) << 30)), np.uint8
        )
    for data_offset, commit in [(16, 8), (12, 4), (4000, 8), (8000, 8)]:
        off, ln, _ts, lost_p, lost_c, page_ts, _bad = rb.walk_pages(pages, PAGE, data_offset, commit)
        page_of = off // PAGE
        # every record returned lies whole inside its page's data
        assert ((off % PAGE >= data_offset) & (off % PAGE + ln <= PAGE)).all()
        assert (page_of < 8).all() and len(page_ts) == 8 and len(lost_p) == len(lost_c)


@pytest.mark.parametrize("size", [0, 3, 100, PAGE + 7])
def test_walk_pages_on_short_or_ragged_buffers(size):
    buf = np.full(size, 0xFF, np.uint8)
    off, *_rest = rb.walk_pages(buf, PAGE, 16, 8)
    assert len(off) <= max(size // 8, 1)


@pytest.mark.parametrize(("page", "offset", "commit"), [(0, 16, 8), (-4096, 16, 8), (PAGE, -1, 8), (PAGE, 16, 16)])
def test_walk_pages_refuses_impossible_geometry(page, offset, commit):
    with pytest.raises(ValueError):
        rb.walk_pages(np.zeros(PAGE, np.uint8), page, offset, commit)


def test_read_ints_outside_the_buffer_reads_zero_bytes():
    buf = np.frombuffer(b"\x01\x02\x03\x04\x05\x06\x07\x08", np.uint8)
    got = rb.read_ints(buf, np.array([-8, -2, 0, 6, 1 << 40], np.int64), 0, 4, False)
    assert got.tolist() == [0, 0x0201 << 16, 0x04030201, 0x0807, 0]


def test_factorize_and_gather_pool():
    keys = np.array([5, -1, 5, 1 << 62, -1, 7], np.int64)
    codes, uniq = columns.factorize(keys)
    assert uniq[codes].tolist() == keys.tolist()
    pool_off = np.array([0, 2, 2, 5], np.int64)
    pool = np.frombuffer(b"abcde", np.uint8)
    offsets, data = columns.gather_pool(pool_off, pool, np.array([2, 0, 1], np.int32))
    assert data.tobytes() == b"cdeab" and offsets.tolist() == [0, 3, 5, 5]
    with pytest.raises(ValueError, match="index"):
        columns.gather_pool(pool_off, pool, np.array([3], np.int32))
    with pytest.raises(ValueError, match="outside"):
        columns.gather_pool(np.array([0, 9], np.int64), pool, np.array([0], np.int32))
    seen, code = pf.sorted_codes(np.array([3, 3, 1 << 40, -2] * 40, np.int64))
    assert seen[code].tolist() == [3, 3, 1 << 40, -2] * 40


# --- the JSON writers: the bounds their callers size buffers by --------------------------------

_WORST_STRINGS = [
    bytes(range(32)) * 4,  # every control byte: \u00XX, 6 out per 1 in
    b"\xff" * 64,  # each bad byte: U+FFFD, 3 out per 1 in
    b'"\\' * 50,
    "\U0001f600".encode() * 16,
    b"\xe2\x82" * 30,
]


@pytest.mark.parametrize("raw", _WORST_STRINGS)
def test_string_writers_fit_in_six_bytes_per_byte_plus_two(raw):
    buf = np.frombuffer(raw, np.uint8)
    for writer in (jb.put_str, jb.put_str_utf8, jb.put_text):
        out = np.zeros(6 * len(raw) + 2, np.uint8)
        end = writer(out, 0, buf, 0, len(raw))
        assert end <= len(out)
    assert jb.utf8_valid(buf, 0, len(raw)) == _valid(raw)


def _valid(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("v", [0, 9, 10, 99, 100, 2**63 - 1, 2**64 - 1])
def test_number_writers_fit_in_twenty_one_bytes(v):
    out = np.zeros(21, np.uint8)
    end = jb.put_uint(out, 0, np.uint64(v))
    assert out[:end].tobytes().decode() == str(v)
    signed = v - (1 << 64) if v >= 1 << 63 else v
    end = jb.put_int(out, 0, signed)
    assert out[:end].tobytes().decode() == str(signed)
    end = jb.put_hex16(out, 0, np.uint64(v))
    assert out[:end].tobytes().decode() == f'"{v:016x}"'
    assert jb.put_bool(out, 0, bool(v)) <= 5 and jb.put_null(out, 0) == 4
