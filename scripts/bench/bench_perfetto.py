"""Benchmark: ingest of a large Perfetto trace into DuckDB (events/s, peak RSS).

Builds a synthetic tracefs text trace with many tlb_flush / page_fault_user /
ipi_send_cpu events (the hot events of a NUMA-balancing trace), converts it
with ``tracereplay convert`` to a Perfetto trace under /tmp (never committed),
then times ``tracereplay ingest`` of it as a whole process (and with
``--reader`` a process that only iterates the reader's batches) and prints
markdown rows for docs/BENCHMARKS.md: best wall of ``--repeat`` runs, CPU time
and peak RSS of that process alone (``wait4`` rusage), load average per run on
stderr.

    python scripts/bench/bench_perfetto.py [--events 5000000] [--dir /tmp/tr-bench]
                                           [--repeat 3] [--reader]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import date

import numpy as np
import polars as pl

_LINES = (
    " tr-touch-0-{pid}    ({tgid:>7}) [{cpu:03d}] d....  {ts}: page_fault_user: "
    "address=0x{addr:x} ip=0x55d000001234 error_code=0x6",
)


def make_text(path: str, events: int, cpus: int = 8, chunk: int = 500_000) -> None:
    """Write ``events`` tracefs lines: 60% page faults, 30% TLB flushes, 10% IPIs."""
    rng = np.random.default_rng(42)
    with open(path, "w") as f:
        f.write(
            f"# tracer: nop\n#\n# entries-in-buffer/entries-written: {events}/{events}   #P:{cpus}\n#\n"
        )
        done = 0
        t0 = 1000.0
        while done < events:
            n = min(chunk, events - done)
            idx = np.arange(done, done + n)
            ts = t0 + idx * 1e-6
            kind = rng.integers(0, 10, n)
            cpu = rng.integers(0, cpus, n)
            pid = 4000 + rng.integers(0, 16, n)
            addr = 0x7F0000000000 + rng.integers(0, 1 << 30, n) * 4096
            df = pl.DataFrame({"ts": ts, "kind": kind, "cpu": cpu, "pid": pid, "addr": addr})
            head = pl.concat_str(
                [
                    pl.lit(" qemu-system-x86-"),
                    pl.col("pid").cast(pl.String),
                    pl.lit(" (   4000) ["),
                    pl.col("cpu").cast(pl.String).str.zfill(3),
                    pl.lit("] d..1. "),
                    pl.col("ts").round(6).cast(pl.String).str.pad_end(11, "0"),
                    pl.lit(": "),
                ]
            )
            body = (
                pl.when(pl.col("kind") < 6)
                .then(
                    pl.concat_str(
                        [
                            pl.lit("page_fault_user: address=0x"),
                            pl.col("addr").map_elements(lambda a: f"{a:x}", return_dtype=pl.String),
                            pl.lit(" ip=0x55d000001234 error_code=0x6"),
                        ]
                    )
                )
                .when(pl.col("kind") < 9)
                .then(pl.lit("tlb_flush: pages:1 reason:remote shootdown (1)"))
                .otherwise(
                    pl.lit(
                        "ipi_send_cpu: cpu=1 callsite=on_each_cpu_cond_mask+0x24/0x40 "
                        "callback=flush_tlb_func+0x0/0x1d0"
                    )
                )
            )
            lines = df.select(pl.concat_str([head, body]).alias("l"))["l"]
            f.write("\n".join(lines.to_list()))
            f.write("\n")
            done += n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--dir", default="/tmp/tr-bench")
    ap.add_argument("--repeat", type=int, default=1, help="runs per step (best wall kept)")
    ap.add_argument("--reader", action="store_true", help="also time the reader alone")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    text = os.path.join(args.dir, f"synthetic-{args.events}.txt")
    trace = os.path.join(args.dir, f"synthetic-{args.events}.perfetto-trace")
    db = os.path.join(args.dir, "perfetto-bench.duckdb")
    exe = [sys.executable, "-m", "tracereplay"]
    if not os.path.exists(trace):
        if not os.path.exists(text):
            t = time.perf_counter()
            make_text(text, args.events)
            print(f"text: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        t = time.perf_counter()
        subprocess.run([*exe, "convert", text, "-o", trace, "--force"], check=True)
        print(f"convert: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    size = os.path.getsize(trace)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}"
    reader = (
        "import sys\nfrom tracereplay.readers.perfetto import PerfettoReader\n"
        "print(sum(b.num_rows for b in PerfettoReader(sys.argv[1]).batches()))"
    )
    steps = [("ingest", [*exe, "ingest", trace, "-o", db, "--force"])]
    if args.reader:
        steps.append(("reader alone", [sys.executable, "-c", reader, trace]))
    for label, cmd in steps:
        best: tuple[float, float, float] | None = None
        for _ in range(args.repeat):
            load = f"{os.getloadavg()[0]:.2f}"
            wall, cpu_s, rss_mb = _timed(cmd)
            print(
                f"{label}: {wall:.2f} s, {cpu_s:.1f} CPU-s, {rss_mb:.0f} MB, load {load}",
                file=sys.stderr,
            )
            if best is None or wall < best[0]:
                best = (wall, cpu_s, rss_mb)
        assert best is not None
        wall, cpu_s, rss_mb = best
        events = args.events
        if label == "ingest":
            import duckdb

            con = duckdb.connect(db, read_only=True)
            (events,) = con.execute("SELECT count(*) FROM events").fetchone()  # type: ignore[misc]
            con.close()
        print(
            f"| {date.today()} | {machine} | {label} | {events:,} | {size / 1e6:.0f} MB | "
            f"{wall:.2f} s | {events / wall / 1e6:.2f} M/s | {cpu_s:.1f} s | {rss_mb:.0f} MB |"
        )


def _timed(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one child process run (``wait4`` rusage: its own)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[2]} failed ({proc.returncode})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


if __name__ == "__main__":
    main()
