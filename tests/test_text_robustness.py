"""Damaged ftrace text (issue 13): each mutation of the shipped text fixtures ends in a
one-line error naming the file and line (exit 3) or a flagged partial result, never in
wrong values; and memory stays bounded whatever the line lengths.

Fixtures: fixtures/pinned-threads-6.18.txt (tracefs with record-tgid, 10,778 entries)
and fixtures/kvm-pinned-6.18.txt.gz (with a stacktrace trigger and a manifest).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from conftest import FIXTURES, run_cli

from tracereplay.errors import EXIT_INPUT, EXIT_PARTIAL, TraceFormatError
from tracereplay.readers.ftrace_text import FtraceTextReader
from tracereplay.store import ingest

PINNED = FIXTURES / "pinned-threads-6.18.txt"
KVM = FIXTURES / "kvm-pinned-6.18.txt.gz"
PINNED_LINES = PINNED.read_text().splitlines(keepends=True)


def _read(path: Path | str) -> tuple[pl.DataFrame, FtraceTextReader]:
    reader = FtraceTextReader(str(path))
    frame = pl.from_arrow(pa.Table.from_batches(list(reader.batches())))
    assert isinstance(frame, pl.DataFrame)
    return frame, reader


def _events_in(lines: list[str]) -> int:
    """Event lines (every line but comments here: the fixture has no stacks)."""
    return sum(1 for ln in lines if ln.strip() and not ln.startswith("#"))


def _mutant(tmp_path: Path, line: int, old: str, new: str, source: Path = PINNED) -> Path:
    """The fixture with ``old`` replaced by ``new`` on 1-based ``line``."""
    text = gzip.decompress(source.read_bytes()).decode() if source.suffix == ".gz" else None
    lines = text.splitlines(keepends=True) if text is not None else list(PINNED_LINES)
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    out = tmp_path / ("mutant.txt" if source == PINNED else "mutant.txt.gz")
    data = "".join(lines).encode()
    out.write_bytes(gzip.compress(data) if source != PINNED else data)
    return out


# ------------------------------------------------------------------ cut mid-line


@pytest.mark.parametrize(
    ("line", "keep"),
    [
        (4215, "page_fault_user: address=0x7f985f6d"),  # 0x7f985f6d0e48 in the file
        (16, "callback=generic_smp_call_function_single_interrupt+0x0/0x1"),  # .../0x10
        (4215, "page_fault_user:"),  # would be a page_fault_user with {}
    ],
)
def test_text_cut_mid_line_drops_the_cut_line_and_flags_it(tmp_path, line, keep):
    full = PINNED_LINES[line - 1]
    cut = tmp_path / "cut.txt"
    cut.write_text("".join(PINNED_LINES[: line - 1]) + full[: full.index(keep) + len(keep)])
    frame, reader = _read(cut)
    assert frame.height == _events_in(PINNED_LINES[: line - 1])
    assert int(frame["seq"].max()) < line
    assert reader.meta.partial
    assert any(
        w.startswith(f"{cut}:{line}: truncated last line") and keep[-12:] in w
        for w in reader.meta.warnings
    ), reader.meta.warnings
    assert not frame["args"].str.contains("0x7f985f6d[,}]|\\{\\}").any()


def test_a_cut_stack_frame_of_a_compressed_trace_is_dropped(tmp_path):
    lines = gzip.decompress(KVM.read_bytes()).decode().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.startswith(" => task_numa_work"))
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(gzip.compress("".join(lines[:at]).encode() + b" => task_numa_w"))
    frame, reader = _read(cut)
    assert reader.meta.partial
    assert any(f"{cut}:{at + 1}: truncated last line" in w for w in reader.meta.warnings)
    assert "task_numa_w" not in {s for st in frame["stack"].drop_nulls() for s in st}


def test_a_complete_last_line_without_newline_is_kept(tmp_path):
    """tlb_flush's format ends with "(reason)": a line ending so is provably complete
    (a trace_pipe capture stopped between two events)."""
    at = next(i for i, ln in enumerate(PINNED_LINES) if ": tlb_flush: " in ln and i > 20)
    path = tmp_path / "pipe.txt"
    path.write_text("".join(PINNED_LINES[12:at]) + PINNED_LINES[at].rstrip("\n"))
    frame, reader = _read(path)
    assert frame.height == at + 1 - 12 and reader.meta.warnings == []
    assert json.loads(frame["args"][-1])["reason"] >= 0


def test_a_file_of_one_cut_line_is_an_error_naming_it(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("".join(PINNED_LINES[:12]) + PINNED_LINES[22][:-9])
    with pytest.raises(TraceFormatError) as err:
        _read(path)
    assert str(err.value).startswith(f"{path}:13: truncated last line")


# ------------------------------------------------------------------ cut at a line boundary


def test_a_cut_at_a_line_boundary_is_flagged_with_the_count_missing(tmp_path):
    cut = tmp_path / "cut.txt"
    cut.write_text("".join(PINNED_LINES[:4214]))
    frame, reader = _read(cut)
    got = _events_in(PINNED_LINES[:4214])
    assert frame.height == got and reader.meta.partial
    assert any(
        "says 10778 entries" in w and f"{10778 - got} missing" in w for w in reader.meta.warnings
    ), reader.meta.warnings


@pytest.mark.parametrize("fixture", [PINNED, KVM])
def test_complete_fixtures_match_their_entry_counts(fixture):
    """Entries count events and <stack trace> entries (kvm fixture), not frame lines."""
    frame, reader = _read(fixture)
    assert not reader.meta.partial and reader.meta.warnings == []
    assert frame.height == {PINNED: 10778, KVM: 5849}[fixture]


def test_perf_script_header_gives_the_last_sample(tmp_path):
    header = "# ========\n# time of last sample : 860.142993\n# ========\n#\n"
    body = (
        "         python3 27284 [001]   860.142984:  syscalls:sys_exit_madvise: 0x0\n"
        "         python3 27284 [001]   860.142993:      raw_syscalls:sys_exit: NR 28 = -22\n"
    )
    whole = tmp_path / "whole.txt"
    whole.write_text(header + body)
    assert not _read(whole)[1].meta.partial
    cut = tmp_path / "cut.txt"
    cut.write_text(header + body.splitlines(keepends=True)[0])
    reader = _read(cut)[1]
    assert reader.meta.partial and "the end is missing" in reader.meta.warnings[0]


# `trace-cmd report --stat; trace-cmd report` of the kvm fixture's trace.dat, cut to
# three events (the statistics edited to match: one event on CPU 0, two on CPU 1)
TRACE_CMD_STAT = """\
cpus=2

