#!/usr/bin/env python3
"""The whole benchmark suite in one command: every format, growing sizes, the reference tools.

For each recording, times in the same run, each command in its own child process
(wall, CPU = user + sys, peak RSS from the child's rusage), ``--repeat`` times
alternating, the median wall kept:

* ``tracereplay ingest FILE -o DB`` and ``tracereplay analyze FILE --format json``
  (every built-in policy; the sibling manifest when there is one; analyze once);
* the reference tool on the same file: ``trace-cmd report`` (trace.dat),
  ``perf script`` (perf.data), a naive Python per-line regex loop (text).

Recordings, smallest first within each group:

* the repository's fixtures (recorded on this kind of machine);
* real recordings of >= 4 M events made here by ``scripts/bench/recordings.py``
  (root; ``--record`` makes them, else those found under WORKDIR/real): trace.dat,
  perf.data, tracefs text, and the text of ``trace-cmd report`` and ``perf script``
  of the same files; the trace.dat converted to Perfetto;
* generated ones of growing size: tracefs text of the pinned-threads fixture's
  lines repeated with shifted timestamps, converted to trace.dat and Perfetto, x4
  from 250 k events up to ``--max-events`` (default 16 M);
* ``--synth``: the ``huge-guest`` scenario (about 60 M events) from ``tracereplay
  synth``, analyzed with every policy (peak RSS).

Each row is printed as soon as it is measured and appended to WORKDIR/rows.jsonl;
``--resume`` skips the rows already there (same file, size and mtime). The
markdown section (machine, date, load before and after, the table, the growth
with size) is printed at the end; ``--out FILE`` appends it to FILE.

    python scripts/bench/run_all.py [--record] [--max-events 4000000] [--repeat 3] [--synth]
    python scripts/bench/run_all.py --no-fixtures --only '*-4m.dat' 'text-4000000.dat' --no-analyze
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import lzma
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_text_ingest import _NAIVE, build
from bench_trace_dat import count, timed

import tracereplay

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
TEXT_SOURCE = FIXTURES / "pinned-threads-6.18.txt"
EXE = [sys.executable, "-m", "tracereplay"]
RECORDED = [
    ("text", "pinned-threads-6.18.txt"),
    ("text", "kvm-pinned-6.18.txt.gz"),
    ("text", "busy-host-6.18.txt.xz"),
    ("trace.dat", "pinned-threads-6.18.dat"),
    ("trace.dat", "kvm-pinned-6.18.dat"),
    ("trace.dat", "busy-host-6.18.dat"),
    ("perf.data", "perf-tlb-callchain-6.18.data"),
    ("perf.data", "busy-host-6.18.perf.data.xz"),
]
# real recordings (scripts/bench/recordings.py): suffix -> format
REAL = [
    (".dat", "trace.dat"),
    (".perf.data", "perf.data"),
    (".txt", "text (tracefs)"),
    (".report.txt", "text (trace-cmd report)"),
    (".perfscript.txt", "text (perf script)"),
    (".perfetto-trace", "Perfetto"),
]
Timing = tuple[float, float, float]  # wall s, peak RSS MiB, CPU s


@dataclass
class Row:
    fmt: str
    source: str  # recorded | real | generated | synth
    name: str
    key: str  # path, size, mtime: what --resume matches
    events: int
    lines: int  # text: lines of the file
    mb: float
    ingest: Timing | None
    analyze: Timing | None
    tool: str
    reference: Timing | None


def _median(runs: list[Timing]) -> Timing:
    wall = statistics.median(r[0] for r in runs)
    return min(runs, key=lambda r: abs(r[0] - wall))


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path}:{st.st_size}:{int(st.st_mtime)}"


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
    if fmt.startswith("text") and not path.name.endswith((".gz", ".xz")):
        return "naive Python", [sys.executable, "-c", _NAIVE, str(path)]
    return "-", None


def _lines(path: Path) -> int:
    if path.name.endswith((".gz", ".xz")):
        return 0
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n


def cached(path: Path) -> Path:
    """``path`` after reading it once, untimed, so that the next command finds it in the
    page cache, as a user analyzing a trace just recorded does. This machine kind drops
    cold page cache even with memory free (a 662 MB text file was a third resident
    before its runs), and reading it back from disk (0.58 s) went to whichever command
    came first."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    return path


