"""What ``top`` analyzes without a manifest: VMs, guest RAM and pins, from /proc (and QMP).

Each source and what it assumes (also returned as ``assumptions``, so the
view and ``--json`` say it):

* VMs: processes holding an ``anon_inode:kvm-vm`` fd (:mod:`tracereplay.record.procfs`);
  one address space per process, however many VMs it holds.
* Guest RAM: QMP (``--qmp``, QEMU's RAM blocks) or the layout a lab VMM
  publishes; else /proc/PID/maps: every writable private-anonymous, memfd or
  hugetlbfs mapping of at least :data:`MIN_GUEST_RAM` bytes is *assumed* to
  be guest RAM (QEMU's ``pc.ram``, cloud-hypervisor's and Firecracker's
  anonymous RAM). A guest whose RAM is split into smaller mappings is missed;
  a big non-RAM mapping (a heap arena) is counted as RAM.
* Pins: ``VmPin`` (/proc/PID/status: io_uring registered buffers, RDMA,
  iommufd) gives a size but no location, so nothing is taken as pinned from
  it. A VFIO group or device fd (``/dev/vfio/N``, ``/dev/vfio/devices/vfioN``,
  ``anon_inode:[vfio-device]``) in a VM is taken as *all guest RAM pinned*
  (VFIO type1 without a vIOMMU pins it all; with a vIOMMU only DMA-mapped
  pages are, so this overstates the pinned share). An io_uring fd is noted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracereplay.manifest import Manifest, parse_manifest
from tracereplay.record.manifest_out import ProcessFacts, RangeFacts, VmFacts, manifest_text
from tracereplay.record.procfs import PROC, ProcSnapshot, fd_links
from tracereplay.record.targets import discover_targets

__all__ = ["MIN_GUEST_RAM", "Discovery", "guest_ram_from_maps", "pin_fds"]

MIN_GUEST_RAM = 64 << 20
_VFIO = re.compile(r"^(/dev/vfio/(\d+|devices/vfio\d+)|anon_inode:\[vfio-device\])$")
_IO_URING = "anon_inode:[io_uring]"
_MAPS = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$")


def guest_ram_from_maps(maps: str, min_size: int = MIN_GUEST_RAM) -> list[RangeFacts]:
    """Mappings of ``maps`` assumed to be guest RAM (see the module docstring)."""
    out = []
    for line in maps.splitlines():
        m = _MAPS.match(line)
        if m is None:
            continue
        lo, hi, perms, inode, path = int(m[1], 16), int(m[2], 16), m[3], int(m[4]), m[5]
        if not perms.startswith("rw") or hi - lo < min_size:
            continue
        anon = inode == 0 and (path == "" or path.startswith("[anon"))
        if anon or path.startswith("/memfd:") or "hugepages" in path or "/dev/hugepages" in path:
            out.append(RangeFacts(lo, hi - lo, note=f"assumed guest RAM from maps: {path or 'anon'}"))
    return out


def pin_fds(pid: int, proc: Path = PROC) -> tuple[list[str], bool]:
    """(VFIO fd links, holds an io_uring fd) of a process."""
    links = fd_links(pid, proc).values()
    return sorted({x for x in links if _VFIO.match(x)}), _IO_URING in links


@dataclass
class Discovery:
    """The VMs and pinning processes found so far, kept up to date with :meth:`refresh`."""

    scope: set[int] | None = None  # --vm: only these tgids
    qmp: str | None = None
    exclude: set[int] = field(default_factory=lambda: {os.getpid()})
    proc: Path = PROC
    log: Callable[[str], None] = lambda msg: None
    vms: list[VmFacts] = field(default_factory=list)
    processes: list[ProcessFacts] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    procs: dict[int, ProcSnapshot] = field(default_factory=dict)

    # -- the TargetSink protocol of record.targets ---------------------------------------

    def facts(self) -> list[VmFacts | ProcessFacts]:
        return [*self.vms, *self.processes]

    def known(self, pid: int) -> bool:
        return any(f.tgid == pid for f in self.facts())

    def watch(self, pid: int) -> None:
        if pid not in self.procs:
            self.procs[pid] = ProcSnapshot.take(pid, self.proc)
        else:
            self.procs[pid].update(self.proc)

    # -- discovery -------------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Look for new VMs and pinning processes, drop those gone; returns new warnings."""
        alive = {p for p in self.procs if (self.proc / str(p)).exists()}
        self.vms = [v for v in self.vms if v.tgid in alive]
        self.processes = [p for p in self.processes if p.tgid in alive]
        self.procs = {p: s for p, s in self.procs.items() if p in alive}
        if self.qmp and not self.vms:
            self._from_qmp(self.qmp)
        new_before = {v.tgid for v in self.vms} | {p.tgid for p in self.processes}
        warnings = discover_targets(self, self.scope, self.log, exclude=self.exclude, proc=self.proc)
        for vm in self.vms:
            if vm.tgid not in new_before:
                self._complete_vm(vm)
        for each in self.procs.values():
            each.update(self.proc)
        for facts in self.facts():
            snap = self.procs.get(facts.tgid)
            if snap is not None:
                facts.tids = sorted(snap.tids)
                if snap.vm_pin_kib and not facts.pinned and not getattr(facts, "pinned_all", False):
                    facts.vm_pin_kib = snap.vm_pin_kib
        return warnings

    def _from_qmp(self, path: str) -> None:
        from tracereplay.record.qmp import discover_vm

        vm = discover_vm(path)
        self.vms.append(vm.facts)
        self.notes += [f"qmp: {n}" for n in vm.notes]
        self.watch(vm.facts.tgid)

    def _complete_vm(self, vm: VmFacts) -> None:
        """Guest RAM from maps and pins from fds, where the lab layout or QMP said nothing."""
        vfio, uring = pin_fds(vm.tgid, self.proc)
        snap = self.procs.get(vm.tgid)
        if not vm.memslots and snap is not None and snap.maps:
            vm.memslots = guest_ram_from_maps(snap.maps)
            if vm.memslots:
                mib = sum(r.size for r in vm.memslots) >> 20
                self._assume(
                    f"VM {vm.tgid} ({vm.name}): guest RAM assumed to be its {len(vm.memslots)} "
                    f"writable anonymous/memfd/hugetlb mapping(s) of at least "
                    f"{MIN_GUEST_RAM >> 20} MiB in /proc/{vm.tgid}/maps ({mib} MiB)"
                )
        if vfio and not vm.pinned and not vm.pinned_all:
            vm.pinned_all = True
            self._assume(
                f"VM {vm.tgid} ({vm.name}): VFIO fd ({vfio[0]}): all guest RAM assumed long-term "
                "pinned (true for VFIO type1 without a vIOMMU; with one, only DMA-mapped pages are)"
            )
        if uring:
            self.notes.append(
                f"process {vm.tgid} holds an io_uring fd: registered buffers are pinned "
                "(in VmPin), their location is unknown"
            )

    def _assume(self, text: str) -> None:
        if text not in self.assumptions:
            self.assumptions.append(text)
            self.log(f"assumption: {text}")

    def manifest(self, host: dict[str, Any], recording: dict[str, Any]) -> Manifest:
        """The manifest ``analyze`` would read for what was found (validated like record's)."""
        import tomllib

        text = manifest_text(self.vms, self.processes, host, recording, path="<top>")
        return parse_manifest(tomllib.loads(text), "<top: discovered>")
