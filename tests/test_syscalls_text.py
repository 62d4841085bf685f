"""Syscall events in ftrace text: names, systems and args as the binary readers give them.

The samples are real: recorded on this project's 6.18.44 machine through a private
tracefs instance (``syscalls:sys_{enter,exit}_madvise``, ``sys_{enter,exit}_openat``,
``raw_syscalls:sys_{enter,exit}`` filtered on ``id == 28``) while a small program
called madvise(MADV_DONTNEED), madvise(MADV_HUGEPAGE) and madvise(12345) (EINVAL);
the same buffer was also read as ``trace`` with and without record-tgid / irq-info
and ``verbose``, extracted with ``trace-cmd extract`` (then ``trace-cmd report``) and,
in a second run, recorded with ``perf record`` (then ``perf script``).

``BINARY`` holds what the trace.dat reader decoded from the extracted buffer (its
format files give ``__syscall_nr``, the arguments and ``ret``); the text layouts must
give the same args, less ``__syscall_nr``, which the kernel does not print
(print_syscall_enter / print_syscall_exit in kernel/trace/trace_syscalls.c).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from tracereplay.readers.ftrace_text import FtraceTextReader
from tracereplay.readers.perfetto import PerfettoReader
from tracereplay.readers.trace_dat import TraceDatReader
from tracereplay.writers import write_perfetto, write_trace_dat

HEADER = """\
# tracer: nop
#
# entries-in-buffer/entries-written: {n}/{n}   #P:2
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""

TRACEFS = """\
         python3-27127   [001] .....   834.395649: sys_madvise(start: 0x7fdbe2b6d000, len_in: 0x1000, behavior: 4)
         python3-27127   [001] .....   834.395649: sys_enter: NR 28 (7fdbe2b6d000, 1000, 4, 7fdbe2e20f58, 6e, 7ffebaa7f620)
         python3-27127   [001] .....   834.395655: sys_madvise -> 0x0
         python3-27127   [001] .....   834.395656: sys_exit: NR 28 = 0
         python3-27127   [001] .....   834.395657: sys_madvise(start: 0x7fdbe2b6d000, len_in: 0x200000, behavior: 0xe)
         python3-27127   [001] .....   834.395657: sys_enter: NR 28 (7fdbe2b6d000, 200000, e, 7fdbe32ac928, 69, 7ffebaa7f620)
         python3-27127   [001] .....   834.395659: sys_madvise -> 0x0
         python3-27127   [001] .....   834.395659: sys_exit: NR 28 = 0
         python3-27127   [001] .....   834.395659: sys_madvise(start: 0x7fdbe2b6d000, len_in: 0x200000, behavior: 0x3039)
         python3-27127   [001] .....   834.395660: sys_enter: NR 28 (7fdbe2b6d000, 200000, 3039, 7fdbe32ac928, 69, 7ffebaa7f620)
         python3-27127   [001] .....   834.395660: sys_madvise -> 0xffffffffffffffea
         python3-27127   [001] .....   834.395660: sys_exit: NR 28 = -22
"""

# the same buffer with record-tgid on (tgids were not saved: "(-------)") and irq-info off
TRACEFS_TGID = """\
         python3-27127   (-------) [001]    834.395649: sys_madvise(start: 0x7fdbe2b6d000, len_in: 0x1000, behavior: 4)
         python3-27127   (-------) [001]    834.395655: sys_madvise -> 0x0
"""

# options/verbose: argument types before the names
TRACEFS_VERBOSE = """\
         python3-27496   [001] .....   872.722352: sys_madvise(unsigned long start: 0x7f9462053000, size_t len_in: 0x1000, int behavior: 4)
         python3-27496   [001] .....   872.722358: sys_madvise -> 0x0
"""

