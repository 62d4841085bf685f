"""Perfetto traces made from the text fixture (``tracereplay convert``), damaged as issue 13
describes: byte flips end in an error naming the file and offset or a flagged partial
result; compressed-packet and oversized-packet bombs stay under 1 GiB of RSS; the
compiled walkers and renderer stay inside their buffers (run with NUMBA_BOUNDSCHECK=1)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard
from conftest import FIXTURES, run_cli
from isolated import read_isolated

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common.inflate import ENV_MAX, ENV_RATIO
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto import walk as pf
from tracereplay.formats.perfetto.protowire import len_field, tag_bytes, varint_bytes, varint_field
from tracereplay.readers.perfetto import PerfettoReader

EVENTS = 10_778
MIB = 1 << 20


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pf") / "t.perfetto-trace"
    src = FIXTURES / "pinned-threads-6.18.txt"
    assert run_cli("convert", str(src), "-o", str(out)).exit_code == 0
    return out


def _read(path: Path) -> PerfettoReader:
    reader = PerfettoReader(str(path))
    for _ in reader.batches():
        pass
    return reader


def test_byte_flips_end_in_a_named_error_or_a_flagged_result(tmp_path, trace):
    data = trace.read_bytes()
    bad = tmp_path / "flip.perfetto-trace"
    for k in range(80):
        mutated = bytearray(data)
        at = (k * 104_729) % len(data)
        mutated[at] ^= 0xFF if k % 2 else 0x80
        bad.write_bytes(bytes(mutated))
        try:
            reader = _read(bad)
        except TraceFormatError as e:
            assert str(bad) in str(e), e
            continue
        assert reader.meta.event_count <= EVENTS + 50  # a flip may split, not multiply


def test_damaged_descriptor_field_names_still_give_valid_json(tmp_path, trace):
    """A flipped byte in a generic event descriptor put a raw control character into the
    args keys: 'SQL: Invalid Input Error: Malformed JSON' in analyze, no file named."""
    import json

    data = trace.read_bytes()
    assert data.count(b"callback") > 0
    bad = tmp_path / "names.perfetto-trace"
    bad.write_bytes(data.replace(b"callback", b'\x1d"\\llbac'))
    reader = PerfettoReader(str(bad))
    keys = set()
    for batch in reader.batches():
        for args in batch.column("args").to_pylist():
            keys |= set(json.loads(args))
    assert '\x1d"\\llbac' in keys


def _unmap(ts: int, pid: int) -> bytes:
    """A typed kvm_unmap_hva_range FtraceEvent (FtraceEvent field 398: end 1, start 2)."""
    body = varint_field(1, 0x7F0010000000) + varint_field(2, 0x7F0000000000)
    return varint_field(1, ts) + varint_field(2, pid) + len_field(398, body)


def _bundle(cpu: int, *events: bytes) -> bytes:
    bundle = varint_field(ps.B_CPU, cpu) + b"".join(len_field(ps.B_EVENT, e) for e in events)
    return len_field(1, len_field(ps.PKT_FTRACE_EVENTS, bundle))


@pytest.mark.parametrize(
    ("cpu", "ts", "pid", "kept"),
    [
        (1 << 40, 1000, 42, 2),  # the damaged bundle is skipped
        (1, (1 << 64) - 5, 42, 3),  # the event is dropped
        (1, 1000, 1 << 40, 4),  # the pid is null
    ],
)
def test_values_beyond_their_columns_are_dropped_or_null_and_flagged(tmp_path, cpu, ts, pid, kept):
    """A bundle cpu, event pid or timestamp of 2^40 .. 2^64 wrapped into the int32 / int64
    columns (and failed later in SQL without naming the file)."""
    path = tmp_path / "v.perfetto-trace"
    good = _bundle(0, _unmap(10, 7), _unmap(20, 7))
    path.write_bytes(good + _bundle(cpu, _unmap(ts, pid), _unmap(2000, 8)))
    reader = PerfettoReader(str(path))
    rows = [r for b in reader.batches() for r in b.to_pylist()]
    assert reader.meta.partial and len(rows) == kept
    assert all(r["ts"] >= 0 and (r["pid"] is None or r["pid"] < 1 << 31) for r in rows)
    assert all(0 <= r["cpu"] < 1 << 16 for r in rows)


def _filler(total: int) -> bytes:
    """``total`` bytes of valid packets (each one unknown field of 122 zero bytes)."""
    one = len_field(1, len_field(900, b"\0" * 122))
    return one * (total // len(one))


@pytest.fixture(scope="module")
def inner_gib() -> bytes:
    return _filler(64 * MIB)


def _stream(compress, block: bytes, repeat: int) -> bytes:
    return b"".join([*(compress.compress(block) for _ in range(repeat)), compress.flush()])


@pytest.mark.parametrize("codec", ["deflate", "zstd"])
def test_compressed_packets_bomb_is_partial_in_bounded_memory(tmp_path, trace, inner_gib, codec):
    """Perfetto compressed_packets of 1 GiB reached 2.3 GB of RSS."""
    if codec == "deflate":
        blob = _stream(zlib.compressobj(9), inner_gib, 16)
        field = ps.PKT_COMPRESSED
    else:
        blob = _stream(zstandard.ZstdCompressor(level=3).compressobj(), inner_gib, 16)
        field = ps.PKT_ZSTD_COMPRESSED
    assert len(blob) < 8 * MIB  # 1 GiB of packets
    bomb = tmp_path / "bomb.perfetto-trace"
    bomb.write_bytes(trace.read_bytes() + len_field(1, len_field(field, blob)))
    res = read_isolated(str(bomb))
    assert res["peak_rss_mb"] < 1024, res
    assert res["partial"] and res["events"] == EVENTS
    # refused at the size or the ratio limit, whichever comes first, naming its override
    assert any(ENV_MAX in w or ENV_RATIO in w for w in res["warnings"]), res["warnings"]


def test_gz_with_one_gib_packet_is_refused_before_it_is_read(tmp_path, trace):
    """A .gz holding one 2^30-byte packet reached 2.4 GB of RSS."""
    path = tmp_path / "big-packet.perfetto-trace.gz"
    zeros = b"\0" * MIB
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(trace.read_bytes())
        f.write(tag_bytes(1, 2) + varint_bytes(1 << 30))
        for _ in range(1024):
            f.write(zeros)
    res = read_isolated(str(path))
    assert res["peak_rss_mb"] < 1024, res
    assert res["partial"] and res["events"] == EVENTS
    assert any("larger than the limit" in w and ENV_MAX in w for w in res["warnings"])


def test_truncated_compressed_trace_keeps_the_sound_part(tmp_path, trace):
    blob = zstandard.ZstdCompressor().compress(trace.read_bytes())
    path = tmp_path / "cut.perfetto-trace.zst"
    path.write_bytes(blob[:-2000])  # the last block is lost, whole bundles come before it
    reader = _read(path)
    assert reader.meta.partial and 0 < reader.meta.event_count < EVENTS
    assert any("cut short" in w for w in reader.meta.warnings)


# --- the compiled walkers and renderer fed directly ------------------------------------------


def test_walkers_stay_inside_the_buffer():
    rng = np.random.default_rng(11)
    for _ in range(200):
        buf = rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8)
        n = len(buf)
        *_fields, bad_at, code, _d = pf.bundle_fields(buf, int(rng.integers(-5, n)), n + 50)
        assert bad_at < 0 or code != pf.E_NONE
        off = rng.integers(-10, n + 10, 4).astype(np.int64)
        ln = rng.integers(-10, 400, 4).astype(np.int64)
        out = pf.walk_events(buf, off, ln, 64)
        at, code = out[6], out[7]
        assert at < 0 or code != pf.E_NONE


def test_decode_fields_refuses_rows_outside_its_tables():
    buf = np.zeros(64, np.uint8)
    z = np.zeros(1, np.int64)
    one = np.ones(1, np.int64)
    slots = pf.Slots(np.zeros(1, np.uint8), np.zeros(1, np.uint64), np.zeros(1, np.int64))
    events = pf.EventPayloads(z, z, one, z)
    layout = pf.SlotLayout(z, one, one)
    with pytest.raises(ValueError, match="row"):
        pf.decode_fields(buf, np.array([5]), events, layout, slots, 8)
    with pytest.raises(ValueError, match="slots"):
        pf.decode_fields(buf, z, events, layout._replace(n_slots=np.array([3])), slots, 8)
    past = events._replace(off=np.array([60]), length=np.array([40]))
    at, code, _ = pf.decode_fields(buf, z, past, layout, slots, 8)
    assert at >= 0 and code == pf.E_LENGTH  # a payload past the buffer


def test_render_args_cuts_strings_at_the_payload_and_checks_fragment_ids():
    from tracereplay.formats.common.args_json import Fragments
    from tracereplay.formats.perfetto.args import EventRows, SlotProgram, render_args

    buf = np.frombuffer(b"abcdefgh" * 8, np.uint8)
    lit = np.frombuffer(b'"s":,"t":,"p":', np.uint8)
    kind = np.array([pf.K_LEN, pf.K_LEN, pf.K_FRAGMENT], np.uint8)
    val = np.array([0, 1 << 40, 7], np.uint64)  # a string far outside buf, a fragment id too big
    aux = np.array([1 << 30, 50, 0], np.int64)  # lengths far beyond the row's payload
    frags = Fragments(np.array([0, 3]), np.frombuffer(b'"x"', np.uint8), 3)
    prog = SlotProgram(
        np.zeros(1, np.int64),
        np.array([3]),
        np.array([0, 4, 9]),
        np.array([4, 5, 5]),
        np.array([0, 1, 2]),
        np.zeros(3, np.int64),
        lit,
    )
    rows = EventRows(np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([10], np.int64))
    offsets, data = render_args(buf, rows, pf.Slots(kind, val, aux), prog, frags)
    import json

    assert json.loads(data.tobytes()) == {"s": "abcdefghab", "t": "", "p": None}
    assert offsets[-1] == len(data)
