#!/usr/bin/env python3
"""Benchmark: `tracereplay ingest` vs `trace-cmd report` (trace.dat) and `perf script` (perf.data).

Records a >= 4 M-event trace.dat under /tmp through tracefs + `trace-cmd extract`
(as scripts/record_fixture.py does) and a perf.data with `perf record -a`, then
times each tool on the same file in the same run (whole process, wall clock)
and the peak RSS of each command (each in its own parent process, so the
numbers are per command). ``--half`` adds files of half the size, to show
that memory does not grow with the file. Needs root, trace-cmd and perf.
Prints a markdown section for docs/BENCHMARKS.md (with the load average before
each measurement: other jobs share the machine).

    python scripts/bench/bench_trace_dat.py [--events 4000000] [--out /tmp/trbench] [--half]
    python scripts/bench/bench_trace_dat.py --input FILE.dat [--input FILE.perf.data ...]

``--input`` times files that exist already (no recording, no root needed), e.g. a
trace.dat written by ``tracereplay convert``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

T = Path("/sys/kernel/tracing")
EVENTS = ["exceptions/page_fault_user", "tlb/tlb_flush", "kmem/mm_page_alloc", "kmem/mm_page_free"]
VENV = Path(sys.executable).parent


def w(path: Path, text: str) -> None:
    path.write_text(text)


def workload(seconds: float) -> None:
    """Fault in and free anonymous memory in a loop (page faults, page alloc/free)."""
    import mmap

    end = time.time() + seconds
    while time.time() < end:
        m = mmap.mmap(-1, 64 << 20)
        for off in range(0, 64 << 20, 4096):
            m[off] = 1
        m.close()


def record_dat(out: Path, events: int, name: str = "big.dat") -> Path:
    dat = out / name
    w(T / "tracing_on", "0")
    w(T / "trace", "")
    w(T / "buffer_size_kb", str(256 * 1024))
    for e in EVENTS:
        w(T / "events" / e / "enable", "1")
    w(T / "tracing_on", "1")
    start = time.time()
    while time.time() - start < 120:
        workload(2.0)
        entries = sum(
            int(line.split()[1])
            for p in (T / "per_cpu").glob("cpu*/stats")
            for line in p.read_text().splitlines()
            if line.startswith("entries:")
        )
        if entries >= events:
            break
    w(T / "tracing_on", "0")
    for e in EVENTS:
        w(T / "events" / e / "enable", "0")
    subprocess.run(["trace-cmd", "extract", "-o", str(dat)], check=True, capture_output=True)
    w(T / "buffer_size_kb", "1408")
    return dat


def record_perf(out: Path, seconds: float = 6, name: str = "big.perf.data") -> Path:
    data = out / name
    cmd = ["perf", "record", "-q", "-a", "-o", str(data)]
    for e in EVENTS:
        cmd += ["-e", e.replace("/", ":")]
    here = str(Path(__file__).parent)
    code = f"import sys; sys.path.insert(0, {here!r}); import bench_trace_dat as b; b.workload({seconds})"
    subprocess.run([*cmd, "--", sys.executable, "-c", code], check=True, capture_output=True)
    return data


# Runs one command in a fresh process and reports the peak RSS of that command
# alone: RUSAGE_CHILDREN of a process is the maximum over all of *its* children,
# so each measurement needs its own parent.
_RSS = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(r.ru_maxrss, r.ru_utime + r.ru_stime)\n"
)


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds) of one command run alone, output discarded
    (CPU is what to compare on a shared machine)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _RSS, *cmd], check=True, capture_output=True, text=True
    ).stdout.split()
    wall = time.perf_counter() - t0
    return wall, int(out[-2]) / 1024, float(out[-1])


def count(db: Path) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=4_000_000)
    ap.add_argument("--out", default="/tmp/trbench")
    ap.add_argument("--reuse", action="store_true", help="reuse files already recorded in --out")
    ap.add_argument("--repeat", type=int, default=1, help="runs per command (best wall kept)")
    ap.add_argument(
        "--half", action="store_true", help="also record and measure files of half the size (RSS)"
    )
    ap.add_argument(
        "--input", action="append", default=[], help="time this existing file (no recording)"
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs: list[tuple[str, Path]] = [
        ("perf.data" if "perf" in Path(f).name else "trace.dat", Path(f)) for f in args.input
    ]
    sizes = [("big", args.events, 6.0)] + ([("half", args.events // 2, 3.0)] if args.half else [])
    for stem, events, seconds in sizes if not inputs else []:
        dat, perf = out / f"{stem}.dat", out / f"{stem}.perf.data"
        if not (args.reuse and dat.exists()):
            dat = record_dat(out, events, dat.name)
        if not (args.reuse and perf.exists()):
            perf = record_perf(out, seconds, perf.name)
        inputs += [("trace.dat", dat), ("perf.data", perf)]
    tr = str(VENV / "tracereplay")
    rows = []
    for label, path in inputs:
        ref_cmd = (
            ["trace-cmd", "report", "-i", str(path)]
            if label == "trace.dat"
            else ["perf", "script", "-i", str(path)]
        )
        db = out / f"{path.name}.duckdb"
        best: tuple[float, float, float, float, float, str] | None = None
        for _ in range(args.repeat):
            db.unlink(missing_ok=True)
            load = loadavg()
            ours, ours_rss, ours_cpu = timed([tr, "ingest", str(path), "-o", str(db), "--force"])
            ref, ref_rss, _ = timed(ref_cmd)
            if best is None or ours / ref < best[0] / best[3]:
                best = (ours, ours_rss, ours_cpu, ref, ref_rss, load)
        assert best is not None
        rows.append((label, path, count(db), *best, " ".join(ref_cmd[:2])))
    cpu = platform.processor() or platform.machine()
    print("## trace.dat and perf.data ingest\n")
    print(
        f"{datetime.date.today()}, `{platform.node()}` ({cpu}, {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}), `python scripts/bench/bench_trace_dat.py`. Wall clock of the "
        "whole process, output to /dev/null (reference tools) or a DuckDB file (tracereplay), "
        "same file, same run; peak RSS of each command measured alone.\n"
    )
    print(
        "| input | events | file MB | tracereplay ingest s (peak RSS MB) | ingest CPU s "
        "| reference | reference s (peak RSS MB) | speed-up | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, path, n, ours, ours_rss, ours_cpu, ref, ref_rss, load, name in rows:
        size = path.stat().st_size / 1e6
        print(
            f"| {label} | {n:,} | {size:.0f} | {ours:.2f} ({ours_rss:.0f}) | {ours_cpu:.2f} "
            f"| `{name}` | {ref:.2f} ({ref_rss:.0f}) | {ref / ours:.2f}x | {load} |"
        )


if __name__ == "__main__":
    main()
