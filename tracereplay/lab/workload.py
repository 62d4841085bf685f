"""Multi-threaded page-touching workload over partly pinned anonymous memory.

NUMA balancing ignores single-threaded processes whose pages already sit on the
target node (``mm_users == 1`` skip in ``change_pte_range``), so the workload
always runs >= 2 threads. Each thread writes every 4 KiB page of the whole
region, again and again, for the given time, with ``ctypes.memset`` (which
releases the GIL). Two touch modes:

* ``chunk`` (default): one memset per ``chunk`` bytes (16 MiB). The threads
  spend nearly all their time in memset without the GIL, so they really run
  at the same time on different CPUs; that is what makes the NUMA scan's host
  TLB shootdowns send IPIs (x86 only IPIs CPUs currently running the mm).
* ``page``: one 1-byte memset per page. Measured here: the GIL is handed over
  at every call, the futex wake-ups send ~20 000 wake-up IPIs per second and
  the threads rarely run concurrently, so shootdowns need no IPI. Kept for
  comparison, not for fixtures.

Command line::

    python -m tracereplay.lab.workload --mem 256M --pinned 64M --threads 2 --seconds 8

prints one JSON line on stdout as soon as the memory is mapped, touched and
pinned, i.e. before the timed touching starts::

    {"pid": 1234, "comm": "tr-workload", "region": {"hva_start": ..., "size": ...},
     "pinned": {"hva_start": ..., "size": ...}, "threads": 2, "seconds": 8.0}

and, when done, a second line with the results (passes per thread and the
mm's ``numa_scan_seq`` from ``/proc/self/sched``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .layout import PIN_HOW, publish_layout
from .numa import numa_scan_seq
from .pinned import PAGE_SIZE, AnonRegion, IoUringPin, parse_size

__all__ = ["WorkloadInfo", "main", "run_workload", "set_comm"]

_PR_SET_NAME = 15
_libc = ctypes.CDLL(None, use_errno=True)


def set_comm(name: str) -> None:
    """Set the calling thread's comm (shows up in traces; emits task:task_rename)."""
    _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


@dataclass
class WorkloadInfo:
    """What a recorder needs to know about the running workload (manifest facts)."""

    pid: int
    comm: str
    region: dict[str, int]
    pinned: dict[str, int]
    threads: int
    seconds: float
    touch: str = "chunk"
    chunk: int = 16 << 20
    passes: list[int] = field(default_factory=list)  # filled in when done
    numa_scan_seq: int | None = None  # idem


def _toucher(
    addr: int,
    size: int,
    stop: threading.Event,
    index: int,
    nthreads: int,
    passes: list[int],
    step: int,
    width: int,
) -> None:
    set_comm(f"tr-touch-{index}")
    memset = ctypes.memset
    n = 0
    value = 1 + index
    # Start each thread at a different place so that they do not race for the
    # same PROT_NONE page (both would take a fault, only one a hint fault).
    offsets = list(range(0, size, step))
    shift = len(offsets) * index // nthreads
    offsets = offsets[shift:] + offsets[:shift]
    while not stop.is_set():
        for off in offsets:
            memset(addr + off, value, min(width, size - off))
        n += 1
    passes[index] = n


def run_workload(
    mem: int,
    pinned: int,
    threads: int = 2,
    seconds: float = 8.0,
    *,
    thp: bool = False,
    touch: str = "chunk",
    chunk: int = 16 << 20,
    comm: str = "tr-workload",
    on_ready: Callable[[WorkloadInfo], None] | None = None,
) -> WorkloadInfo:
    """Map ``mem`` bytes, pin the first ``pinned`` bytes, touch them from ``threads`` threads.

    ``touch`` is ``"chunk"`` (memset ``chunk`` bytes per call) or ``"page"``
    (memset 1 byte per 4 KiB page per call); see the module docstring.

    ``on_ready`` is called (in the main thread) after mapping and pinning and
    before the timed phase. Returns the info with per-thread pass counts.
    """
    if threads < 2:
        raise ValueError("threads must be >= 2 (mm_users == 1 is skipped by NUMA balancing)")
    if not 0 <= pinned <= mem:
        raise ValueError("pinned must be within mem")
    if touch == "page":
        step, width = PAGE_SIZE, 1
    elif touch == "chunk" and chunk > 0 and chunk % PAGE_SIZE == 0:
        step, width = chunk, chunk
    else:
        raise ValueError("touch must be 'page' or 'chunk' with a page-multiple chunk")
    set_comm(comm)
    with AnonRegion(mem, thp=thp) as region:
        region.populate()
        pin = IoUringPin(region.addr, pinned) if pinned else None
        try:
            info = WorkloadInfo(
                pid=os.getpid(),
                comm=comm,
                region={"hva_start": region.addr, "size": mem},
                pinned={"hva_start": region.addr, "size": pinned},
                threads=threads,
                seconds=seconds,
                touch=touch,
                chunk=width if touch == "chunk" else 1,
                passes=[0] * threads,
            )
            pins = [dict(info.pinned, how=PIN_HOW)] if pinned else []
            doc = {"kind": "process", "comm": comm, "threads": threads, "regions": [info.region]}
            layout = publish_layout({**doc, "pinned": pins})
            if on_ready is not None:
                on_ready(info)
            stop = threading.Event()
            workers = [
                threading.Thread(
                    target=_toucher,
                    args=(region.addr, mem, stop, i, threads, info.passes, step, width),
                    daemon=True,
                )
                for i in range(threads)
            ]
            try:
                for w in workers:
                    w.start()
                stop.wait(seconds)
            finally:
                # also on Ctrl-C: no thread may touch the region once it is unmapped
                stop.set()
                for w in workers:
                    if w.is_alive():
                        w.join()
            info.numa_scan_seq = numa_scan_seq()
            os.close(layout)
        finally:
            if pin is not None:
                pin.close()
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tracereplay.lab.workload", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--mem", default="256M", help="region size (K/M/G suffixes)")
    ap.add_argument("--pinned", default="64M", help="long-term pinned prefix of the region")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument(
        "--thp", action="store_true", help="allow transparent huge pages (default: 4 KiB)"
    )
    ap.add_argument("--touch", choices=["chunk", "page"], default="chunk")
    ap.add_argument("--chunk", default="16M", help="bytes per memset call in chunk mode")
    ap.add_argument("--comm", default="tr-workload")
    args = ap.parse_args(argv)

    def ready(info: WorkloadInfo) -> None:
        d = asdict(info)
        del d["passes"], d["numa_scan_seq"]
        print(json.dumps(d), flush=True)

    info = run_workload(
        parse_size(args.mem),
        parse_size(args.pinned),
        args.threads,
        args.seconds,
        thp=args.thp,
        touch=args.touch,
        chunk=parse_size(args.chunk),
        comm=args.comm,
        on_ready=ready,
    )
    print(
        json.dumps({"pid": info.pid, "passes": info.passes, "numa_scan_seq": info.numa_scan_seq}),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
