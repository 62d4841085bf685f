"""trace.dat reader: counts vs trace-cmd report, parity with the text of the same ring buffer,
real public files, and bad input (truncation, corruption) giving clear errors."""

from __future__ import annotations

import itertools
import json
import os
import zlib
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from conftest import FIXTURES, SHARED

from tracereplay.errors import TraceFormatError
from tracereplay.readers import open_trace, sniff
from tracereplay.readers.ftrace_text import FtraceTextReader
from tracereplay.readers.trace_dat import TraceDatReader

PAIRS = [
    ("pinned-threads-6.18", "pinned-threads-6.18.txt"),
    ("kvm-pinned-6.18", "kvm-pinned-6.18.txt.gz"),
]
COLUMNS = ["ts", "cpu", "pid", "tgid", "comm", "system", "name", "args", "stack"]
PUBLIC = Path(os.environ.get("TRACEREPLAY_SHARED", SHARED)) / "traces" / "public"


def read_all(reader) -> pl.DataFrame:
    return pl.from_arrow(pa.Table.from_batches(list(reader.batches())))  # type: ignore[return-value]


@pytest.mark.parametrize("stem", [p[0] for p in PAIRS])
def test_counts_equal_trace_cmd_report(stem):
    reference = json.loads((FIXTURES / f"{stem}.counts.json").read_text())
    reader = TraceDatReader(str(FIXTURES / f"{stem}.dat"))
    df = read_all(reader)
    assert dict(df.group_by("name").len().iter_rows()) == reference["event_counts"]
    assert len(reader.meta.lost) == reference["lost_events"]
    assert reader.meta.kernel_release == "6.18.44-fc-v669"
    assert reader.meta.clock == "local"
    assert reader.meta.cpus == 2
    assert df["seq"].to_list() == list(range(df.height))


def _normalized(df: pl.DataFrame) -> pl.DataFrame:
    return (
        df.select(COLUMNS)
        .with_columns(stack=pl.col("stack").list.join("|"))
        .sort(["ts", "cpu", "pid", "name", "args"])
    )


@pytest.mark.parametrize(("stem", "text"), PAIRS)
def test_format_parity_with_tracefs_text(stem, text):
    """Same ring buffer, two formats: identical rows except what the text cannot show.

    Documented differences: tracefs text prints timestamps rounded to the
    microsecond (ns2usecs adds 500 ns), so binary ns are rounded the same way;
    ``csd_queue_cpu``'s ``csd`` is printed with ``%p`` (hashed) in text, raw in
    the .dat, so that one key is dropped before comparing.
    """
    dat = read_all(TraceDatReader(str(FIXTURES / f"{stem}.dat")))
    txt = read_all(FtraceTextReader(str(FIXTURES / text)))
    dat = dat.with_columns(ts=(pl.col("ts") + 500) // 1000 * 1000)
    drop_csd = pl.col("args").str.replace(r',"csd":"[0-9a-f]+"\}$', "}")
    a = _normalized(dat.with_columns(args=drop_csd))
    b = _normalized(txt.with_columns(args=drop_csd))
    assert a.height == b.height
    for col in COLUMNS:
        same = a[col].eq_missing(b[col])
        assert same.all(), (
            col,
            a.filter(~same).head(3).to_dicts(),
            b.filter(~same).head(3).to_dicts(),
        )
    # the stacks really are there (kvm-pinned recorded a stacktrace trigger)
    if stem.startswith("kvm"):
        stacks = dat.filter(pl.col("name") == "kvm_unmap_hva_range")["stack"]
        assert stacks.null_count() == 0
        assert stacks[0][0] == "trace_event_raw_event_kvm_unmap_hva_range"


def test_sniff_and_open(tmp_path):
    path = str(FIXTURES / "pinned-threads-6.18.dat")
    assert sniff(path, Path(path).read_bytes()[:64]) == "trace-dat"
    assert isinstance(open_trace(path), TraceDatReader)


# (file, total events, selected counts) from ../shared/traces/public/PROVENANCE.md
PUBLIC_COUNTS = {
    "hip24-host-6.5-kvm.dat": (
        7792,
        {"kvm_entry": 1558, "kvm_exit": 1558, "kvm_pv_tlb_flush": 477},
    ),
    "hip24-host-tsc2nsec.dat": (11721, {"kvm_entry": 5861, "kvm_exit": 5860}),
    "hip24-guest-5.15-tlb.dat": (
        90029,
        {"sched_switch": 3835, "tlb_flush": 2204, "page_fault_user": 64},
    ),
    "hip24-guest-5.15-taskset.dat": (
        226013,
        {"sched_switch": 7961, "tlb_flush": 5907, "page_fault_user": 64},
    ),
}


@pytest.mark.parametrize("name", sorted(PUBLIC_COUNTS))
def test_public_trace_cmd_3_2_files(name):
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"{path} absent (set TRACEREPLAY_SHARED to the shared/ directory)")
    total, selected = PUBLIC_COUNTS[name]
    reader = TraceDatReader(str(path))
    df = read_all(reader)
    counts = dict(df.group_by("name").len().iter_rows())
    assert df.height == total
    assert {k: counts.get(k) for k in selected} == selected
    assert reader.meta.recorder_options["compression"].startswith("zlib")
    assert not reader.meta.partial