# trace-cmd report of the extracted instance buffer (it prefixes the instance name)
REPORT = """\
cpus=2
textsafe-rec:          python3-27127 [001]   834.395649: sys_enter_madvise:    start: 0x7fdbe2b6d000, len_in: 0x00001000, behavior: 0x00000004
textsafe-rec:          python3-27127 [001]   834.395649: sys_enter:            NR 28 (7fdbe2b6d000, 1000, 4, 7fdbe2e20f58, 6e, 7ffebaa7f620)
textsafe-rec:          python3-27127 [001]   834.395655: sys_exit_madvise:     0x0
textsafe-rec:          python3-27127 [001]   834.395656: sys_exit:             NR 28 = 0
textsafe-rec:          python3-27127 [001]   834.395657: sys_enter_madvise:    start: 0x7fdbe2b6d000, len_in: 0x00200000, behavior: 0x0000000e
textsafe-rec:          python3-27127 [001]   834.395657: sys_enter:            NR 28 (7fdbe2b6d000, 200000, e, 7fdbe32ac928, 69, 7ffebaa7f620)
textsafe-rec:          python3-27127 [001]   834.395659: sys_exit_madvise:     0x0
textsafe-rec:          python3-27127 [001]   834.395659: sys_exit:             NR 28 = 0
textsafe-rec:          python3-27127 [001]   834.395659: sys_enter_madvise:    start: 0x7fdbe2b6d000, len_in: 0x00200000, behavior: 0x00003039
textsafe-rec:          python3-27127 [001]   834.395660: sys_enter:            NR 28 (7fdbe2b6d000, 200000, 3039, 7fdbe32ac928, 69, 7ffebaa7f620)
textsafe-rec:          python3-27127 [001]   834.395660: sys_exit_madvise:     0xffffffffffffffea
textsafe-rec:          python3-27127 [001]   834.395660: sys_exit:             NR 28 = -22
"""

# trace.dat reader on the same buffer (ts, name, args)
BINARY = [
    (834395648871, "sys_enter_madvise", '{"__syscall_nr":28,"start":140582378196992,"len_in":4096,"behavior":4}'),
    (834395649412, "sys_enter", '{"id":28,"args":[140582378196992,4096,4,140582381031256,110,140732029990432]}'),
    (834395655240, "sys_exit_madvise", '{"__syscall_nr":28,"ret":0}'),
    (834395655581, "sys_exit", '{"id":28,"ret":0}'),
    (834395656602, "sys_enter_madvise", '{"__syscall_nr":28,"start":140582378196992,"len_in":2097152,"behavior":14}'),
    (834395656933, "sys_enter", '{"id":28,"args":[140582378196992,2097152,14,140582385797416,105,140732029990432]}'),
    (834395658605, "sys_exit_madvise", '{"__syscall_nr":28,"ret":0}'),
    (834395658866, "sys_exit", '{"id":28,"ret":0}'),
    (834395659496, "sys_enter_madvise", '{"__syscall_nr":28,"start":140582378196992,"len_in":2097152,"behavior":12345}'),
    (834395659827, "sys_enter", '{"id":28,"args":[140582378196992,2097152,12345,140582385797416,105,140732029990432]}'),
    (834395660097, "sys_exit_madvise", '{"__syscall_nr":28,"ret":-22}'),
    (834395660338, "sys_exit", '{"id":28,"ret":-22}'),
]  # fmt: skip

# perf script of a second run (perf record -e ...; the perf.data reader gave the args below)
PERF = """\
         python3 27284 [001]   860.142975: syscalls:sys_enter_madvise: start: 0x7fc141499000, len_in: 0x00001000, behavior: 0x00000004
         python3 27284 [001]   860.142979:     raw_syscalls:sys_enter: NR 28 (7fc141499000, 1000, 4, 7fc14174d398, 6e, 7fff08be44c0)
         python3 27284 [001]   860.142984:  syscalls:sys_exit_madvise: 0x0
         python3 27284 [001]   860.142985:      raw_syscalls:sys_exit: NR 28 = 0
         python3 27284 [001]   860.142992:  syscalls:sys_exit_madvise: 0xffffffffffffffea
         python3 27284 [001]   860.142993:      raw_syscalls:sys_exit: NR 28 = -22
"""
PERF_BINARY = [
    ("sys_enter_madvise", '{"__syscall_nr":28,"start":140468000755712,"len_in":4096,"behavior":4}'),
    ("sys_enter", '{"id":28,"args":[140468000755712,4096,4,140468003591064,110,140733340075200]}'),
    ("sys_exit_madvise", '{"__syscall_nr":28,"ret":0}'),
    ("sys_exit", '{"id":28,"ret":0}'),
    ("sys_exit_madvise", '{"__syscall_nr":28,"ret":-22}'),
    ("sys_exit", '{"id":28,"ret":-22}'),
]

SYSTEMS = {"sys_enter": "raw_syscalls", "sys_exit": "raw_syscalls"}


def _events(path: str) -> pl.DataFrame:
    reader = FtraceTextReader(path)
    frame = pl.from_arrow(pa.Table.from_batches(list(reader.batches())))
    assert isinstance(frame, pl.DataFrame)
    assert reader.meta.warnings == [] and not reader.meta.partial
    return frame


