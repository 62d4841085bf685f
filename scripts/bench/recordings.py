#!/usr/bin/env python3
"""Real recordings of growing size for the benchmarks, made on this machine (root).

Each mix is recorded the ways users record: ``tracereplay record`` to trace.dat
(tracefs + ``trace-cmd extract``) and to tracefs text, and ``perf record -a`` to
perf.data; then the text users get from those files: ``trace-cmd report`` and
``perf script`` output. A small C program makes the load (``cc`` needed):

* ``faults``: anonymous memory faulted in and unmapped by two processes (the
  numa preset's events: mostly ``page_fault_user``, with ``tlb_flush``, IPIs,
  ``sched_skip_vma_numa``, ``sched_process_exec``); at two sizes;
* ``shootdown``: two threads of one process on both CPUs, one unmapping what it
  faulted in while the other runs: remote TLB shootdowns (``tlb_flush``,
  ``ipi_send_cpumask``) between the faults;
* ``kmem``: the faults with ``kmem:mm_page_alloc`` / ``mm_page_free`` (events with
  many fields that keep their JSON args).

    sudo python scripts/bench/recordings.py [--workdir /tmp/trbench-all/real] [--scale 1]

Files already there are kept (delete them to record again). Prints the list.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EXE = [sys.executable, "-m", "tracereplay"]
NUMA = [
    "exceptions:page_fault_user",
    "tlb:tlb_flush",
    "sched:sched_skip_vma_numa",
    "ipi:ipi_send_cpu",
    "ipi:ipi_send_cpumask",
    "sched:sched_process_exec",
]
LOAD_C = r"""
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
static size_t sz = 64UL << 20;
static long iters;
static volatile int stop;
static void *spin(void *p) {  /* keeps the mm live on the other CPU */
    char *m = p;
    while (!stop) for (size_t o = 0; o < (1UL << 20); o += 4096) m[o]++;
    return 0;
}
int main(int argc, char **argv) {
    iters = atol(argv[1]);
    int threads = argc > 2 && !strcmp(argv[2], "threads");
    pthread_t t;
    char *keep = mmap(0, 1UL << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (threads) pthread_create(&t, 0, spin, keep);
    for (long i = 0; i < iters; i++) {
        char *p = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        madvise(p, sz, MADV_NOHUGEPAGE);
        for (size_t o = 0; o < sz; o += 4096) p[o] = 1;
        if (threads)  /* unmapped a piece at a time: a shootdown each */
            for (size_t o = 0; o < sz; o += 256 << 10) munmap(p + o, 256 << 10);
        else
            munmap(p, sz);
    }
    stop = 1;
    if (threads) pthread_join(t, 0);
    return 0;
}
"""


@dataclass(frozen=True)
class Mix:
    name: str
    events: list[str]
    iters: int  # 64 MiB each, split between two processes: 16 384 faults each
    threads: bool = False


def mixes(scale: float) -> list[Mix]:
    return [
        Mix("faults-4m", NUMA, int(288 * scale)),
        Mix("faults-9m", NUMA, int(576 * scale)),
        Mix("shootdown-4m", NUMA, int(280 * scale), threads=True),
        Mix("kmem-4m", [*NUMA[:2], "kmem:mm_page_alloc", "kmem:mm_page_free"], int(96 * scale)),
    ]


def _run(cmd: list[str], out: Path | None = None) -> None:
    if out is None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "wb") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.DEVNULL)
    tmp.rename(out)


def load_command(work: Path, mix: Mix) -> list[str]:
    exe = work / "load"
    if not exe.exists():
        src = work / "load.c"
        src.write_text(LOAD_C)
        subprocess.run(["cc", "-O2", "-pthread", "-o", str(exe), str(src)], check=True)
    one = f"{exe} {mix.iters // 2}" + (" threads" if mix.threads else "")
    # two processes, one per CPU: faults on both CPUs, as on a busy host
    return ["bash", "-c", f"{one} & {one}; wait"]


def record(work: Path, mix: Mix) -> list[Path]:
    """The mix's files (recorded unless they exist)."""
    base = work / mix.name
    load = load_command(work, mix)
    events = ",".join(mix.events)
    dat, txt, perf = (Path(f"{base}{ext}") for ext in (".dat", ".txt", ".perf.data"))
    opts = ["--buffer-kb", "400000", "--events", events, "--numa-balancing", "on", "--force"]
    if not dat.exists():
        _run([*EXE, "record", "-o", str(dat), *opts, "--", *load])
    if not txt.exists():
        _run([*EXE, "record", "-o", str(txt), "--format", "text", *opts, "--", *load])
    if not perf.exists() and shutil.which("perf"):
        spec = [x for e in mix.events for x in ("-e", e)]
        tmp = Path(f"{perf}.tmp")
        _run(["perf", "record", "-a", "-q", "-m", "8M", "-o", str(tmp), *spec, "--", *load])
        tmp.rename(perf)
    report = Path(f"{base}.report.txt")
    if not report.exists() and shutil.which("trace-cmd"):
        _run(["trace-cmd", "report", "-i", str(dat)], report)
    script = Path(f"{base}.perfscript.txt")
    if perf.exists() and not script.exists():
        _run(["perf", "script", "-i", str(perf)], script)
    return [p for p in (dat, txt, perf, report, script) if p.exists()]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", default="/tmp/trbench-all/real")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every mix's length")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    for mix in mixes(args.scale):
        for path in record(work, mix):
            print(path)


if __name__ == "__main__":
    main()