Kernel buffer statistics:
  Note: "entries" are the entries left in the kernel ring buffer and are not
        recorded in the trace data. They should all be zero.

CPU: 0
entries: 0
overrun: 0
commit overrun: 0
bytes: 0
oldest event ts:   994.005933
now ts:   994.019006
dropped events: 0
read events: 1

CPU: 1
entries: 0
overrun: 0
commit overrun: 0
bytes: 0
oldest event ts:   993.983397
now ts:   994.019015
dropped events: 0
read events: 2


CPU0 data recorded at offset=0x1000
    73728 bytes in size
CPU1 data recorded at offset=0x13000
    143360 bytes in size
cpus=2
          python-7549  [001]   984.783691: task_newtask:         pid=7550 comm=python clone_flags=4100 oom_score_adj=0
          python-7549  [001]   984.783700: sched_process_fork:   comm=python pid=7549 child_comm=python child_pid=7550
      tr-kvm-vmm-7550  [000]   984.783812: csd_queue_cpu:        cpu=0 callsite=ttwu_queue_wakelist+0x11d func=sched_ttwu_pending csd=0xffff888102c24538
"""


def test_trace_cmd_buffer_statistics_give_per_cpu_counts(tmp_path):
    """trace-cmd report text has only cpus=N; with --stat it has each CPU's count."""
    whole = tmp_path / "whole.txt"
    whole.write_text(TRACE_CMD_STAT)
    frame, reader = _read(whole)
    assert frame.height == 3 and reader.meta.warnings == [] and reader.meta.cpus == 2
    cut = tmp_path / "cut.txt"
    cut.write_text(TRACE_CMD_STAT.rsplit("\n", 2)[0] + "\n")
    frame, reader = _read(cut)
    assert frame.height == 2 and reader.meta.partial
    assert "CPU 0: 1 missing" in reader.meta.warnings[0]


# ------------------------------------------------------------------ integer ranges


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("[001]", "[99999999999]", "CPU number out of range"),
        ("-7424 ", "-99999999999 ", "pid out of range"),
        ("(   7424)", "(99999999999)", "tgid out of range"),
        ("963.207947:", "99999999999999999999.207697:", "timestamp out of range"),
    ],
)
def test_header_values_out_of_range_are_errors_naming_file_and_line(tmp_path, old, new, what):
    path = _mutant(tmp_path, 23, old, new)
    with pytest.raises(TraceFormatError) as err:
        _read(path)
    assert str(err.value).startswith(f"{path}:23: {what}")
    result = run_cli("ingest", str(path), "-o", str(tmp_path / "x.duckdb"))
    assert result.exit_code == EXIT_INPUT and f"{path}:23: {what}" in result.output