def _without_nr(args: str) -> dict[str, object]:
    values = json.loads(args)
    values.pop("__syscall_nr", None)
    return values


def _check(frame: pl.DataFrame, expected: list[tuple[str, str]]) -> None:
    assert frame["name"].to_list() == [name for name, _ in expected]
    assert frame["system"].to_list() == [SYSTEMS.get(n, "syscalls") for n, _ in expected]
    assert [json.loads(a) for a in frame["args"]] == [_without_nr(a) for _, a in expected]


@pytest.mark.parametrize("layout", ["tracefs", "trace-cmd report"])
def test_text_layouts_give_the_binary_readers_args(tmp_path: Path, layout: str) -> None:
    text = HEADER.format(n=12) + TRACEFS if layout == "tracefs" else REPORT
    path = tmp_path / "t.txt"
    path.write_text(text)
    frame = _events(str(path))
    _check(frame, [(name, args) for _ts, name, args in BINARY])
    # microsecond text timestamps: the binary ones rounded
    assert frame["ts"].to_list() == [round(ts, -3) for ts, _n, _a in BINARY]
    assert set(frame["comm"]) == {"python3"} and set(frame["pid"]) == {27127}


def test_perf_script_gives_the_perf_data_readers_args(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text(PERF)
    _check(_events(str(path)), PERF_BINARY)


@pytest.mark.parametrize("sample", [TRACEFS_TGID, TRACEFS_VERBOSE])
def test_tgid_column_and_verbose_types(tmp_path: Path, sample: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(sample)
    frame = _events(str(path))
    assert frame["name"].to_list() == ["sys_enter_madvise", "sys_exit_madvise"]
    assert json.loads(frame["args"][0])["len_in"] == 4096
    assert json.loads(frame["args"][0])["behavior"] == 4
    assert frame["tgid"].null_count() == 2


def test_user_space_strings_of_newer_kernels(tmp_path: Path) -> None:
    """Since 6.19 tracefs prints the string a pointer argument points at (upstream
    print_syscall_enter); the format file names that field __<arg>_val."""
    line = (
        "         python3-27127   [000] .....   834.183857: sys_openat(dfd: 0xffffff9c, "
        'filename: 0x7f08deba20b1 "/etc/ld.so.cache", flags: 0x80000, mode: 0)\n'
    )
    path = tmp_path / "t.txt"
    path.write_text(line)
    args = json.loads(_events(str(path))["args"][0])
    assert args == {
        "dfd": 0xFFFFFF9C,
        "filename": 0x7F08DEBA20B1,
        "__filename_val": "/etc/ld.so.cache",
        "flags": 0x80000,
        "mode": 0,
    }


def test_a_cut_syscall_line_is_dropped_a_closed_one_kept(tmp_path: Path) -> None:
    lines = TRACEFS.splitlines(keepends=True)
    closed = tmp_path / "closed.txt"
    closed.write_text("".join(lines[:4]) + lines[4].rstrip("\n"))  # ends with ")"
    reader = FtraceTextReader(str(closed))
    assert sum(b.num_rows for b in reader.batches()) == 5 and not reader.meta.partial
    cut = tmp_path / "cut.txt"
    cut.write_text("".join(lines[:4]) + lines[4][:-8])  # "behavior: 0x" cut
    reader = FtraceTextReader(str(cut))
    assert sum(b.num_rows for b in reader.batches()) == 4 and reader.meta.partial
    assert f"{cut}:5: truncated last line" in reader.meta.warnings[0]


@pytest.mark.parametrize("fmt", ["dat", "perfetto"])
def test_text_syscalls_convert_and_read_back(tmp_path: Path, fmt: str) -> None:
    """Per-syscall args (and the raw_syscalls args array) survive both writers."""
    src = tmp_path / "t.txt"
    src.write_text(HEADER.format(n=12) + TRACEFS)
    out = tmp_path / ("t.dat" if fmt == "dat" else "t.perfetto-trace")
    writer = write_trace_dat if fmt == "dat" else write_perfetto
    writer(str(src), str(out))
    reader = TraceDatReader(str(out)) if fmt == "dat" else PerfettoReader(str(out))
    back = pl.from_arrow(pa.Table.from_batches(list(reader.batches())))
    assert isinstance(back, pl.DataFrame)
    text = _events(str(src))
    key = ["ts", "system", "name", "args"]
    assert back.select(key).sort(key).to_dicts() == text.select(key).sort(key).to_dicts()
