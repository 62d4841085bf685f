#!/usr/bin/env python3
"""A/B: ``tracereplay ingest`` of this checkout against another checkout, same files, same run.

    git worktree add /tmp/old <commit>
    python scripts/bench/ab_ingest.py /tmp/old FILE... [--repeat 3]

Each file is ingested ``--repeat`` times by each version, alternating (the other
checkout imported first through PYTHONPATH, with the same interpreter and
libraries), one warm-up run per version and file first (numba caches); prints
a markdown table of median wall, CPU and peak RSS, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_trace_dat import _RSS

Timing = tuple[float, float, float]


def run(path: str, db: str, pythonpath: str | None) -> Timing:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, "-m", "tracereplay", "ingest", path, "-o", db, "-q", "--force"]
    t0 = time.perf_counter()
    # cwd elsewhere: `python -m` puts the working directory before PYTHONPATH
    out = subprocess.run(
        [sys.executable, "-c", _RSS, *cmd],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    ).stdout.split()
    return time.perf_counter() - t0, int(out[-2]) / 1024, float(out[-1])


def median(runs: list[Timing]) -> Timing:
    wall = statistics.median(r[0] for r in runs)
    return min(runs, key=lambda r: abs(r[0] - wall))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", help="the other checkout (its repository root)")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    db = os.path.join(tempfile.mkdtemp(prefix="ab-"), "t.duckdb")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| file | other: wall s / CPU s / peak MiB | this: wall s / CPU s / peak MiB | speed-up |")
    print("|---|---|---|---|")
    for path in args.files:
        runs: dict[str, list[Timing]] = {"other": [], "this": []}
        run(path, db, args.other)
        run(path, db, None)
        for _ in range(args.repeat):
            runs["other"].append(run(path, db, args.other))
            runs["this"].append(run(path, db, None))
        a, b = median(runs["other"]), median(runs["this"])
        print(
            f"| {Path(path).name} | {a[0]:.2f} / {a[2]:.2f} / {a[1]:,.0f} "
            f"| {b[0]:.2f} / {b[2]:.2f} / {b[1]:,.0f} | {a[0] / b[0]:.2f}x |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
