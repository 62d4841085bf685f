"""perf.data fixtures damaged as issue 13 describes: sample sizes 0 / 0xffff, byte flips in
samples, pipe-mode truncations, a HEADER_TRACING_DATA size of 0x7fffffff. Every one ends
in a clean error or a flagged partial result; the compiled sample loops read only inside
each sample (run with NUMBA_BOUNDSCHECK=1 too)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES

from tracereplay.errors import TraceFormatError
from tracereplay.formats.perf import records
from tracereplay.readers import perf_data as pd
from tracereplay.readers.perf_data import PerfDataReader

FILE = FIXTURES / "perf-tlb-callchain-6.18.data"
PIPE = FIXTURES / "perf-tlb-pipe-6.18.data"


def _records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, size) of every record, walked from the header (perf.data-file-format.txt)."""
    hsize = struct.unpack_from("<Q", data, 8)[0]
    if hsize == 16:
        pos, end = 16, len(data)
    else:
        d_off, d_size = struct.unpack_from("<QQ", data, 40)
        pos, end = d_off, d_off + d_size
    out = []
    while pos + 8 <= end:
        rtype, _misc, size = struct.unpack_from("<IHH", data, pos)
        out.append((pos, rtype, size))
        if rtype == pd.REC_TRACING_DATA:  # the tracing data follows the record, 8-aligned
            tsize = struct.unpack_from("<I", data, pos + 8)[0]
            pos += size + tsize + (-(size + tsize) % 8)
            continue
        pos += size
    return out


def _count(path: Path) -> PerfDataReader:
    reader = PerfDataReader(str(path))
    for _ in reader.batches():
        pass
    return reader


def _outcome(path: Path) -> PerfDataReader | None:
    """The reader when it finished, None after a clean error; anything else fails the test."""
    try:
        return _count(path)
    except TraceFormatError as e:
        assert str(path) in str(e)
        return None


@pytest.fixture(params=[FILE, PIPE], ids=["file", "pipe"])
def src(request) -> Path:
    return request.param


def _samples(data: bytes) -> list[tuple[int, int, int]]:
    return [r for r in _records(data) if r[1] == pd.REC_SAMPLE]


@pytest.mark.parametrize("size", [0, 8, 16, 0xFFFF, 0xFFF8])
@pytest.mark.parametrize("which", [0, 40, -1])
def test_sample_record_size_damage_is_partial(tmp_path, src, size, which):
    """A sample size of 0 or 0xffff raised ValueError (operands could not be broadcast)."""
    data = bytearray(src.read_bytes())
    full = _count(src).meta.event_count
    at = _samples(bytes(data))[which][0]
    struct.pack_into("<H", data, at + 6, size)
    bad = tmp_path / "bad.data"
    bad.write_bytes(bytes(data))
    reader = _outcome(bad)
    if reader is None:  # a clean error: only when nothing before the damage was sound
        assert which == 0
        return
    assert reader.meta.partial and reader.meta.event_count < full
    if which:
        assert reader.meta.event_count >= 40


def test_byte_flips_in_sample_records_never_escape(tmp_path, src):
    """9 of 40 flips ended in an internal error; each must be clean now."""
    data = src.read_bytes()
    samples = _samples(data)
    bad = tmp_path / "flip.data"
    outcomes = {"error": 0, "partial": 0, "whole": 0}
    for k in range(60):
        at, _t, size = samples[(k * 37) % len(samples)]
        mutated = bytearray(data)
        mutated[at + (k * 13) % size] ^= 1 << (k % 8)
        bad.write_bytes(bytes(mutated))
        reader = _outcome(bad)
        key = "error" if reader is None else "partial" if reader.meta.partial else "whole"
        outcomes[key] += 1
    assert outcomes["partial"] > 0, outcomes


def test_callchain_counts_outside_the_sample_are_malformed(tmp_path):
    data = bytearray(FILE.read_bytes())
    full = _count(FILE).meta.event_count
    reader = PerfDataReader(str(FILE))
    reader.parse()
    st = reader.attrs[0].sample_type
    assert st & pd.S_CALLCHAIN
    # the callchain's nr follows the fixed u64 fields present before it
    fixed = sum(
        1 for b in (pd.S_IDENTIFIER, pd.S_IP, pd.S_TID, pd.S_TIME, pd.S_ADDR, pd.S_ID) if st & b
    )
    fixed += sum(1 for b in (pd.S_STREAM_ID, pd.S_CPU, pd.S_PERIOD) if st & b)
    samples = _samples(bytes(data))
    for (at, _t, _s), nr in zip(samples[:3], [1 << 63, (1 << 64) - 1, 5000], strict=True):
        struct.pack_into("<Q", data, at + 8 + 8 * fixed, nr)
    bad = tmp_path / "nr.data"
    bad.write_bytes(bytes(data))
    reader = _count(bad)
    assert reader.meta.partial and reader.meta.event_count == full - 3
    assert any("malformed sample" in w for w in reader.meta.warnings)


