#!/usr/bin/env python3
"""Memory of a long ``tracereplay top`` run: RSS sampled over time (root).

Runs ``tracereplay top --json --seconds S --interval I`` as a child, samples
its VmRSS from /proc every ``--every`` seconds, and prints one line per
sample plus a summary (first, max and last RSS after warm-up, and the slope
of a least-squares line through the samples after warm-up, in MiB/hour).

    sudo .venv/bin/python scripts/live_soak.py --seconds 600
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("top_args", nargs="*", help="more arguments for top (after --)")
    a = ap.parse_args()
    cmd = [sys.executable, "-m", "tracereplay", "top", "--json"]
    cmd += ["--seconds", str(a.seconds), "--interval", str(a.interval), *a.top_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    stats = {"intervals": 0, "events": 0, "lost": 0, "cpu": 0.0, "blank": 0}

    def consume() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.strip():
                stats["blank"] += 1  # never expected; counted rather than fatal to the soak
                continue
            o = json.loads(line)
            stats["intervals"] += 1
            stats["events"] += o["trace"]["events"]
            stats["lost"] += o["lost_events"]
            stats["cpu"] += o["overhead"]["cpu_seconds"]

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    t0 = time.monotonic()
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        time.sleep(a.every)
        kib = rss_kib(proc.pid)
        if kib is None:
            break
        t = time.monotonic() - t0
        samples.append((t, kib))
        print(f"{t:7.0f} s  RSS {kib / 1024:8.1f} MiB  intervals {stats['intervals']}", flush=True)
    proc.wait()
    reader.join(5)
    late = [(t, k) for t, k in samples if t >= a.warmup]
    if len(late) >= 2:
        n = len(late)
        mt = sum(t for t, _ in late) / n
        mk = sum(k for _, k in late) / n
        slope = sum((t - mt) * (k - mk) for t, k in late) / sum((t - mt) ** 2 for t, _ in late)
        print(
            f"after {a.warmup:.0f} s warm-up: first {late[0][1] / 1024:.1f} MiB, "
            f"max {max(k for _, k in late) / 1024:.1f} MiB, last {late[-1][1] / 1024:.1f} MiB, "
            f"slope {slope * 3600 / 1024:+.1f} MiB/hour"
        )
    wall = samples[-1][0] if samples else 0.0
    print(
        f"{stats['intervals']} intervals, {stats['events']:,} events, {stats['lost']} lost, "
        f"tool CPU {stats['cpu']:.1f} s ({100 * stats['cpu'] / max(wall, 1e-9):.1f} % of one CPU)"
        + (f", {stats['blank']} blank lines" if stats["blank"] else "")
    )
    return proc.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
