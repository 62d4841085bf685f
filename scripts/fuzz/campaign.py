#!/usr/bin/env python3
"""Mutation campaign: hundreds of mutants of every format, then the crafted hostile files.

    python scripts/fuzz/campaign.py [--mutants 520] [--seed 1] [--out /tmp/tracereplay-fuzz]
                                    [--no-hostile] [--coverage] [--only LAYOUT]

Mutants: round-robin over the seeds (tests/fuzz_inputs.py: the fixtures, the
tiny synthetic trace in every writer's format, the text samples, `trace-cmd
report` / `perf script` output of the fixtures when those tools exist, the
public traces under ../shared when present), each seed also gzip / zstd / xz /
bzip2 compressed, one random mutation each (deterministic in --seed). Every
mutant runs through `ingest` and `analyze --strict` in a worker
(tests/fuzz_oracle.py) with NUMBA_BOUNDSCHECK=1, so an out-of-bounds access
in compiled code is an IndexError instead of silent memory corruption.

Hostile files (scripts/fuzz/hostile.py) each run as fresh processes, whose
peak RSS is measured and capped.

Writes OUT/results.jsonl (one line per input), OUT/failures/<class>/ (the
failing inputs, by known class or "new"), and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz_inputs as F  # noqa: E402
import fuzz_oracle as O  # noqa: E402

SHARED = Path(os.environ.get("TRACEREPLAY_SHARED", REPO.parent / "shared"))


def tool_seeds(work: Path) -> list[F.Seed]:
    """`trace-cmd report` and `perf script` output of the fixtures, when the tools exist."""
    out = []
    jobs = [
        ("trace-cmd-report", ["trace-cmd", "report", str(F.FIXTURES / "pinned-threads-6.18.dat")]),
        ("perf-script", ["perf", "script", "-i", str(F.FIXTURES / "perf-tlb-callchain-6.18.data")]),
        ("perf-script", ["perf", "script", "-i", str(F.FIXTURES / "perf-tlb-pipe-6.18.data")]),
    ]
    for layout, cmd in jobs:
        if shutil.which(cmd[0]) is None:
            continue
        done = subprocess.run(cmd, capture_output=True, cwd=work, timeout=120)
        if done.returncode == 0 and done.stdout:
            name = Path(cmd[-1]).stem + "-" + cmd[0]
            out.append(F.Seed(name, layout, done.stdout[:400_000].rsplit(b"\n", 1)[0] + b"\n"))
    return out


def public_seeds() -> list[F.Seed]:
    public = SHARED / "traces" / "public"
    return [F.Seed(p.stem, "trace-dat", p.read_bytes()) for p in sorted(public.glob("*.dat"))]


def all_seeds(work: Path) -> list[F.Seed]:
    seeds = (
        F.small_seeds(work / "seeds") + F.fixture_seeds() + F.converted_seeds(work / "converted")
    )
    seeds += tool_seeds(work) + public_seeds()
    more = [
        s.compressed(k)
        for s in seeds
        if s.compression is None and s.fmt == "ftrace-text"
        for k in F.COMPRESSIONS
    ]
    return seeds + more[:: max(1, len(more) // 12)]


def interleave(seeds: list[F.Seed]) -> list[F.Seed]:
    """One round of seeds: every reader format in turn, within it every layout+compression
    in turn, within that every seed in turn (formats get equal shares however many seeds)."""
    by_fmt: dict[str, dict[str, list[F.Seed]]] = {}
    for s in seeds:
        by_fmt.setdefault(s.fmt, {}).setdefault(s.label, []).append(s)

    def rounds(groups: list[list[F.Seed]]) -> list[F.Seed]:
        out = []
        for k in range(max(len(g) for g in groups)):
            out += [g[k % len(g)] for g in groups]
        return out

    per_fmt = [rounds(list(labels.values())) for labels in by_fmt.values()]
    per_fmt = [rounds([[s] for s in fmt]) for fmt in per_fmt]
    return rounds(per_fmt)


def record(results, failures: Path, path: Path, entry: dict, classes) -> list[str]:
    probs = entry["problems"]
    entry["known"] = [O.known_class(p, classes) for p in probs]
    results.write(json.dumps(entry) + "\n")
    results.flush()
    if probs:
        cls = next((k for k in entry["known"] if k), None) or "new"
        dest = failures / cls
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / entry["file"])
    return probs


def mutants(args, out: Path, classes) -> None:
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    seeds = interleave([s for s in all_seeds(out) if not args.only or s.layout == args.only])
    env = {"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(out / "numba-cache-boundscheck")}
    if args.coverage:
        env["TRACEREPLAY_FUZZ_COVERAGE"] = str(out / "coverage" / "fuzz")
        (out / "coverage").mkdir(exist_ok=True)
    worker = O.Worker(env=env, timeout=args.timeout)
    rng = random.Random(args.seed)
    intact: dict[str, O.Run] = {}
    stats: collections.Counter[str] = collections.Counter()
    with open(out / "results.jsonl", "a") as results:
        for n in range(args.mutants):
            seed = seeds[n % len(seeds)]
            key = seed.name + "/" + seed.label
            if key not in intact:
                path = work / f"intact{seed.suffix}"
                path.write_bytes(seed.data)
                # the first input of a format may compile its decoders (minutes when bounds-checked)
                intact[key] = worker.run(str(path), str(work), timeout=1800)[0]
            m = F.random_mutation(rng, seed)
            name = f"{m.label()}--{seed.name}{seed.suffix}"
            path = work / name
            path.write_bytes(F.mutate(seed, m))
            cut = (
                F.cut_can_be_told(seed, m.offset)
                if m.kind == "cut" and (m.inner or not seed.compression)
                else None
            )
            if m.kind == "cut" and seed.compression and not m.inner and m.offset < len(seed.data):
                cut = "compressed stream cut"
            ingest, analyze = worker.run(str(path), str(work))
            probs = O.problems(seed.label, ingest, analyze, cut=cut, intact=intact[key], name=name)
            entry = {
                "kind": "mutant",
                "seed": seed.name,
                "layout": seed.label,
                "mutation": m.label(),
                "file": name,
                "ingest": asdict(ingest),
                "analyze": asdict(analyze),
                "problems": probs,
            }
            record(results, out / "failures", path, entry, classes)
            path.unlink()
            stats[f"{seed.label}: exit {ingest.code}/{analyze.code}"] += 1
            if probs:
                print(f"{n:4} {seed.label:22} {m.label():40} {probs[0][:150]}", flush=True)
    worker.close()
    print(f"mutants: {args.mutants}, worker restarts: {worker.restarts}", flush=True)


def hostile(args, out: Path, classes) -> None:
    import duckdb
    import fuzz_hostile as H  # tests/fuzz_hostile.py (scripts/fuzz/hostile.py only writes them)

    work = out / "hostile-run"
    work.mkdir(parents=True, exist_ok=True)
    pwned = Path("/tmp/tracereplay-pwned")
    with open(out / "results.jsonl", "a") as results:
        for h, path in H.write_all(out / "hostile", out / "work"):
            ingest, analyze = O.run_fresh(str(path), str(work), timeout=args.timeout)
            probs = O.problems(h.filename, ingest, analyze, name=h.filename)
            probs += H.expectation(h, ingest)
            if h.expect in ("stored", "lost") and ingest.code == 0:
                con = duckdb.connect(str(work / "fuzz.duckdb"), read_only=True)
                if h.expect == "stored":
                    hits = con.execute(
                        "SELECT count(*) FROM events WHERE comm = ?", [h.stored]
                    ).fetchone()
                    if not hits or not hits[0]:
                        probs.append(
                            f"[{h.filename}] ingest: the injected comm was not stored verbatim"
                        )
                else:
                    lost = con.execute("SELECT lost_gaps, partial FROM trace_info").fetchone()
                    if lost is None or lost[0] < 2 or not lost[1]:
                        probs.append(f"[{h.filename}] ingest: lost events not reported ({lost})")
                con.close()
            elif h.expect in ("stored", "lost"):
                probs.append(f"[{h.filename}] ingest: exit {ingest.code}, expected 0")
            if pwned.exists():
                probs.append(f"[{h.filename}] injected shell text ran")
                pwned.unlink()
            entry = {
                "kind": "hostile",
                "file": h.filename,
                "expect": h.expect,
                "ingest": asdict(ingest),
                "analyze": asdict(analyze),
                "problems": probs,
            }
            record(results, out / "failures", path, entry, classes)
            peak = max(r.peak_rss_mb or 0 for r in (ingest, analyze))
            print(
                f"{h.filename:48} exit {ingest.code}/{analyze.code} {peak:6.0f} MiB "
                f"{ingest.seconds + analyze.seconds:5.1f} s  {probs[0][:120] if probs else 'ok'}",
                flush=True,
            )


def summary(out: Path) -> None:
    """Markdown tables of OUT/results.jsonl, problems classed by the current known list."""
    rows = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    current = O.known_classes()
    for r in rows:
        r["known"] = [O.known_class(p, current) for p in r["problems"]]
    by_layout: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    classes: collections.Counter[str] = collections.Counter()
    for r in rows:
        key = r.get("layout") or "hostile"
        c = by_layout[key]
        c["inputs"] += 1
        c[f"exit{r['ingest']['code']}"] += 1
        c["problems"] += bool(r["problems"])
        for k, p in zip(r["known"], r["problems"], strict=True):
            classes[k or ("new: " + p[:100])] += 1
    runs = [x for r in rows for x in (r["ingest"], r["analyze"])]
    peak = max((x["peak_rss_mb"] or 0) for x in runs)
    print(f"\n{len(rows)} inputs, {len(runs)} command runs, largest peak RSS {peak:.0f} MiB")
    print(
        "\n| inputs | count | ingest exit 0 | exit 3 | other | with problems |\n|---|---|---|---|---|---|"
    )
    for key in sorted(by_layout):
        c = by_layout[key]
        other = c["inputs"] - c["exit0"] - c["exit3"]
        print(
            f"| {key} | {c['inputs']} | {c['exit0']} | {c['exit3']} | {other} | {c['problems']} |"
        )
    print("\n| class | problems |\n|---|---|")
    for k, v in classes.most_common():
        print(f"| {k} | {v} |")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mutants", type=int, default=520)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="/tmp/tracereplay-fuzz")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--only", help="only seeds of this layout (tracefs, trace-dat, perf-pipe, ...)")
    ap.add_argument("--no-hostile", action="store_true")
    ap.add_argument(
        "--coverage", action="store_true", help="record line coverage (needs coverage.py)"
    )
    ap.add_argument(
        "--summary", action="store_true", help="only print the summary of an earlier run in --out"
    )
    args = ap.parse_args()
    out = Path(args.out)
    if args.summary:
        summary(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    if args.mutants:  # --mutants 0 adds the hostile files to an earlier run's results
        (out / "results.jsonl").unlink(missing_ok=True)
    classes = O.known_classes()
    t = time.monotonic()
    if args.mutants:
        mutants(args, out, classes)
    if not args.no_hostile:
        hostile(args, out, classes)
    print(f"\n{time.monotonic() - t:.0f} s")
    summary(out)


if __name__ == "__main__":
    main()
