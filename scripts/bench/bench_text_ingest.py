#!/usr/bin/env python3
"""Benchmark: ftrace text ingest into DuckDB, lines/s and peak memory vs file size.

Builds tracefs text files of 1, 2 and 4 M lines by replaying the event lines of
the real fixture fixtures/pinned-threads-6.18.txt with shifted timestamps (so
the event mix and line shapes are real), then times the whole
`tracereplay ingest` process for each and records its peak RSS. In the same
run it times `wc -l` (the I/O floor), `grep -c` of one event name, and a naive
per-line Python regex parser (what a user would otherwise write; parsing only,
no database) on the same file, and reports the ratio.

    python scripts/bench/bench_text_ingest.py [--sizes 1,2,4] [--workdir /tmp/trbench]

Prints a Markdown table row per size; paste into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "pinned-threads-6.18.txt"
_TS = re.compile(r"^(.*\] \S+ +)(\d+)\.(\d{6})(: .*)$")


def build(path: Path, lines: int) -> None:
    """Write a tracefs text file of about ``lines`` event lines (cached by name)."""
    if path.exists():
        return
    template = []
    for line in FIXTURE.read_text().splitlines():
        m = _TS.match(line)
        if m:
            template.append((m.group(1), int(m.group(2)) * 1_000_000 + int(m.group(3)), m.group(4)))
    span = template[-1][1] - template[0][1] + 1
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as out:
        out.write("# tracer: nop\n#\n# entries-in-buffer/entries-written: 0/0   #P:2\n#\n")
        written, rep = 0, 0
        while written < lines:
            shift = rep * span
            chunk = []
            for head, us, tail in template:
                t = us + shift
                chunk.append(f"{head}{t // 1_000_000}.{t % 1_000_000:06d}{tail}\n")
            out.writelines(chunk[: lines - written])
            written += min(len(chunk), lines - written)
            rep += 1
    tmp.rename(path)


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + sys) of a child process, measured
    by /usr/bin/time (CPU is what to compare on a shared machine).

    Output goes to a pipe, not /dev/null: GNU grep stops at the first match when
    its output is /dev/null.
    """
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *cmd], check=True, capture_output=True
    )
    wall = time.perf_counter() - t0
    peak_kb, user, system = proc.stderr.decode().strip().splitlines()[-1].split()
    return wall, int(peak_kb) / 1024, float(user) + float(system)


_NAIVE = r"""
import re, sys
line_re = re.compile(r"^\s*(.*)-(\d+)\s+\(\s*([-\d]+)\)\s+\[(\d+)\]\s+\S+\s+(\d+)\.(\d+): (\w+): (.*)$")
kv = re.compile(r"(\w+)=(\S+)")
n = 0
with open(sys.argv[1]) as f:
    for line in f:
        m = line_re.match(line)
        if m:
            dict(kv.findall(m.group(8)))
            n += 1
print(n)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,2,4", help="millions of lines, comma-separated")
    ap.add_argument("--workdir", default="/tmp/trbench")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the best is reported")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    exe = [sys.executable, "-m", "tracereplay"]
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        "| lines | file MB | ingest s | ingest CPU s | lines/s | peak RSS MiB | wc -l s | grep -c s "
        "| naive Python re loop s | naive / ingest |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for millions in (float(x) for x in args.sizes.split(",")):
        n = int(millions * 1_000_000)
        path = work / f"text-{n}.txt"
        build(path, n)
        db = work / f"text-{n}.duckdb"
        best = None
        for _ in range(args.repeat):
            if db.exists():
                db.unlink()
            wall, rss, cpu = timed([*exe, "ingest", str(path), "-o", str(db)])
            best = (wall, rss, cpu) if best is None or wall < best[0] else best
        assert best is not None
        wc = timed(["wc", "-l", str(path)])[0]
        grep = timed(["grep", "-c", " page_fault_user: ", str(path)])[0]
        # what a user would otherwise write: a per-line regex loop, parsing only (no database)
        naive = timed([sys.executable, "-c", _NAIVE, str(path)])[0]
        size = path.stat().st_size / 1e6
        print(
            f"| {n:,} | {size:,.0f} | {best[0]:.2f} | {best[2]:.2f} | {n / best[0] / 1e6:.2f} M "
            f"| {best[1]:,.0f} "
            f"| {wc:.2f} | {grep:.2f} | {naive:.2f} | {naive / best[0]:.1f}x |"
        )


if __name__ == "__main__":
    main()