def measure(fmt: str, source: str, path: Path, work: Path, repeat: int, analyze: bool) -> Row:
    db = work / "bench.duckdb"
    tool, cmd = _reference(fmt, path)
    ingests: list[Timing] = []
    refs: list[Timing] = []
    for k in range(repeat):
        db.unlink(missing_ok=True)
        ingests.append(timed([*EXE, "ingest", str(cached(path)), "-o", str(db), "-q"]))
        # the naive loop is a yardstick, not a target: once
        if cmd and (k == 0 or tool != "naive Python"):
            cached(path)
            try:
                refs.append(timed(cmd))
            except subprocess.CalledProcessError:
                tool, cmd = tool + " (failed)", None
    events = count(db)
    db.unlink()
    an = None
    if analyze:
        an = timed([*EXE, "analyze", str(cached(path)), "--format", "json", "-q"])
    lines = _lines(path) if fmt.startswith("text") else 0
    return Row(
        fmt, source, path.name, _key(path), events, lines, path.stat().st_size / 1e6,
        _median(ingests), an, tool, _median(refs) if refs else None,
    )  # fmt: skip


def real_recordings(work: Path, record: bool) -> list[tuple[str, Path]]:
    real = work / "real"
    if record:
        subprocess.run([sys.executable, str(Path(__file__).parent / "recordings.py"),
                        "--workdir", str(real)], check=True)  # fmt: skip
    out: list[tuple[str, Path]] = []
    for dat in sorted(real.glob("*.dat")) if real.is_dir() else []:
        base = str(dat)[: -len(".dat")]
        pft = Path(f"{base}.perfetto-trace")
        if not pft.exists():
            subprocess.run([*EXE, "convert", str(dat), "-o", str(pft), "-q"], check=True)
        for suffix, fmt in REAL:
            path = Path(base + suffix)
            if path.exists():
                out.append((fmt, path))
    return out


def generated(work: Path, max_events: int) -> list[tuple[str, Path]]:
    """(format, path) of the generated recordings, smallest first."""
    out: list[tuple[str, Path]] = []
    n = 250_000
    while True:
        size = min(n, max_events)
        text = work / f"text-{size}.txt"
        build(text, size)
        shutil.copy(f"{TEXT_SOURCE}.manifest.toml", f"{text}.manifest.toml")
        out.append(("text (tracefs)", text))
        for fmt, ext in (("trace.dat", ".dat"), ("Perfetto", ".perfetto-trace")):
            conv = work / f"text-{size}{ext}"
            if not conv.exists():
                subprocess.run([*EXE, "convert", str(text), "-o", str(conv), "-q"], check=True)
            out.append((fmt, conv))
        if size >= max_events:
            return out
        n *= 4


def synth(work: Path) -> Path:
    path = work / "huge-guest.dat"
    if not path.exists():
        subprocess.run([*EXE, "synth", "huge-guest", "-o", str(path), "-q"], check=True)
    return path


def _cell(t: Timing | None) -> str:
    return "-" if t is None else f"{t[0]:.2f} / {t[2]:.2f} / {t[1]:,.0f}"


