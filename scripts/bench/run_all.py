#!/usr/bin/env python3
"""The whole benchmark suite in one command: every format, growing sizes, the reference tools.

For each input format (ftrace text, trace-cmd trace.dat, perf.data, Perfetto) and
each recording size, times in the same run, each command in its own child process
(wall, CPU = user + sys, peak RSS from the child's rusage):

* ``tracereplay ingest FILE -o DB`` and ``tracereplay analyze FILE --format json``
  (every built-in policy; the sibling manifest when there is one);
* the reference tool on the same file: ``trace-cmd report`` (trace.dat),
  ``perf script`` (perf.data), a naive Python per-line regex loop (text), when installed.

Recordings: the repository's fixtures (real, recorded on this kind of machine; the
.xz ones decompressed under --workdir), then generated ones of growing size: tracefs
text made of the pinned-threads fixture's lines repeated with shifted timestamps
(scripts/bench/bench_text_ingest.build, its manifest copied next to it) and converted
with ``tracereplay convert`` to trace.dat and Perfetto. Sizes go x4 from 250 k events
up to ``--max-events`` (default 1 M, a few minutes; ``--max-events 50000000`` for the
issue's >= 50 M rows: about 3.5 GB of text per copy under --workdir and hours on two
CPUs). perf.data has no writer, so only the recorded fixtures are timed for it.

Prints one markdown section (machine, date, load average before and after, the
table and the growth per format: time per M events and peak RSS from the smallest
to the largest generated size); ``--out FILE`` also appends it to FILE.

    python scripts/bench/run_all.py [--max-events 1000000] [--workdir /tmp/trbench-all]
"""

from __future__ import annotations

import argparse
import lzma
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_text_ingest import _NAIVE, build
from bench_trace_dat import count, timed

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
TEXT_SOURCE = FIXTURES / "pinned-threads-6.18.txt"
EXE = [sys.executable, "-m", "tracereplay"]
RECORDED = {
    "text": ["pinned-threads-6.18.txt", "kvm-pinned-6.18.txt.gz", "busy-host-6.18.txt.xz"],
    "trace.dat": ["pinned-threads-6.18.dat", "kvm-pinned-6.18.dat", "busy-host-6.18.dat"],
    "perf.data": ["perf-tlb-callchain-6.18.data", "busy-host-6.18.perf.data.xz"],
    "Perfetto": [],  # none recorded here: only converted ones
}


@dataclass
class Row:
    fmt: str
    source: str  # recorded | generated
    name: str
    events: int
    mb: float
    ingest: tuple[float, float, float]  # wall s, peak RSS MiB, CPU s
    analyze: tuple[float, float, float]
    tool: str
    reference: tuple[float, float, float] | None


def _try(cmd: list[str]) -> tuple[float, float, float] | None:
    try:
        return timed(cmd)
    except subprocess.CalledProcessError:
        return None


def _plain(path: Path, work: Path) -> Path:
    """The file itself, or (``.xz``) its decompressed copy: the reference tools read no xz."""
    if path.suffix != ".xz":
        return path
    out = work / path.stem
    if not out.exists():
        with lzma.open(path) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        manifest = Path(f"{path}.manifest.toml")
        if manifest.exists():
            shutil.copy(manifest, f"{out}.manifest.toml")
    return out


def _reference(fmt: str, path: Path) -> tuple[str, list[str] | None]:
    if fmt == "trace.dat" and shutil.which("trace-cmd"):
        return "trace-cmd report", ["trace-cmd", "report", "-i", str(path)]
    if fmt == "perf.data" and shutil.which("perf"):
        return "perf script", ["perf", "script", "-i", str(path)]
    if fmt == "text" and not path.name.endswith((".gz", ".xz")):
        return "naive Python", [sys.executable, "-c", _NAIVE, str(path)]
    return "-", None


def measure(fmt: str, source: str, path: Path, work: Path) -> Row:
    db = work / "bench.duckdb"
    if db.exists():
        db.unlink()
    ingest = timed([*EXE, "ingest", str(path), "-o", str(db), "-q"])
    events = count(db)
    db.unlink()
    analyze = timed([*EXE, "analyze", str(path), "--format", "json", "-q"])
    tool, cmd = _reference(fmt, path)
    ref = _try(cmd) if cmd else None
    if cmd and ref is None:
        tool += " (failed)"
    mb = path.stat().st_size / 1e6
    return Row(fmt, source, path.name, events, mb, ingest, analyze, tool, ref)