def test_cpu_count_out_of_range_names_the_line(tmp_path):
    path = _mutant(tmp_path, 3, "#P:2", "#P:99999999999")
    result = run_cli("ingest", str(path), "-o", str(tmp_path / "x.duckdb"))
    assert result.exit_code == EXIT_INPUT
    assert f"{path}:3: CPU count out of range" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("line", "old", "new", "field"),
    [
        (23, "address=0x7f98600b5b70", "address=0x123457f98600b5b70", "address"),  # 68 bits
        (23, "error_code=0x14", "error_code=0x10000000000000014", "error_code"),
    ],
)
def test_field_values_wider_than_64_bits_are_flagged_nulls(tmp_path, line, old, new, field):
    path = _mutant(tmp_path, line, old, new)
    frame, reader = _read(path)
    row = frame.filter(pl.col("seq") == line)
    assert json.loads(row["args"][0])[field] is None
    assert reader.meta.partial
    assert any(w.startswith(f"{path}:{line}: 1 field value") for w in reader.meta.warnings)


def test_decimal_values_never_wrap(tmp_path):
    """A decimal above 2^64 - 1, or above 2^63 - 1 in a signed field, is null, not wrapped."""
    lines = [
        "  a-1 (1) [000] .....   1.000001: tlb_flush: pages:99999999999999999999 reason:x (1)\n",
        "  a-1 (1) [000] .....   1.000002: tlb_flush: pages:18446744073709551615 reason:x (1)\n",
        "  a-1 (1) [000] .....   1.000003: sched_process_fork: comm=a pid=1 child_comm=b "
        "child_pid=9223372036854775808\n",
        "  a-1 (1) [000] .....   1.000004: tlb_flush: pages:-1 reason:x (1)\n",
    ]
    path = tmp_path / "t.txt"
    path.write_text("".join(lines))
    frame, reader = _read(path)
    args = [json.loads(a) for a in frame["args"]]
    assert args[0]["pages"] is None and args[1]["pages"] == 2**64 - 1
    assert args[2]["child_pid"] is None and args[3]["pages"] == 2**64 - 1
    assert reader.meta.partial and reader.meta.warnings[0].startswith(f"{path}:1: 2 field value")


# ------------------------------------------------------------------ address ranges


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("-- 0x00563c971ce000", "-- 0xfffffffffffff000", "beyond user space"),
        (
            "0x00563c971cd000 -- 0x00563c971ce000",
            "0x00563c971ce000 -- 0x00563c971cd000",
            "reversed",
        ),
    ],
)
def test_impossible_address_ranges_are_kept_flagged_and_left_out_of_the_replay(
    tmp_path, old, new, reason
):
    """Line 2763 of the kvm fixture is a NUMA-scan kvm_unmap_hva_range (stack below it)."""
    path = _mutant(tmp_path, 2763, old, new, source=KVM)
    manifest = Path(str(path) + ".manifest.toml")
    manifest.write_text(Path(str(KVM) + ".manifest.toml").read_text())
    db = tmp_path / "t.duckdb"
    result = ingest(str(path), str(db))
    warning = next(w for w in result.meta.warnings if "impossible address range" in w)
    assert warning.startswith(f"{path}:2763: 1 kvm_unmap_hva_range event(s)") and reason in warning
    assert result.meta.partial
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM events WHERE seq = 2763").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM kvm_unmaps WHERE seq = 2763").fetchone() == (0,)
    assert con.execute("SELECT seq, reason FROM invalid_ranges").fetchall() == [(2763, reason)]
    con.close()
    analyzed = run_cli("analyze", str(path), "--format", "json")
    assert analyzed.exit_code == 0, analyzed.output
    assert json.loads(analyzed.stdout)["trace"]["partial"] is True
    assert run_cli("analyze", str(path), "--strict", "--format", "json").exit_code == EXIT_PARTIAL


def test_impossible_ranges_are_caught_in_binary_formats_too(tmp_path):
    """The typed tables are shared: a trace.dat with the same event names its record."""
    from tracereplay.writers import write_trace_dat

    path = _mutant(tmp_path, 2763, "-- 0x00563c971ce000", "-- 0xfffffffffffff000", source=KVM)
    dat = tmp_path / "t.dat"
    write_trace_dat(str(path), str(dat))
    result = ingest(str(dat), str(tmp_path / "d.duckdb"))
    warning = next(w for w in result.meta.warnings if "impossible address range" in w)
    assert warning.startswith(f"{dat} record ") and "0xfffffffffffff000" in warning
    assert result.meta.partial


# ------------------------------------------------------------------ stacks across blocks