HEADER = [
    "| format | recording | events | MB | ingest wall s / CPU s / peak MiB | M events/s "
    "(text: M lines/s) | analyze wall s / CPU s / peak MiB | reference | reference wall s / "
    "CPU s / peak MiB | reference / ingest (wall) |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def table_row(r: Row) -> str:
    ratio = f"**{r.reference[0] / r.ingest[0]:.2f}x**" if r.reference and r.ingest else "-"
    rate = "-"
    if r.ingest:
        rate = f"{r.events / r.ingest[0] / 1e6:.2f}"
        if r.lines:
            rate += f" ({r.lines / r.ingest[0] / 1e6:.2f})"
    return (
        f"| {r.fmt} | {r.name} ({r.source}) | {r.events:,} | {r.mb:,.1f} | {_cell(r.ingest)} "
        f"| {rate} | {_cell(r.analyze)} | {r.tool} | {_cell(r.reference)} | {ratio} |"
    )


def growth(rows: list[Row]) -> list[str]:
    """Per format: seconds per M events and peak RSS, smallest vs largest generated size."""
    lines = []
    for fmt in dict.fromkeys(r.fmt for r in rows):
        gen = [r for r in rows if r.fmt == fmt and r.source == "generated" and r.ingest]
        if len(gen) < 2:
            continue
        a, b = gen[0], gen[-1]
        per = [r.ingest[0] / r.events * 1e6 for r in (a, b) if r.ingest]
        lines.append(
            f"* {fmt}: ingest {per[0]:.2f} -> {per[1]:.2f} s per M events, peak RSS "
            f"{a.ingest[1]:,.0f} -> {b.ingest[1]:,.0f} MiB (analyze "  # type: ignore[index]
            f"{a.analyze[1] if a.analyze else 0:,.0f} -> {b.analyze[1] if b.analyze else 0:,.0f} "
            f"MiB) from {a.events:,} to {b.events:,} events"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--max-events", type=int, default=16_000_000)
    ap.add_argument("--workdir", default="/tmp/trbench-all")
    ap.add_argument("--repeat", type=int, default=3, help="ingest / reference runs per file")
    ap.add_argument("--record", action="store_true", help="make the real recordings (root)")
    ap.add_argument("--synth", action="store_true", help="also the ~60 M-event synthetic trace")
    ap.add_argument("--no-fixtures", action="store_true", help="skip the repository's fixtures")
    ap.add_argument("--resume", action="store_true", help="keep the rows of WORKDIR/rows.jsonl")
    ap.add_argument("--out", help="also append the markdown section to this file")
    ap.add_argument(
        "--only", nargs="+", metavar="GLOB", help="only the files whose name matches (fnmatch)"
    )
    ap.add_argument("--no-analyze", action="store_true", help="time ingest and the reference only")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "rows.jsonl"
    done: dict[str, Row] = {}
    if args.resume and log.exists():
        for line in log.read_text().splitlines():
            d = json.loads(line)
            done[d["key"]] = Row(**d)
    elif log.exists():
        log.unlink()
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    todo: list[tuple[str, str, Path]] = []
    if not args.no_fixtures:
        todo += [(fmt, "recorded", _plain(FIXTURES / name, work)) for fmt, name in RECORDED]
    todo += [(fmt, "real", p) for fmt, p in real_recordings(work, args.record)]
    todo += [(fmt, "generated", p) for fmt, p in generated(work, args.max_events)]
    if args.synth:
        todo.append(("trace.dat", "synth", synth(work)))
    if args.only:
        todo = [t for t in todo if any(fnmatch.fnmatch(t[2].name, g) for g in args.only)]
    # byte-compiled first, as pip does when it installs the wheel: a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (this machine's default) compiles ~50 modules on every
    # start, 0.05 s a user of the installed tool never pays
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(tracereplay.__file__).parent)],
        check=True,
    )
    # warm-up, not timed: numba's cache loaded (or, in a fresh checkout, compiled) per reader
    for fmt in ("text", "trace.dat", "perf.data"):
        first = next((p for f, _, p in todo if f.startswith(fmt)), None)
        if first is not None:
            timed([*EXE, "ingest", str(first), "-o", str(work / "warm.duckdb"), "-q", "--force"])
    rows: list[Row] = []
    print("\n".join(HEADER), flush=True)
    for fmt, source, path in todo:
        row = done.get(_key(path))
        if row is None:
            synth_row = source == "synth"
            repeat = 1 if synth_row else args.repeat
            row = measure(fmt, source, path, work, repeat, not args.no_analyze)
            with open(log, "a") as f:
                f.write(json.dumps(asdict(row)) + "\n")
        rows.append(row)
        print(table_row(row), flush=True)
    load_after = os.getloadavg()
    u = platform.uname()
    section = [
        f"### run_all.py, {started}, --max-events {args.max_events:,}, --repeat {args.repeat}",
        "",
        f"Machine `{u.node}` ({u.machine}, {os.cpu_count()} CPUs, Linux {u.release}, "
        f"Python {platform.python_version()}); load average {load_before[0]:.2f} / "
        f"{load_before[1]:.2f} / {load_before[2]:.2f} before, {load_after[0]:.2f} / "
        f"{load_after[1]:.2f} / {load_after[2]:.2f} after. Each command runs alone in a child "
        "process, output discarded, its file read once untimed just before (page cache "
        "warm), after one untimed warm-up run per reader and with "
        "tracereplay byte-compiled (as a wheel install is); ingest and the "
        f"reference run {args.repeat} times alternating (median wall), analyze and the naive "
        "Python loop once. "
        "tracereplay's figures include its start-up (imports, DuckDB, numba cache loads).",
        "",
        *HEADER,
        *(table_row(r) for r in rows),
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
