"""What /proc says about the processes a recording is about: KVM VMMs, threads, pins, maps.

VMMs without a QMP socket (cloud-hypervisor, Firecracker, crosvm, our lab
VMM) are found the way ``lsof`` would: a KVM VM is a file descriptor whose
link reads ``anon_inode:kvm-vm`` (``KVM_CREATE_VM`` returns it; each vCPU is
an ``anon_inode:kvm-vcpu:N``). Nothing in /proc says where such a VMM keeps
guest RAM; our lab workloads publish it in a memfd named
:data:`LAB_MEMFD` (a JSON document, see :mod:`tracereplay.lab.layout`),
others leave it to the analysis to infer.

Every function takes the proc root as a parameter so the tests can point it at
a fake tree. Nothing here needs the analysis stack.

Example::

    for vmm in find_kvm_processes():
        print(vmm.pid, vmm.comm, vmm.vms, vmm.vcpus, thread_ids(vmm.pid))
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracereplay.lab.layout import LAB_MEMFD

__all__ = [
    "LAB_MEMFD",
    "PROC",
    "KvmProcess",
    "ProcSnapshot",
    "comm_of",
    "fd_links",
    "find_kvm_processes",
    "find_pinning_processes",
    "is_kvm_vmm",
    "lab_info",
    "read_maps",
    "start_time",
    "status_kib",
    "thread_ids",
]

PROC = Path("/proc")
KVM_VM_LINK = "anon_inode:kvm-vm"
KVM_VCPU_LINK = re.compile(r"anon_inode:kvm-vcpu(?::\d+)?$")
# memfd_create(LAB_MEMFD): its fd link reads "/memfd:tracereplay-lab (deleted)"
_LAB_LINK = f"/memfd:{LAB_MEMFD} "


def _pids(proc: Path) -> list[int]:
    try:
        return sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return []


def fd_links(pid: int, proc: Path = PROC) -> dict[int, str]:
    """``{fd: link target}`` of a process (empty if it is gone or not ours to read)."""
    base = proc / str(pid) / "fd"
    try:
        fds = os.listdir(base)
    except OSError:
        return {}
    links: dict[int, str] = {}
    for fd in fds:
        try:
            links[int(fd)] = os.readlink(base / fd)
        except (OSError, ValueError):
            continue
    return links


def comm_of(pid: int, proc: Path = PROC) -> str:
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def read_maps(pid: int, proc: Path = PROC) -> str | None:
    try:
        return (proc / str(pid) / "maps").read_text()
    except OSError:
        return None


def thread_ids(pid: int, proc: Path = PROC) -> list[int]:
    """The thread ids of a process now (``/proc/PID/task``); empty if it is gone."""
    try:
        return sorted(int(t) for t in os.listdir(proc / str(pid) / "task") if t.isdigit())
    except OSError:
        return []


def start_time(pid: int, proc: Path = PROC) -> int | None:
    """Start time (clock ticks after boot, field 22 of /proc/PID/stat): tells pid reuse apart."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    rest = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def status_kib(pid: int, key: str, proc: Path = PROC) -> int | None:
    """A ``kB`` line of /proc/PID/status (``VmPin``, ``VmLck``, ...); None if absent."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{re.escape(key)}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def is_kvm_vmm(pid: int, proc: Path = PROC) -> bool:
    """True when the process holds a KVM VM file descriptor (``anon_inode:kvm-vm``)."""
    return KVM_VM_LINK in fd_links(pid, proc).values()


def lab_info(pid: int, links: dict[int, str], proc: Path = PROC) -> dict[str, Any] | None:
    """The layout a lab workload publishes in its :data:`LAB_MEMFD` memfd, if it has one."""
    for fd, link in links.items():
        if not link.startswith(_LAB_LINK):
            continue
        try:
            data = json.loads((proc / str(pid) / "fd" / str(fd)).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None
    return None


@dataclass
class KvmProcess:
    """A process holding KVM VM file descriptors: a VMM."""

    pid: int
    comm: str
    vms: int  # anon_inode:kvm-vm descriptors (almost always 1)
    vcpus: int  # distinct anon_inode:kvm-vcpu:N descriptors
    lab: dict[str, Any] | None = None  # layout published by a lab workload


def find_kvm_processes(proc: Path = PROC, pids: list[int] | None = None) -> list[KvmProcess]:
    """Every process (or every one of ``pids``) holding an ``anon_inode:kvm-vm`` fd."""
    found = []
    for pid in _pids(proc) if pids is None else pids:
        links = fd_links(pid, proc)
        targets = list(links.values())
        vms = targets.count(KVM_VM_LINK)
        if not vms:
            continue
        # distinct names: a VMM may hold a vCPU fd twice (Python's mmap dups it)
        vcpus = len({t for t in targets if KVM_VCPU_LINK.match(t)})
        found.append(KvmProcess(pid, comm_of(pid, proc), vms, vcpus, lab_info(pid, links, proc)))
    return found


def find_pinning_processes(proc: Path = PROC, exclude: set[int] | None = None) -> list[int]:
    """Processes with long-term pinned memory charged to them (``VmPin`` > 0), KVM or not."""
    skip = exclude or set()
    return [p for p in _pids(proc) if p not in skip and (status_kib(p, "VmPin", proc) or 0) > 0]


def _mapped_bytes(maps: str) -> int:
    total = 0
    for line in maps.splitlines():
        lo, _, hi = line.partition(" ")[0].partition("-")
        try:
            total += int(hi, 16) - int(lo, 16)
        except ValueError:
            continue
    return total


@dataclass
class ProcSnapshot:
    """Threads and maps of one process, collected at the start, during and at the end.

    ``tids`` is the union of every ``/proc/PID/task`` listing taken, so threads
    created (or gone) during the recording are all listed; a listing taken
    after the pid was reused by another process (another start time) is ignored.
    ``maps`` is the snapshot that mapped the most memory.
    """

    pid: int
    started: int | None
    tids: set[int] = field(default_factory=set)
    maps: str | None = None
    vm_pin_kib: int | None = None
    vm_lck_kib: int | None = None
    _mapped: int = 0

    @classmethod
    def take(cls, pid: int, proc: Path = PROC) -> ProcSnapshot:
        snap = cls(pid, start_time(pid, proc))
        snap.update(proc)
        return snap

    def update(self, proc: Path = PROC) -> None:
        if self.started is not None and start_time(self.pid, proc) != self.started:
            return  # gone, or the pid now names another process
        tids = thread_ids(self.pid, proc)
        maps = read_maps(self.pid, proc)
        if not tids:
            return
        self.tids.update(tids)
        # keep the snapshot that maps the most memory: the process at work, not
        # starting up or tearing down (a VMM unmaps guest RAM before it exits)
        if maps and _mapped_bytes(maps) >= self._mapped:
            self.maps, self._mapped = maps, _mapped_bytes(maps)
        # the largest size seen: a workload may unpin before the last snapshot
        pin = status_kib(self.pid, "VmPin", proc)
        lck = status_kib(self.pid, "VmLck", proc)
        if pin is not None:
            self.vm_pin_kib = max(pin, self.vm_pin_kib or 0)
        if lck is not None:
            self.vm_lck_kib = max(lck, self.vm_lck_kib or 0)
