#!/usr/bin/env python3
"""Reference figures for a recorded corpus, computed WITHOUT tracereplay.

Input: the tracefs ``trace`` text of a recording *with* ``record-tgid`` (every
event names its process), or without it plus the true thread -> process map
taken from /proc while the workloads ran (``--tgids``), its manifest (TOML: ``[[vm]]`` memslots and pinned
ranges, ``[[process]]`` regions and pinned ranges) and, optionally, the kernel
release. Output: one JSON object with, per VM, the figures of the policies
``baseline``, ``notifier-flag``, ``numa-protect`` and ``per-mm-optout`` that
can be computed directly on a KVM that emits no ``kvm_page_fault`` events
(like this machine's PVM KVM), and per pinned process its hint faults.

This file imports nothing from tracereplay on purpose: it is written from the
counting rules as stated in DESIGN §5 and the policy docstrings, not from the
code, so that a test comparing the two can fail when either is wrong.

Rules implemented (kernel 5.17..6.18, private anonymous 4 KiB guest RAM; the
lab's memory is exactly that):

* an invalidation is a ``kvm_unmap_hva_range`` event of the VM's process; it is
  NUMA-caused when its stack (``stacktrace`` trigger, the ``<stack trace>``
  record right after it on the same CPU) contains ``task_numa_work`` or
  ``change_prot_numa``. The script refuses a trace without stacks;
* guest pages of an invalidation: 4 KiB pages of its range inside a memslot;
  pinned pages: those of them inside a pinned range;
* with no ``kvm_page_fault`` events every guest page in a zapped range is
  taken as present, and every page made PROT_NONE as touched (one hint fault,
  one SPTE refault per zapped page) before the next scan;
* ``baseline`` (upstream KVM): every NUMA invalidation reaches KVM; one unmap
  call per invalidation touching guest RAM, which zaps all its guest pages and
  flushes remote TLBs once; the primary MMU makes PROT_NONE the guest pages
  minus the pinned ones (5.17..6.18 skip pinned pages of private mappings:
  by their refcount through 6.9, as maybe-DMA-pinned folios from 6.10);
* ``notifier-flag`` (RFC v1): same calls; KVM zaps only the unpinned guest
  pages and flushes once if it zapped any; PTE updates as baseline (patch 2);
* ``numa-protect`` (RFC v2, batch 1): one unmap call and one flush per page
  made PROT_NONE (the unpinned guest pages), zapping exactly those;
* ``per-mm-optout``: the process is never scanned: everything 0.

KVM remote flushes observed in the trace (IPIs whose callback is a KVM flush
handler) would raise the baseline's flush count; none exist on this machine,
and the script refuses traces that have them rather than model them.

Usage::

    python tests/reference_figures.py TRACE.tgid.txt.gz TRACE.manifest.toml [-o OUT.json]
    python tests/reference_figures.py TRACE.txt.gz TRACE.manifest.toml --tgids TRACE.tgids.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tomllib
from collections import defaultdict
from typing import Any, TextIO

PAGE = 4096
LINE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:\S+\s+)?(?P<ts>\d+\.\d+):\s+(?P<rest>.*)$"
)
UNMAP = re.compile(
    r"^kvm_unmap_hva_range: mmu notifier unmap range: (0x[0-9a-f]+) -- (0x[0-9a-f]+)"
)
FAULT = re.compile(r"^page_fault_user: address=(0x[0-9a-f]+) ip=\S+ error_code=(0x[0-9a-f]+)")
IPI = re.compile(r"^ipi_send_cpu(?:mask)?: .*callback=(\S+)")
NUMA_FRAMES = ("task_numa_work", "change_prot_numa")
KVM_FLUSH_CALLBACKS = ("ack_kick", "ack_flush")
POLICIES = ("baseline", "notifier-flag", "numa-protect", "per-mm-optout")
FIGURES = (
    "numa_invalidations",
    "kvm_unmap_calls",
    "kvm_pages_zapped",
    "kvm_remote_flushes",
    "numa_pte_updates",
    "numa_hint_faults",
    "spte_refaults",
)


def ranges(entries: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return sorted((int(r["hva_start"]), int(r["hva_start"]) + int(r["size"])) for r in entries)


def overlap(lo: int, hi: int, rs: list[tuple[int, int]]) -> int:
    return sum(max(0, min(hi, b) - max(lo, a)) for a, b in rs)


def read_trace(
    f: TextIO, tgids: dict[int, int] | None = None
) -> tuple[list[dict[str, Any]], list[tuple[int, int, int, int]], int]:
    """(invalidations with their stacks, user faults (tgid, address, error, ts), KVM flush IPIs).

    The process of an event is the text's tgid column, or ``tgids[pid]`` when the
    text has none (-1 when neither knows it).
    """
    unmaps: list[dict[str, Any]] = []
    faults: list[tuple[int, int, int, int]] = []
    last_on_cpu: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None  # the unmap whose stack is being read
    kvm_flush_ipis = 0
    for raw in f:
        if raw.startswith(" => "):
            if current is not None:
                current["stack"].append(raw[4:].strip())
            continue
        current = None
        m = LINE.match(raw)
        if not m:
            continue
        rest, cpu = m["rest"], int(m["cpu"])
        if rest.startswith("<stack trace>"):
            prev = last_on_cpu.pop(cpu, None)
            if prev is not None and prev["pid"] == int(m["pid"]):
                current = prev
            continue
        last_on_cpu.pop(cpu, None)
        if m["tgid"] is not None:
            tgid = int(m["tgid"]) if m["tgid"].isdigit() else -1
        else:
            tgid = (tgids or {}).get(int(m["pid"]), -1)
        ns = int(m["ts"].replace(".", ""))
        if u := UNMAP.match(rest):
            ev = {"ts": ns, "pid": int(m["pid"]), "tgid": tgid, "lo": int(u[1], 16)}
            ev |= {"hi": int(u[2], 16), "stack": []}
            unmaps.append(ev)
            last_on_cpu[cpu] = ev
        elif p := FAULT.match(rest):
            faults.append((tgid, int(p[1], 16), int(p[2], 16), ns))
        elif (i := IPI.match(rest)) and i[1].startswith(KVM_FLUSH_CALLBACKS):
            kvm_flush_ipis += 1
    return unmaps, faults, kvm_flush_ipis


def vm_figures(
    unmaps: list[dict[str, Any]], slots: list[tuple[int, int]], pinned: list[tuple[int, int]]
) -> dict[str, dict[str, int]]:
    out = {pol: dict.fromkeys(FIGURES, 0) for pol in POLICIES}
    base, flag, protect = out["baseline"], out["notifier-flag"], out["numa-protect"]
    for u in unmaps:
        guest = overlap(u["lo"], u["hi"], slots) // PAGE
        inside = [
            (max(u["lo"], a), min(u["hi"], b)) for a, b in slots if a < u["hi"] and u["lo"] < b
        ]
        pin = sum(overlap(lo, hi, pinned) for lo, hi in inside) // PAGE
        unpinned = guest - pin
        for fig in (base, flag, protect):
            fig["numa_invalidations"] += 1
            fig["numa_pte_updates"] += unpinned
            fig["numa_hint_faults"] += unpinned
        base["kvm_unmap_calls"] += guest > 0
        base["kvm_pages_zapped"] += guest
        base["kvm_remote_flushes"] += guest > 0
        flag["kvm_unmap_calls"] += guest > 0
        flag["kvm_pages_zapped"] += unpinned
        flag["kvm_remote_flushes"] += unpinned > 0
        protect["kvm_unmap_calls"] += unpinned
        protect["kvm_pages_zapped"] += unpinned
        protect["kvm_remote_flushes"] += unpinned
    for fig in out.values():
        fig["spte_refaults"] = fig["kvm_pages_zapped"]
    return out


def process_figures(
    faults: list[tuple[int, int]], regions: list[tuple[int, int]], pinned: list[tuple[int, int]]
) -> dict[str, int]:
    """Not-present user faults in the regions: hint faults on PROT_NONE pages (populated memory).

    Two threads touching one PROT_NONE page at once both fault, so the events are
    an upper bound of the hint faults and the distinct pages per part a lower one.
    """
    pages: dict[str, set[int]] = defaultdict(set)
    events: dict[str, int] = defaultdict(int)
    for addr, err in faults:
        if err & 1 or not overlap(addr, addr + 1, regions):
            continue
        part = "pinned" if overlap(addr, addr + 1, pinned) else "unpinned"
        pages[part].add(addr >> 12)
        events[part] += 1
    return {
        "hint_fault_events_unpinned": events["unpinned"],
        "hint_fault_pages_unpinned": len(pages["unpinned"]),
        "hint_fault_events_pinned": events["pinned"],
        "hint_fault_pages_pinned": len(pages["pinned"]),
    }


def reference(
    trace: TextIO, manifest: dict[str, Any], tgids: dict[int, int] | None = None
) -> dict[str, Any]:
    unmaps, faults, kvm_flush_ipis = read_trace(trace, tgids)
    if kvm_flush_ipis:
        raise SystemExit(f"{kvm_flush_ipis} KVM flush IPIs: this script does not model them")
    if unmaps and not any(u["stack"] for u in unmaps):
        raise SystemExit("no stack traces on kvm_unmap_hva_range: the cause is unknown")
    out: dict[str, Any] = {"vms": {}, "processes": {}}
    for vm in manifest.get("vm", []):
        mine = [u for u in unmaps if u["tgid"] == vm["tgid"]]
        numa = [u for u in mine if any(f.startswith(NUMA_FRAMES) for f in u["stack"])]
        figs = vm_figures(numa, ranges(vm.get("memslot", [])), ranges(vm.get("pinned", [])))
        out["vms"][str(vm["tgid"])] = {
            "name": vm.get("name", ""),
            "invalidations": len(mine),
            "threads_with_invalidations": len({u["pid"] for u in mine}),
            "policies": figs,
        }
    for proc in manifest.get("process", []):
        mine_f = [(a, e) for t, a, e, _ in faults if t == proc["tgid"]]
        figs_p = process_figures(
            mine_f, ranges(proc.get("region", [])), ranges(proc.get("pinned", []))
        )
        out["processes"][str(proc["tgid"])] = {"name": proc.get("name", ""), **figs_p}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace", help="tracefs text with record-tgid, or --tgids (.gz is read as gzip)")
    ap.add_argument("manifest", help="the recording's manifest (TOML)")
    ap.add_argument("--tgids", help="JSON {tid: tgid} for a text without the tgid column")
    ap.add_argument("-o", "--output", help="write the JSON here (default: stdout)")
    args = ap.parse_args(argv)
    with open(args.manifest, "rb") as f:
        manifest = tomllib.load(f)
    opener: Any = gzip.open if args.trace.endswith(".gz") else open
    tgids = None
    if args.tgids:
        with open(args.tgids) as f:
            tgids = {int(k): int(v) for k, v in json.load(f).items()}
    with opener(args.trace, "rt") as f:
        ref = reference(f, manifest, tgids)
    text = json.dumps(ref, indent=1, sort_keys=True) + "\n"
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
