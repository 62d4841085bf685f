"""trace.dat writer: round trips through our reader, trace-cmd report acceptance, synth and
convert to .dat, unknown events, page encoding edge cases, atomic output and errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from conftest import FIXTURES, run_cli

from tracereplay.atomic import OutputExistsError
from tracereplay.readers.base import LostEvents, TraceMeta
from tracereplay.readers.ftrace_text import FtraceTextReader
from tracereplay.readers.trace_dat import TraceDatReader
from tracereplay.schema import EVENT_SCHEMA
from tracereplay.synth import BUILTIN, generate, load_scenario
from tracereplay.writers import write_trace_dat

COLUMNS = ["ts", "cpu", "pid", "tgid", "comm", "system", "name", "args", "stack"]
TEXTS = ["pinned-threads-6.18.txt", "kvm-pinned-6.18.txt.gz"]
DATS = ["pinned-threads-6.18.dat", "kvm-pinned-6.18.dat"]
TRACE_CMD = shutil.which("trace-cmd")
needs_trace_cmd = pytest.mark.skipif(
    TRACE_CMD is None, reason="trace-cmd is not installed: cannot check that it reads our files"
)


def read_all(reader) -> pl.DataFrame:
    return pl.from_arrow(pa.Table.from_batches(list(reader.batches())))  # type: ignore[return-value]


def _normalized(df: pl.DataFrame) -> pl.DataFrame:
    return (
        df.select(COLUMNS)
        .with_columns(stack=pl.col("stack").list.join("|"))
        .sort(["cpu", "ts", "name", "args"])
    )


def assert_same_rows(a: pl.DataFrame, b: pl.DataFrame, columns: list[str] = COLUMNS) -> None:
    a, b = _normalized(a), _normalized(b)
    assert a.height == b.height
    for col in columns:
        same = a[col].eq_missing(b[col])
        assert same.all(), (
            col,
            a.filter(~same).head(3).to_dicts(),
            b.filter(~same).head(3).to_dicts(),
        )


def report_counts(path: str) -> Counter[str]:
    """Events per name as ``trace-cmd report`` prints them (stderr must be clean)."""
    run = subprocess.run([TRACE_CMD or "trace-cmd", "report", path], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert not run.stderr.strip(), run.stderr[:500]
    counts: Counter[str] = Counter()
    for line in run.stdout.splitlines():
        parts = line.split(": ", 2)
        if len(parts) >= 2 and "[" in parts[0]:
            counts[parts[1].split(":")[0].strip()] += 1
    return counts


@pytest.mark.parametrize("compression", ["zstd", "none"])
@pytest.mark.parametrize("source", TEXTS + DATS)
def test_real_fixtures_round_trip(source, compression, tmp_path):
    """Every column of every row comes back (tgid too: both recordings see the forks)."""
    out = str(tmp_path / "out.dat")
    result = write_trace_dat(str(FIXTURES / source), out, compression=compression)
    assert result.warnings == []
    path = str(FIXTURES / source)
    reader = FtraceTextReader(path) if ".txt" in source else TraceDatReader(path)
    src = read_all(reader)
    back = TraceDatReader(out)
    got = read_all(back)
    assert result.events == got.height
    assert_same_rows(src, got)
    # text has no uname: the release is only known from a .dat source, and no made-up
    # one is written (it would hide the manifest's kernel from the replay's kernel model)
    assert back.meta.kernel_release == reader.meta.kernel_release
    assert ("uname" in back.meta.recorder_options) == (reader.meta.kernel_release is not None)
    assert back.meta.clock == (reader.meta.clock or "local") == "local"
    assert back.meta.cpus == 2
    assert back.meta.recorder_options["trace_dat_version"] == 7
    assert back.meta.recorder_options["compression"].split()[0] == compression
    if "kvm" in source:
        stacks = got.filter(pl.col("name") == "kvm_unmap_hva_range")["stack"]
        assert stacks.null_count() == 0
        assert stacks[0][0] == "trace_event_raw_event_kvm_unmap_hva_range"


@needs_trace_cmd
@pytest.mark.parametrize("compression", ["zstd", "none"])
@pytest.mark.parametrize("source", TEXTS)
def test_trace_cmd_report_reads_our_files(source, compression, tmp_path):
    out = str(tmp_path / "out.dat")
    write_trace_dat(str(FIXTURES / source), out, compression=compression)
    ours = dict(read_all(TraceDatReader(out)).group_by("name").len().iter_rows())
    assert dict(report_counts(out)) == ours
    reference = json.loads((FIXTURES / f"{source.split('.txt')[0]}.counts.json").read_text())
    assert ours == reference["event_counts"]
    # the real print formats: symbolic names, symbols from our kallsyms
    text = subprocess.run([TRACE_CMD or "", "report", out], capture_output=True, text=True).stdout
    assert "reason=flush on task switch (0)" in text
    assert "func=flush_tlb_func" in text or "func=sched_ttwu_pending" in text


@pytest.mark.parametrize("name", sorted(set(BUILTIN) - {"huge-guest"}))
def test_synth_scenarios_to_dat(name, tmp_path):
    sc = load_scenario(name)
    result = generate(sc, str(tmp_path / f"{name}.dat"))
    txt = generate(sc, str(tmp_path / f"{name}.txt"))
    back = TraceDatReader(result.path)
    got = read_all(back)
    assert dict(got.group_by("name").len().iter_rows()) == dict(result.event_counts)
    assert sum(x.count or 0 for x in back.meta.lost) == result.lost_events
    # identical rows except tgid: trace.dat has no tgid per event and our reader infers it
    # from fork/exec (threads created before the trace read back as their own group)
    assert_same_rows(read_all(FtraceTextReader(txt.path)), got, [c for c in COLUMNS if c != "tgid"])
    if TRACE_CMD and name == "vfio-partial-pin":
        assert dict(report_counts(result.path)) == dict(result.event_counts)


def test_lost_events_are_missed_pages(tmp_path):
    from tracereplay.synth.scenario import parse_scenario

    data = dict(BUILTIN["vfio-partial-pin"])
    data["lost"] = [{"cpu": 1, "at": 1.0, "count": 500}]
    result = generate(parse_scenario(data), str(tmp_path / "lost.dat"))
    reader = TraceDatReader(result.path)
    read_all(reader)
    assert [(x.cpu, x.count) for x in reader.meta.lost] == [(1, result.lost_events)]
    if TRACE_CMD:
        text = subprocess.run([TRACE_CMD, "report", result.path], capture_output=True, text=True)
        assert f"CPU:1 [{result.lost_events} EVENTS DROPPED]" in text.stdout


class _Rows:
    """A reader over hand-made canonical rows."""

    def __init__(self, rows: list[dict], lost: list[LostEvents] | None = None) -> None:
        self.meta = TraceMeta(path="rows", format="test", clock="mono", cpus=2)
        self.meta.kernel_release = "6.18.0"
        self.meta.lost = lost or []
        self.rows = rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        full = [
            {k: r.get(k) for k in EVENT_SCHEMA.names} | {"seq": i} for i, r in enumerate(self.rows)
        ]
        yield pa.RecordBatch.from_pylist(full, schema=EVENT_SCHEMA)


def _row(ts: int, name: str, args: dict | None, system: str | None, **kw) -> dict:
    base = {"ts": ts, "cpu": 0, "pid": 42, "tgid": 42, "comm": "worker", "name": name,
            "system": system, "args": None if args is None else json.dumps(args, separators=(",", ":"))}  # fmt: skip
    return base | kw


def test_unknown_events_long_records_and_time_extends(tmp_path):
    long = "x" * 300  # a record over 112 bytes: type_len 0 with a length word
    rows = [
        _row(1_000, "my_event", {"a": 1, "b": -5, "s": "hi"}, "mysys"),
        _row(1_000 + 3_000_000_000, "my_event", {"a": 2, "b": 7, "s": long}, "mysys"),  # > 2^27
        _row(5_000_000_000, "tlb_flush", {"reason": 3, "pages": 1}, "tlb", cpu=1, pid=7, tgid=7),
        _row(9_000_000_000, "tlb_flush", {"reason": 0, "pages": 18446744073709551615}, "tlb"),
    ]
    out = str(tmp_path / "u.dat")
    write_trace_dat(_Rows(rows), out)  # type: ignore[arg-type]
    got = read_all(TraceDatReader(out))
    src = read_all(_Rows(rows))
    assert_same_rows(src, got)
    if TRACE_CMD:
        assert dict(report_counts(out)) == {"my_event": 2, "tlb_flush": 2}


def test_fields_of_older_kernels_stay_absent(tmp_path):
    args = {"succeeded": 3, "failed": 0, "thp_succeeded": 0, "thp_failed": 0, "thp_split": 0,
            "large_folio_split": None, "mode": "MIGRATE_ASYNC", "reason": "numa_misplaced"}  # fmt: skip
    rows = [_row(1_000, "mm_migrate_pages", args, "migrate")]
    out = str(tmp_path / "m.dat")
    write_trace_dat(_Rows(rows), out)  # type: ignore[arg-type]
    assert_same_rows(read_all(_Rows(rows)), read_all(TraceDatReader(out)))
    if TRACE_CMD:
        assert dict(report_counts(out)) == {"mm_migrate_pages": 1}


def test_refuses_to_overwrite_and_leaves_no_temp_files(tmp_path):
    out = tmp_path / "o.dat"
    out.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        write_trace_dat(str(FIXTURES / TEXTS[0]), str(out))
    assert out.read_bytes() == b"keep"
    write_trace_dat(str(FIXTURES / TEXTS[0]), str(out), force=True)
    assert out.read_bytes()[:10] == b"\x17\x08\x44tracing"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.dat"]


def test_convert_cli_to_dat(tmp_path):
    out = str(tmp_path / "k.dat")
    r = run_cli("convert", str(FIXTURES / "kvm-pinned-6.18.txt.gz"), "-o", out)
    assert r.exit_code == 0, r.stderr
    assert "pages" in r.stderr and Path(out + ".manifest.toml").exists()
    r = run_cli("convert", str(FIXTURES / "kvm-pinned-6.18.txt.gz"), "-o", out)
    assert r.exit_code == 3 and "already exists" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01garbage")
    r = run_cli("convert", str(bad), "-o", str(tmp_path / "b.dat"))
    assert r.exit_code != 0 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.dat").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tracereplay-")]


def test_a_record_larger_than_a_page_is_a_one_line_error(tmp_path):
    from tracereplay.writers.trace_dat import TraceDatWriteError

    rows = [_row(1_000, "my_event", {"s": "x" * 5000}, "mysys")]
    out = tmp_path / "big.dat"
    with pytest.raises(TraceDatWriteError, match="does not fit a page"):
        write_trace_dat(_Rows(rows), str(out))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_the_release_placeholder_of_older_writers_is_no_release(tmp_path):
    """tracereplay 0.2 wrote "Linux tracereplay unknown x86_64" for a source without a
    release: read back, that is no release, so the manifest's kernel decides."""
    rows = [_row(1_000, "tlb_flush", {"reason": 3, "pages": 1}, "tlb")]
    source = _Rows(rows)
    source.meta.kernel_release = "unknown"
    out = str(tmp_path / "old.dat")
    write_trace_dat(source, out)  # type: ignore[arg-type]
    back = TraceDatReader(out)
    read_all(back)
    assert back.meta.recorder_options["uname"] == "Linux tracereplay unknown x86_64"
    assert back.meta.kernel_release is None
