#!/usr/bin/env python3
"""Benchmark: reconstruction and replay of every policy over a large trace.

Generates the `huge-guest` scenario (a 1 TiB pinned guest; ~1.5 M events per
simulated second) as tracefs text with its manifest, then runs the analyze
pipeline in-process, timing ingest, reconstruction and the replay of all
built-in policies separately, and reports the process's peak RSS in each stage
(sampled from /proc/self/status every 20 ms). Run it once per size to show how
time and memory scale:

    python scripts/bench/bench_replay.py --seconds 2
    python scripts/bench/bench_replay.py --seconds 7     # ~11 M events
    python scripts/bench/bench_replay.py --seconds 14    # ~22 M events

Generated files go to --workdir (default /tmp/trbench) and are reused.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import threading
import time
from pathlib import Path

import duckdb


class StagePeaks:
    """Peak resident memory (MiB) of this process in each named stage."""

    def __init__(self) -> None:
        self.stage = "ingest"
        self.peaks: dict[str, int] = {}
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            with open("/proc/self/status") as f:
                rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) // 1024
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss)
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=7.0, help="simulated seconds of huge-guest")
    ap.add_argument("--workdir", default="/tmp/trbench")
    args = ap.parse_args()

    from tracereplay.manifest import load_manifest
    from tracereplay.readers import open_trace
    from tracereplay.reconstruct import reconstruct
    from tracereplay.replay import replay, write_metrics
    from tracereplay.store import build, new_database
    from tracereplay.synth import generate, load_scenario

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    trace = work / f"huge-guest-{args.seconds:g}s.txt"
    if not trace.exists():
        t0 = time.perf_counter()
        generate(load_scenario("huge-guest").with_overrides(duration=args.seconds), str(trace))
        print(f"generated {trace} in {time.perf_counter() - t0:.1f} s")
    manifest = load_manifest(str(trace) + ".manifest.toml")
    db = work / "replay-bench.duckdb"
    if db.exists():
        db.unlink()
    timings: dict[str, float] = {}
    peaks = StagePeaks()

    def reconstruct_and_replay(con: duckdb.DuckDBPyConnection) -> None:
        t = time.perf_counter()
        peaks.stage = "reconstruct"
        model = reconstruct(con, kernel_release=manifest.host.get("kernel"))
        timings["reconstruct"] = time.perf_counter() - t
        t = time.perf_counter()
        peaks.stage = "replay"
        result = replay(model)
        write_metrics(con, result)
        timings["replay"] = time.perf_counter() - t
        peaks.stage = "end"
        timings["policies"] = len(result.policies)
        timings["chunks"] = sum(vm.n_chunks for vm in model.vms)

    t0 = time.perf_counter()
    reader = open_trace(str(trace))
    with new_database(str(db)) as con:
        build(con, reader, manifest=manifest)
        reconstruct_and_replay(con)
    meta = reader.meta
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ingest_s = total - timings["reconstruct"] - timings["replay"]
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}"
    )
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    p = peaks.peaks
    print(
        "| events | file MB | ingest s | reconstruct s | replay s (policies) | total s "
        "| peak RSS MiB: ingest / reconstruct / replay | process peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {meta.event_count:,} | {trace.stat().st_size / 1e6:,.0f} | {ingest_s:.1f} | {timings['reconstruct']:.1f} "
        f"| {timings['replay']:.2f} ({timings['policies']:.0f}) | {total:.1f} "
        f"| {p.get('ingest', 0):,} / {p.get('reconstruct', 0):,} / {p.get('replay', 0):,} | {peak:,.0f} |"
    )


if __name__ == "__main__":
    main()