def test_stacks_attach_across_block_boundaries_with_other_cpus_between(tmp_path):
    """A stack entry follows its event on the same CPU; other CPUs' lines may come
    between them, and a block may end there."""
    event = "  a-{p} ({p}) [00{c}] .....   1.{t:06d}: kvm_unmap_hva_range: mmu notifier unmap range: 0x7f0000000000 -- 0x7f0000001000\n"
    other = "  b-{p} ({p}) [00{c}] .....   1.{t:06d}: tlb_flush: pages:1 reason:x (1)\n"
    marker = (
        "  a-{p} ({p}) [00{c}] .....   1.{t:06d}: <stack trace>\n => f{k}\n => task_numa_work\n"
    )
    text = ""
    for k in range(200):
        t = 10 * k
        text += event.format(p=10, c=0, t=t) + other.format(p=20, c=1, t=t + 1)
        text += marker.format(p=10, c=0, t=t + 2, k=k)
    path = tmp_path / "t.txt"
    path.write_text(text)
    for block_size in (97, 500, 4096, 1 << 20):
        reader = FtraceTextReader(str(path), block_size=block_size)
        frame = pl.from_arrow(pa.Table.from_batches(list(reader.batches())))
        assert isinstance(frame, pl.DataFrame)
        stacks = frame.filter(pl.col("name") == "kvm_unmap_hva_range")["stack"].to_list()
        assert stacks == [[f"f{k}", "task_numa_work"] for k in range(200)], block_size
        assert reader.meta.warnings == []


# ------------------------------------------------------------------ bounded memory

# the child's own high-water mark: VmHWM belongs to its address space, while
# getrusage's ru_maxrss survives fork and exec and would include pytest's own RSS
_PEAK = """\
import sys
from tracereplay.cli.main import cli
rc = 0
try:
    cli(prog_name="tracereplay")
except SystemExit as e:
    rc = e.code or 0
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
print("PEAK_KB", hwm.split()[1], file=sys.stderr)
sys.exit(rc)
"""


def _ingest_peak(path: Path, db: Path) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in KiB) of `tracereplay ingest` in a child process."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, "ingest", str(path), "-o", str(db)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    peak = int(proc.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return proc.returncode, proc.stderr, peak


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One small ingest first: compiling the numba scanners (on a fresh cache) alone
    peaks near 1 GiB, and that is not what these tests measure."""
    d = tmp_path_factory.mktemp("warm")
    (d / "t.txt").write_text("".join(PINNED_LINES[:40]))
    assert _ingest_peak(d / "t.txt", d / "t.duckdb")[0] == 0


def _write_repeated(path: Path, head: str, unit: bytes, total: int, tail: str = "") -> None:
    with open(path, "wb") as f:
        f.write(head.encode())
        block = unit * ((8 << 20) // len(unit))
        for _ in range(total // len(block)):
            f.write(block)
        f.write(tail.encode())


def test_a_line_without_newline_is_capped(tmp_path, warm):
    path = tmp_path / "long.txt"
    _write_repeated(path, "".join(PINNED_LINES[:30]), b"a", 300 << 20)
    code, err, peak = _ingest_peak(path, tmp_path / "x.duckdb")
    assert code == EXIT_INPUT, err
    assert f"{path}:31: line longer than 1048576 bytes" in err and "Traceback" not in err
    assert peak < 1 << 20, f"peak RSS {peak} KiB"


def test_blank_lines_cost_nothing(tmp_path, warm):
    path = tmp_path / "blank.txt"
    _write_repeated(path, "".join(PINNED_LINES), b"\n", 300 << 20, "".join(PINNED_LINES[12:20]))
    code, err, peak = _ingest_peak(path, tmp_path / "x.duckdb")
    assert code == 0, err
    assert "10,786 events" in err
    assert peak < 1 << 20, f"peak RSS {peak} KiB"


def test_millions_of_short_lines_stay_bounded(tmp_path, warm):
    path = tmp_path / "short.txt"
    _write_repeated(path, "".join(PINNED_LINES), b"x\n", 48 << 20)
    code, err, peak = _ingest_peak(path, tmp_path / "x.duckdb")
    assert code == 0, err
    assert "line(s) not understood" in err and "(PARTIAL)" in err
    assert peak < 1 << 20, f"peak RSS {peak} KiB"


@pytest.mark.parametrize("codec", ["zst", "gz", "xz", "bz2"])
def test_a_truncated_compressed_text_is_flagged_partial(tmp_path, codec):
    import bz2
    import lzma

    import zstandard

    raw = (FIXTURES / "pinned-threads-6.18.txt").read_bytes()
    pack = {
        "zst": zstandard.ZstdCompressor().compress,
        "gz": gzip.compress,
        "xz": lzma.compress,
        "bz2": bz2.compress,
    }[codec]
    packed = pack(raw)
    cut = tmp_path / f"cut.txt.{codec}"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    reader = FtraceTextReader(str(cut))
    rows = sum(b.num_rows for b in reader.batches())
    assert 0 < rows < 10_778
    assert reader.meta.partial
    assert any("cut short" in w for w in reader.meta.warnings), reader.meta.warnings
    r = run_cli("analyze", str(cut), "--strict", "--format", "json")
    assert r.exit_code == EXIT_PARTIAL, r.stderr
