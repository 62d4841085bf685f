"""Which processes a recording is about, and what the manifest says about each.

:func:`discover_targets` looks through /proc (:mod:`.procfs`) for

* KVM VMMs: processes holding an ``anon_inode:kvm-vm`` fd, written as ``[[vm]]``
  with their vCPU count. Guest RAM (memslots) comes from QMP when ``--qmp``
  names the socket, from the lab VMM's published layout (:mod:`tracereplay.lab.layout`),
  or from nowhere: then the manifest and stderr say it is left for ``analyze``
  to infer (cloud-hypervisor, Firecracker, crosvm expose no memslot table);
* non-VM processes with long-term pinned memory (``VmPin`` > 0 in
  /proc/PID/status: io_uring registered buffers, RDMA, iommufd), written as
  ``[[process]]``.

Where pins are not located by a source, only their size is known: ``VmPin``
goes into ``vm_pin_kib`` and no ``pinned`` range is written (the analysis then
takes nothing as pinned, and the comment says so). VFIO type1 charges its pins
to ``locked_vm`` (``VmLck``), not ``pinned_vm``, so a VFIO guest shows VmLck,
which mlock() also raises: the recorder reports it but assumes nothing from it.

Threads (``tids``) and maps are filled in later from the session's snapshots,
taken at the start, during and at the end of the recording.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tracereplay.record.manifest_out import ProcessFacts, RangeFacts, VmFacts
from tracereplay.record.procfs import (
    PROC,
    KvmProcess,
    comm_of,
    fd_links,
    find_kvm_processes,
    find_pinning_processes,
    lab_info,
    status_kib,
)

__all__ = ["TargetSink", "descendants", "discover_targets", "process_facts", "vm_facts"]

FOUND = "found through its anon_inode:kvm-vm file descriptor"
NO_RAM = (
    "guest RAM unknown (no QMP socket, no published layout): no memslots written, "
    "left for analyze to infer from the NUMA-scanned ranges"
)


def _pinned(doc: dict[str, Any]) -> list[RangeFacts]:
    return [
        RangeFacts(
            int(p["hva_start"]), int(p["size"]), note=f"long-term pinned: {p.get('how', '?')}"
        )
        for p in doc.get("pinned", [])
        if int(p.get("size", 0)) > 0
    ]


def vm_facts(vmm: KvmProcess, proc: Path = PROC) -> tuple[VmFacts, str | None]:
    """The ``[[vm]]`` facts of a VMM and, when guest RAM is unknown, a warning saying so."""
    facts = VmFacts(vmm.pid, vmm.comm, vcpus=vmm.vcpus or None)
    parts = [FOUND]
    if vmm.vms > 1:
        parts.append(f"it holds {vmm.vms} VMs, listed as one [[vm]] (one address space)")
    warning = None
    lab = vmm.lab if vmm.lab and vmm.lab.get("kind") == "vm" else None
    if lab is not None:
        facts.memslots = [
            RangeFacts(
                int(s["hva_start"]),
                int(s["size"]),
                int(s["gpa_start"]),
                f"slot {s.get('slot', '?')}",
            )
            for s in lab.get("memslots", [])
        ]
        facts.pinned = _pinned(lab)
        parts.append("memslots and pins as published by the lab VMM (memfd tracereplay-lab)")
    else:
        parts.append(NO_RAM)
        warning = f"VM {vmm.pid} ({vmm.comm}): {NO_RAM}; --qmp SOCKET gives it for QEMU"
        pin = status_kib(vmm.pid, "VmPin", proc)
        if pin:
            parts.append(
                f"VmPin {pin} KiB long-term pinned, location unknown: nothing taken as pinned"
            )
    lck = status_kib(vmm.pid, "VmLck", proc)
    if lck:
        parts.append(
            f"VmLck {lck} KiB (VFIO type1 charges its pins there, mlock too): not taken as pinned"
        )
    facts.comment = "; ".join(parts)
    return facts, warning


def process_facts(pid: int, proc: Path = PROC) -> ProcessFacts:
    """``[[process]]`` facts of a non-VM process: regions and pins if it publishes them."""
    facts = ProcessFacts(pid, comm_of(pid, proc))
    doc = lab_info(pid, fd_links(pid, proc), proc)
    if doc is not None and doc.get("kind") == "process":
        facts.regions = [RangeFacts(int(r["hva_start"]), int(r["size"])) for r in doc["regions"]]
        facts.pinned = _pinned(doc)
        facts.threads = doc.get("threads")
        facts.comment = "regions and pins as published by the lab workload (memfd tracereplay-lab)"
    else:
        pin = status_kib(pid, "VmPin", proc)
        if pin:
            facts.comment = (
                f"VmPin {pin} KiB long-term pinned (pinned_vm: io_uring, RDMA, iommufd), "
                "location unknown: nothing taken as pinned"
            )
    return facts


def descendants(root: int, proc: Path = PROC) -> set[int]:
    """``root`` and every process below it (by the ppid of /proc/PID/stat)."""
    parent: dict[int, int] = {}
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            parent[int(entry.name)] = int(fields[1])
    out = {root}
    grew = True
    while grew:
        new = {pid for pid, ppid in parent.items() if ppid in out} - out
        out |= new
        grew = bool(new)
    return out


class TargetSink(Protocol):
    """Where discover_targets adds what it finds (the recorder's Session)."""

    vms: list[VmFacts]
    processes: list[ProcessFacts]
    notes: list[str]

    def known(self, pid: int) -> bool: ...
    def watch(self, pid: int) -> None: ...


def discover_targets(
    session: TargetSink,
    scope: set[int] | None,
    log: Callable[[str], None],
    *,
    exclude: set[int] | None = None,
    proc: Path = PROC,
) -> list[str]:
    """Add the VMMs and pinning processes in ``scope`` (None: the whole host); returns warnings."""
    warnings: list[str] = []
    skip = exclude or set()
    pids = None if scope is None else sorted(scope)
    for vmm in find_kvm_processes(proc, pids):
        if vmm.pid in skip or session.known(vmm.pid):
            continue
        vm, warning = vm_facts(vmm, proc)
        session.vms.append(vm)
        session.watch(vmm.pid)
        ram = sum(s.size for s in vm.memslots) >> 20
        log(
            f"VM: pid {vmm.pid} ({vmm.comm}), {vmm.vcpus} vCPU fd(s)"
            + (f", {ram} MiB guest RAM in {len(vm.memslots)} memslot(s)" if vm.memslots else "")
        )
        if warning:
            warnings.append(warning)
    vm_pids = {v.tgid for v in session.vms}
    for pid in find_pinning_processes(proc, skip | vm_pids):
        if (scope is not None and pid not in scope) or session.known(pid):
            continue
        facts = process_facts(pid, proc)
        session.processes.append(facts)
        session.watch(pid)
        session.notes.append(f"process {pid} ({facts.name}) has long-term pinned memory (VmPin)")
        log(f"pinned process: pid {pid} ({facts.name})")
    return warnings