def _decode(path: str) -> TraceDatReader:
    reader = TraceDatReader(path)
    for _ in reader.batches():
        pass
    return reader


def test_every_truncation_point_is_an_error_or_partial(tmp_path):
    data = (FIXTURES / "pinned-threads-6.18.dat").read_bytes()
    # a dense sample: every byte of the header, then strides through sections and data
    cuts = sorted({*range(0, 64, 2), *range(64, len(data), 4999), len(data) - 1})
    out = tmp_path / "cut.dat"
    for cut in cuts:
        out.write_bytes(data[:cut])
        try:
            reader = _decode(str(out))
        except TraceFormatError as e:
            assert str(out) in str(e)
            continue
        assert reader.meta.partial or cut >= len(data) - 4096, cut


def test_corrupt_compressed_chunk_is_partial(tmp_path):
    reader = TraceDatReader(str(FIXTURES / "pinned-threads-6.18.dat"))
    reader.parse()
    cpu = reader.buffers[0].cpus[0]
    data = bytearray((FIXTURES / "pinned-threads-6.18.dat").read_bytes())
    at = cpu.offset + 4 + 8 + 20  # inside the first zstd chunk of CPU 0
    data[at : at + 16] = b"\xff" * 16
    bad = tmp_path / "bad.dat"
    bad.write_bytes(bytes(data))
    reader = _decode(str(bad))
    assert reader.meta.partial
    assert any("corrupt" in w or "chunk" in w for w in reader.meta.warnings)


def test_unparseable_format_and_unknown_ids_are_counted(tmp_path):
    reader = TraceDatReader(str(FIXTURES / "pinned-threads-6.18.dat"))
    reader.parse()
    # forget the format of tlb_flush: its records become unknown ids
    tlb = next(i for i, (t, _s) in reader.decoder._raw_formats.items() if "name: tlb_flush" in t)
    reader.decoder._raw_formats[tlb] = ("name: tlb_flush\nID: x\n", "tlb")
    df = read_all(reader)
    assert "tlb_flush" not in df["name"].to_list()
    assert reader.meta.partial
    assert any("unknown event id" in w for w in reader.meta.warnings)


def test_garbage_after_magic_is_a_format_error(tmp_path):
    bad = tmp_path / "junk.dat"
    bad.write_bytes(b"\x17\x08\x44tracing7\x00" + zlib.compress(b"x" * 100))
    with pytest.raises(TraceFormatError, match=r"junk\.dat"):
        _decode(str(bad))


@pytest.mark.parametrize(
    "raw",
    [
        b"plain",
        b'quote " and \\ backslash\ttab',
        b"\x13control\x01\x7f",
        "h\u00e9llo \u20ac \U0001f600".encode(),
        b"bad \xff\xfe end",
        b"cut \xe2\x82",
        b"surrogate \xed\xa0\x80 overlong \xc0\xaf \xf4\x90\x80\x80",
        b"\xe0\x80\xaf\xf0\x8f\xbf\xbf",
    ],
)
def test_record_strings_are_json_with_python_utf8_repair(raw):
    """Record strings become valid JSON; ill-formed UTF-8 is replaced as Python does."""
    import numpy as np

    from tracereplay.formats.common.jsonbuf import put_str_utf8

    buf = np.frombuffer(raw, np.uint8)
    out = np.zeros(6 * len(raw) + 2, np.uint8)
    end = put_str_utf8(out, 0, buf, 0, len(raw))
    assert json.loads(out[:end].tobytes().decode()) == raw.decode("utf-8", "replace")


def test_batches_are_whole_duckdb_row_groups():
    from tracereplay.formats.common.columns import rechunk

    batch = pa.RecordBatch.from_pydict({"x": list(range(1000))})
    sizes = [b.num_rows for b in rechunk(iter([batch.slice(0, 300), batch.slice(300)]), 256)]
    assert sizes == [256, 256, 256, 232]
    merged = pa.Table.from_batches(list(rechunk(iter([batch]), 256)))
    assert merged.column("x").to_pylist() == list(range(1000))
    # short and long batches, empty ones between: the same rows, whole groups but the last
    cuts = [0, 10, 10, 100, 700, 701, 1000]
    parts = [batch.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
    out = list(rechunk(iter(parts), 256))
    assert [b.num_rows for b in out] == [256, 256, 256, 232]
    assert pa.Table.from_batches(out).column("x").to_pylist() == list(range(1000))
    # a row group inside one batch is a slice of it, not a copy
    inside = list(rechunk(iter([batch.slice(0, 100), batch.slice(100)]), 256))[1]
    assert inside.column("x").buffers()[1].address == batch.column("x").buffers()[1].address