def generated(work: Path, max_events: int) -> list[tuple[str, Path]]:
    """(format, path) of the generated recordings, smallest first."""
    out: list[tuple[str, Path]] = []
    n = 250_000
    while True:
        size = min(n, max_events)
        text = work / f"text-{size}.txt"
        build(text, size)
        shutil.copy(f"{TEXT_SOURCE}.manifest.toml", f"{text}.manifest.toml")
        out.append(("text", text))
        for fmt, ext in (("trace.dat", ".dat"), ("Perfetto", ".perfetto-trace")):
            conv = work / f"text-{size}{ext}"
            if not conv.exists():
                subprocess.run([*EXE, "convert", str(text), "-o", str(conv), "-q"], check=True)
            out.append((fmt, conv))
        if size >= max_events:
            return out
        n *= 4


def _cell(t: tuple[float, float, float] | None) -> str:
    return "-" if t is None else f"{t[0]:.2f} / {t[2]:.2f} / {t[1]:,.0f}"


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| format | recording | events | MB | ingest wall s / CPU s / peak MiB | M events/s "
        "| analyze wall s / CPU s / peak MiB | reference | reference wall s / CPU s / peak MiB "
        "| reference / ingest (wall) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r.reference[0] / r.ingest[0]:.2f}x" if r.reference else "-"
        lines.append(
            f"| {r.fmt} | {r.name} ({r.source}) | {r.events:,} | {r.mb:,.1f} | {_cell(r.ingest)} "
            f"| {r.events / r.ingest[0] / 1e6:.2f} | {_cell(r.analyze)} | {r.tool} "
            f"| {_cell(r.reference)} | {ratio} |"
        )
    return lines


def growth(rows: list[Row]) -> list[str]:
    """Per format: seconds per M events and peak RSS, smallest vs largest generated size."""
    lines = []
    for fmt in RECORDED:
        gen = [r for r in rows if r.fmt == fmt and r.source == "generated" and r.events]
        if len(gen) < 2:
            continue
        a, b = gen[0], gen[-1]
        per = [r.ingest[0] / r.events * 1e6 for r in (a, b)]
        lines.append(
            f"* {fmt}: ingest {per[0]:.2f} -> {per[1]:.2f} s per M events, peak RSS "
            f"{a.ingest[1]:,.0f} -> {b.ingest[1]:,.0f} MiB (analyze {a.analyze[1]:,.0f} -> "
            f"{b.analyze[1]:,.0f} MiB) from {a.events:,} to {b.events:,} events"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--max-events", type=int, default=1_000_000)
    ap.add_argument("--workdir", default="/tmp/trbench-all")
    ap.add_argument("--out", help="also append the markdown section to this file")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    # warm-up, not timed: numba's cache loaded (or, in a fresh checkout, compiled) for each reader
    for names in RECORDED.values():
        for name in names[:1]:
            timed([*EXE, "analyze", str(_plain(FIXTURES / name, work)), "--format", "json", "-q"])
    rows = []
    for fmt, names in RECORDED.items():
        for name in names:
            rows.append(measure(fmt, "recorded", _plain(FIXTURES / name, work), work))
            print(f"done: {fmt} {name}", file=sys.stderr)
    for fmt, path in generated(work, args.max_events):
        rows.append(measure(fmt, "generated", path, work))
        print(f"done: {fmt} {path.name}", file=sys.stderr)
    load_after = os.getloadavg()
    u = platform.uname()
    section = [
        f"### run_all.py, {started}, --max-events {args.max_events:,}",
        "",
        f"Machine `{u.node}` ({u.machine}, {os.cpu_count()} CPUs, Linux {u.release}, "
        f"Python {platform.python_version()}); load average {load_before[0]:.2f} / "
        f"{load_before[1]:.2f} / {load_before[2]:.2f} before, {load_after[0]:.2f} / "
        f"{load_after[1]:.2f} / {load_after[2]:.2f} after. Each command runs alone in a child "
        "process, output discarded, after one untimed warm-up run per reader; tracereplay's "
        "figures include its start-up (about 1.3 s of imports, DuckDB and numba cache loads), "
        "which dominates below ~250 k events.",
        "",
        *table(rows),
        "",
        "Growth with size (generated recordings):",
        "",
        *growth(rows),
        "",
    ]
    text = "\n".join(section)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
