#!/usr/bin/env python3
"""Record a real NUMA-balancing fixture trace on this machine (root, tracefs).

A thin wrapper over ``tracereplay lab run`` (:mod:`tracereplay.record.lab`)
that keeps the fixture layout of ``fixtures/``: it records in the *top-level*
tracefs buffer (so the ``.dat`` holds no named instance buffer, like the
committed fixtures) and adds ``<stem>.counts.json`` from ``trace-cmd report``.

Examples::

    # plain multi-threaded process, 60 of 64 MiB io_uring-pinned
    python scripts/record_fixture.py fixtures/pinned-threads-6.18.txt \\
        --workload threads --mem 64M --pinned 60M --threads 2 --seconds 6

    # minimal KVM VMM, with a stacktrace trigger on kvm_unmap_hva_range
    python scripts/record_fixture.py fixtures/kvm-pinned-6.18.txt.gz \\
        --workload kvm --mem 512M --pinned 384M --threads 2 --seconds 6 --stack

    # the same VMM with madvise/munmap/mprotect/COW churn, syscall events on
    python scripts/record_fixture.py fixtures/kvm-churn-6.18.txt.gz --workload kvm \\
        --mem 512M --pinned 128M --seconds 6 --stack --events causes \\
        --churn madvise,munmap,mprotect,cow

Writes, next to ``OUT`` (which ends in ``.txt`` or ``.txt.gz``):

* ``OUT``                   the tracefs ``trace`` text (read first: it does not consume);
* ``<stem>.dat``            ``trace-cmd extract`` of the same ring buffer (consumes it);
* ``<stem>.counts.json``    per-event counts from ``trace-cmd report`` of the .dat;
* ``OUT.manifest.toml``     the DESIGN section 6 manifest plus host facts and vmstat,
  and the same manifest as ``<stem>.dat.manifest.toml``.

Every tracefs file and NUMA setting changed is restored on exit, including on
Ctrl-C, SIGTERM and exceptions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tracereplay.errors import TraceReplayError
from tracereplay.record.lab import LabConfig, lab_run
from tracereplay.record.recorder import count_text
from tracereplay.units import parse_size

_REPORT_EVENT = re.compile(r"^\s*.+?-\d+\s+\[\d+\]\s+\d+\.\d+:\s+(\w+):")
_LOST = re.compile(r"\[LOST (\d+) EVENTS\]")


def count_report(dat: Path) -> tuple[dict[str, int], int]:
    """Per-event counts and lost events of ``trace-cmd report`` on a .dat."""
    out = subprocess.run(
        ["trace-cmd", "report", str(dat)], check=True, capture_output=True, text=True
    ).stdout
    counts: Counter[str] = Counter()
    lost = 0
    for line in out.splitlines():
        m = _REPORT_EVENT.match(line)
        if m:
            counts[m.group(1)] += 1
        elif "LOST" in line:
            lost += sum(int(x) for x in _LOST.findall(line))
    return dict(sorted(counts.items())), lost


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("out", help="trace text path (.txt or .txt.gz); other outputs go next to it")
    ap.add_argument("--workload", choices=["threads", "kvm"], default="threads")
    ap.add_argument("--mem", default="64M", help="region / guest RAM size")
    ap.add_argument("--pinned", default="16M", help="long-term pinned prefix of it")
    ap.add_argument("--threads", type=int, default=2, help="touching threads / vCPUs (>= 2)")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--touch", choices=["chunk", "page"], default="chunk")
    ap.add_argument("--chunk", default="16M", help="threads workload: bytes per memset call")
    ap.add_argument(
        "--stack", action="store_true", help="stacktrace trigger on kvm_unmap_hva_range"
    )
    ap.add_argument("--events", default="numa", help="--events spec (presets: numa, causes, ...)")
    ap.add_argument(
        "--churn",
        default="",
        help="kvm: madvise,munmap,mprotect,cow activity beside the vCPUs (lab/churn.py)",
    )
    ap.add_argument("--churn-ms", type=float, default=20.0, help="one churn activity every N ms")
    ap.add_argument("--churn-tail", default="64M", help="madvise walks this much of the RAM end")
    ap.add_argument("--buffer-kb", type=int, default=16384, help="per-CPU ring buffer size")
    ap.add_argument("--all-pids", action="store_true", help="trace every process")
    ap.add_argument("--scan-delay-ms", type=int, default=100)
    ap.add_argument("--scan-period-min-ms", type=int, default=100)
    ap.add_argument("--scan-period-max-ms", type=int, default=None)
    ap.add_argument("--scan-size-mb", type=int, default=None)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = LabConfig(
        output=out,
        mem=parse_size(args.mem),
        pinned=parse_size(args.pinned),
        vcpus=args.threads,
        seconds=args.seconds,
        kvm=args.workload == "kvm",
        stack=args.stack,
        events=args.events,
        churn=tuple(a for a in args.churn.split(",") if a),
        churn_ms=args.churn_ms,
        churn_tail=parse_size(args.churn_tail),
        buffer_kb=args.buffer_kb,
        fmt="both" if shutil.which("trace-cmd") else "text",
        top_level=True,
        all_pids=args.all_pids,
        scan_delay_ms=args.scan_delay_ms,
        scan_period_min_ms=args.scan_period_min_ms,
        scan_period_max_ms=args.scan_period_max_ms,
        scan_size_mb=args.scan_size_mb,
        touch=args.touch,
        chunk=parse_size(args.chunk),
        command_line=shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
    )
    try:
        result = lab_run(cfg)
    except TraceReplayError as e:
        print(f"record_fixture: error: {e}", file=sys.stderr)
        return 3
    summary: dict[str, object] = {
        "text_event_counts": result.record.event_counts,
        "text_lost_events": result.record.lost_events,
    }
    dat = next((p for p in result.record.outputs if p.suffix == ".dat"), None)
    if dat is not None:
        rep_counts, rep_lost = count_report(dat)
        stem = dat.name.removesuffix(".dat")
        counts_path = dat.with_name(stem + ".counts.json")
        version = subprocess.run(["trace-cmd", "--version"], capture_output=True, text=True).stdout
        m = re.search(r"version (\S+)", version)
        doc = {
            "source": f"trace-cmd report {m.group(1) if m else 'unknown'}",
            "event_counts": rep_counts,
            "lost_events": rep_lost,
        }
        counts_path.write_text(json.dumps(doc, indent=1) + "\n")
        with gzip.open(out, "rt") if out.name.endswith(".gz") else open(out) as f:
            text_counts, text_lost = count_text(f)
        summary["text_equals_report"] = (rep_counts, rep_lost) == (text_counts, text_lost)
    summary["workload_result"] = result.workload
    summary["vmstat_delta"] = {k: v for k, v in result.record.vmstat_delta.items() if v}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