def test_empty_window_of_callchains():
    reader = PerfDataReader(str(FILE))
    reader.parse()
    empty = np.zeros(0, np.int64)
    assert len(reader._callchains(reader._buf(), empty, empty)) == 0


def test_pipe_truncation_at_every_record_boundary_is_flagged(tmp_path):
    """Cuts gave 0 events with exit 0, or 21 of 101 events without a word."""
    data = PIPE.read_bytes()
    records = _records(data)
    bad = tmp_path / "cut.data"
    silent = []
    cuts = sorted(c for c in {r[0] for r in records[1:]} | {r[0] + 12 for r in records} if c < len(data))
    for cut in cuts:
        bad.write_bytes(data[:cut])
        reader = _outcome(bad)
        if reader is not None and not reader.meta.partial:
            silent.append(cut)
    # perf writes FINISHED_ROUND between rounds too: a cut right after one cannot be told
    rounds = {r[0] + r[2] for r in records if r[1] == pd.REC_FINISHED_ROUND}
    assert set(silent) <= rounds, sorted(set(silent) - rounds)


def test_pipe_tracing_data_size_that_lies_is_not_zero_events(tmp_path):
    """A HEADER_TRACING_DATA size of 0x7fffffff read 0 events silently."""
    data = bytearray(PIPE.read_bytes())
    full = _count(PIPE).meta.event_count
    at = next(r[0] for r in _records(bytes(data)) if r[1] == pd.REC_TRACING_DATA)
    struct.pack_into("<I", data, at + 8, 0x7FFFFFFF)
    bad = tmp_path / "tsize.data"
    bad.write_bytes(bytes(data))
    reader = _count(bad)
    assert reader.meta.event_count == full
    assert any("tracing data record states" in w for w in reader.meta.warnings)


def test_file_cut_inside_the_feature_sections_is_partial(tmp_path):
    data = FILE.read_bytes()
    d_off, d_size = struct.unpack_from("<QQ", data, 40)
    bad = tmp_path / "features.data"
    for cut in range(d_off + d_size + 1, len(data), 997):
        bad.write_bytes(data[:cut])
        reader = _outcome(bad)
        assert reader is None or reader.meta.partial, cut


def test_lost_record_too_short_or_with_values_out_of_range(tmp_path):
    data = bytearray(FILE.read_bytes())
    reader = PerfDataReader(str(FILE))
    reader.parse()
    samples = _samples(bytes(data))
    # turn two samples into LOST records: one too short, one with huge id/count
    at0, _t, _s = samples[0]
    struct.pack_into("<IHH", data, at0, pd.REC_LOST, 0, 16)
    struct.pack_into("<IHH", data, at0 + 16, 68, 0, samples[0][2] - 16)  # rest: FINISHED_ROUND
    at1, _t, size1 = samples[1]
    struct.pack_into("<IHH", data, at1, pd.REC_LOST, 0, size1)
    struct.pack_into("<QQ", data, at1 + 8, 1, (1 << 64) - 1)
    bad = tmp_path / "lost.data"
    bad.write_bytes(bytes(data))
    reader = _count(bad)
    assert reader.meta.partial
    assert all(x.count is None or x.count < 1 << 63 for x in reader.meta.lost)
    assert all(x.ts is None or x.ts < 1 << 63 for x in reader.meta.lost)


# --- the compiled loops fed directly ---------------------------------------------------------


def test_sample_fields_reads_only_inside_each_sample():
    rng = np.random.default_rng(7)
    buf = rng.integers(0, 256, 4096, dtype=np.uint8)
    words = buf.view("<u8")
    starts = np.array([0, 8, 4000, 4088, 4090, -8, 1 << 40, 16], np.int64)
    sizes = np.array([0, 0xFFFF, 96, 8, 64, 64, 64, -3], np.int64)
    for callchain in (False, True):
        layout = records.SampleLayout(16, 24, 32, 48, callchain)
        *_fields, cc_nr, raw_len = records.sample_fields(buf, words, starts, sizes, layout)
        # too short for its fields, outside the buffer, or a negative size: malformed
        assert (raw_len[[0, 3, 4, 5, 6, 7]] == -1).all()
        assert (cc_nr >= 0).all()


def test_chain_and_headers_on_garbage():
    rng = np.random.default_rng(3)
    buf = rng.integers(0, 256, 1000, dtype=np.uint8)
    for start, end in [(0, 1000), (996, 1000), (-8, 100), (0, 1 << 40), (992, 2000)]:
        offs, _end = records.chain_records(buf, start, end)
        assert ((offs >= 0) & (offs + 8 <= len(buf))).all()
    rtype, size = records.record_headers(buf, buf[:1000 // 8 * 8].view("<u8"), np.array([0, 5, 996, -3, 5000]))
    assert len(rtype) == len(size) == 5
