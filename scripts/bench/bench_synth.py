"""Benchmark the synthetic generator: events/s and peak RSS (writes a row for docs/BENCHMARKS.md).

Usage: python scripts/bench/bench_synth.py [SCENARIO] [--duration S] [--out DIR] [--keep]

Defaults to ``huge-guest`` (1 TiB guest, >= 50 M events). The trace goes to
/tmp and is deleted afterwards unless --keep (it is several GB of text).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

from tracereplay.synth import generate, load_scenario


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="huge-guest")
    ap.add_argument("--duration", type=float, help="override the scenario's duration (s)")
    ap.add_argument("--out", default="/tmp", help="directory for the trace (default /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the generated trace")
    args = ap.parse_args(argv)
    sc = load_scenario(args.scenario).with_overrides(duration=args.duration)
    work = tempfile.mkdtemp(prefix="bench-synth-", dir=args.out)
    out = os.path.join(work, f"{sc.name}.txt")
    t = time.perf_counter()
    result = generate(sc, out)
    wall = time.perf_counter() - t
    size = os.path.getsize(out)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"| synth {sc.name} (duration {sc.duration:g} s) | {result.events:,} events | "
        f"{size / 1e9:.2f} GB text | {wall:.1f} s | {result.events / wall / 1e6:.2f} M events/s | "
        f"peak RSS {rss_mb:.0f} MB |"
    )
    if args.keep:
        print(f"kept {out}", file=sys.stderr)
    else:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
