"""Discover a QEMU guest's RAM layout and VFIO pinning over its QMP socket.

What a trace cannot say and QEMU can (for the manifest):

* the VMM's pid: the peer credentials of the QMP unix socket (SO_PEERCRED);
* host virtual addresses of RAM blocks: ``x-query-ramblock`` (QEMU 6.2+,
  the text of HMP ``info ramblock``; its HVA column exists since QEMU 7.1),
  falling back to HMP ``info ramblock`` through ``human-monitor-command``;
* guest-physical placement (the KVM memslots): HMP ``info mtree -f``, the
  flat view of the ``memory`` address space, whose RAM lines name a region
  and an offset into it (``@...``);
* pinning: a ``vfio-*`` device without a vIOMMU makes QEMU map, and so
  long-term pin, all guest RAM (``pinned = "all"``); with a vIOMMU the
  pinned set changes at run time and is left unknown (noted);
* backends (``query-memdev``): an explicit host-node ``policy`` is an
  mbind, which NUMA balancing skips as ``unsuitable``.

Example::

    vm = discover_vm("/run/qemu/vm1.qmp")
    vm.facts.memslots, vm.facts.pinned_all, vm.notes
"""

from __future__ import annotations

import json
import re
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from tracereplay.record.manifest_out import RangeFacts, VmFacts
from tracereplay.record.procfs import comm_of
from tracereplay.record.tracefs import RecordError

__all__ = ["QemuVm", "QmpClient", "discover_vm", "parse_mtree", "parse_ramblocks"]

_VFIO_TYPES = ("vfio-pci", "vfio-pci-nohotplug", "vfio-ap", "vfio-ccw", "vfio-platform")
_VIOMMU_TYPES = ("intel-iommu", "amd-iommu", "virtio-iommu-pci", "virtio-iommu-device", "smmuv3")


class QmpError(RecordError):
    """The QMP socket is unreachable or answered with an error."""


class QmpClient:
    """Minimal synchronous QMP client (one command at a time; async events skipped)."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise QmpError(f"--qmp {path}: cannot connect: {e.strerror or e}") from None
        self._buf = b""
        self.greeting = self._message()
        if "QMP" not in self.greeting:
            raise QmpError(f"--qmp {path}: not a QMP socket (greeting {self.greeting!r:.80})")
        self.execute("qmp_capabilities")

    def peer_pid(self) -> int | None:
        try:
            creds = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        except OSError:
            return None
        pid: int = struct.unpack("3i", creds)[0]
        return pid or None

    def _message(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            try:
                chunk = self.sock.recv(65536)
            except OSError as e:
                raise QmpError(f"--qmp {self.path}: {e}") from None
            if not chunk:
                raise QmpError(f"--qmp {self.path}: connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg: dict[str, Any] = json.loads(line)
        except ValueError:
            raise QmpError(f"--qmp {self.path}: not JSON: {line[:80]!r}") from None
        return msg

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        req: dict[str, Any] = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        try:
            self.sock.sendall(json.dumps(req).encode() + b"\n")
        except OSError as e:  # QEMU went away (EPIPE, ECONNRESET)
            raise QmpError(f"--qmp {self.path}: {command}: {e.strerror or e}") from None
        while True:
            msg = self._message()
            if "event" in msg:
                continue
            if "error" in msg:
                err = msg["error"]
                raise QmpError(f"{command}: {err.get('class')}: {err.get('desc')}")
            return msg.get("return")

    def try_execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """``execute`` that returns None when QEMU lacks the command (older versions)."""
        try:
            return self.execute(command, arguments)
        except QmpError as e:
            if "CommandNotFound" in str(e) or "GenericError" in str(e):
                return None
            raise

    def hmp(self, command_line: str) -> str | None:
        out = self.try_execute("human-monitor-command", {"command-line": command_line})
        return out if isinstance(out, str) else None

    def close(self) -> None:
        self.sock.close()


@dataclass
class RamBlock:
    name: str
    offset: int
    used: int
    hva: int | None


@dataclass
class QemuVm:
    facts: VmFacts
    ramblocks: list[RamBlock] = field(default_factory=list)
    vfio_devices: list[str] = field(default_factory=list)
    viommu: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_ramblocks(text: str) -> list[RamBlock]:
    """Parse ``info ramblock`` (columns found by header name; HVA optional)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or "Block Name" not in lines[0]:
        return []
    header = lines[0].replace("Block Name", "Block_Name").split()
    blocks: list[RamBlock] = []
    for ln in lines[1:]:
        cols = ln.split()
        # PSize is "4 KiB" (two tokens): merge it so columns line up with the header
        if len(cols) > 2 and cols[2] in ("B", "KiB", "MiB", "GiB"):
            cols[1:3] = [cols[1] + cols[2]]
        row = dict(zip(header, cols, strict=False))
        try:
            hva = int(row["HVA"], 16) if "HVA" in row else None
            blocks.append(
                RamBlock(row["Block_Name"], int(row["Offset"], 16), int(row["Used"], 16), hva)
            )
        except (KeyError, ValueError):
            continue
    return blocks


_MTREE_LINE = re.compile(
    r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, (ram|rom|romd)\): (\S+)(?: @([0-9a-f]+))?"
)


def parse_mtree(text: str) -> list[tuple[int, int, str, int]]:
    """RAM ranges ``(gpa_start, size, region, offset)`` of the system memory flat view."""
    out: list[tuple[int, int, str, int]] = []
    in_memory = False
    for ln in text.splitlines():
        if ln.startswith("FlatView"):
            in_memory = False
        elif ln.strip().startswith('AS "memory"'):
            in_memory = True
        elif in_memory and (m := _MTREE_LINE.match(ln)):
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            out.append((start, end - start + 1, m.group(4), int(m.group(5) or "0", 16)))
    return out


def _qom_children(qmp: QmpClient, path: str) -> list[str]:
    items = qmp.try_execute("qom-list", {"path": path}) or []
    return [
        str(i.get("type", ""))[6:-1] for i in items if str(i.get("type", "")).startswith("child<")
    ]


def discover_vm(path: str) -> QemuVm:
    """Ask the QEMU behind ``path`` for its pid, RAM slots, vCPUs and VFIO pinning."""
    qmp = QmpClient(path)
    try:
        pid = qmp.peer_pid()
        if pid is None:
            raise QmpError(f"--qmp {path}: cannot tell the QEMU pid (SO_PEERCRED)")
        name = (qmp.try_execute("query-name") or {}).get("name") or comm_of(pid) or "qemu"
        vm = QemuVm(VmFacts(tgid=pid, name=name))
        cpus = qmp.try_execute("query-cpus-fast")
        if isinstance(cpus, list):
            vm.facts.vcpus = len(cpus)
        text = qmp.try_execute("x-query-ramblock")
        text = (
            text.get("human-readable-text") if isinstance(text, dict) else qmp.hmp("info ramblock")
        )
        vm.ramblocks = parse_ramblocks(text or "")
        flat = parse_mtree(qmp.hmp("info mtree -f") or "")
        by_name: dict[str, RamBlock] = {}
        for b in vm.ramblocks:
            by_name.setdefault(b.name, b)
            by_name.setdefault(b.name.rsplit("/", 1)[-1], b)  # "0000:00:02.0/vga.vram"
        for gpa, size, region, offset in flat:
            block = by_name.get(region)
            if block is None or block.hva is None:
                continue
            vm.facts.memslots.append(RangeFacts(block.hva + offset, size, gpa, note=region))
        if not vm.ramblocks:
            vm.notes.append("no RAM blocks from x-query-ramblock / info ramblock")
        elif all(b.hva is None for b in vm.ramblocks):
            vm.notes.append("this QEMU does not report RAM block HVAs (needs 7.1+): no memslots")
        elif not vm.facts.memslots:
            vm.notes.append("could not map RAM blocks to guest-physical ranges (info mtree -f)")
        types = _qom_children(qmp, "/machine/peripheral") + _qom_children(
            qmp, "/machine/peripheral-anon"
        )
        vm.vfio_devices = [t for t in types if t in _VFIO_TYPES]
        vm.viommu = [t for t in types if t in _VIOMMU_TYPES]
        if vm.vfio_devices and not vm.viommu:
            vm.facts.pinned_all = True  # VFIO maps (pins) all guest RAM without a vIOMMU
            vm.facts.comment = f"VFIO ({', '.join(vm.vfio_devices)}) without vIOMMU: all RAM pinned"
        elif vm.vfio_devices:
            vm.notes.append(
                f"VFIO with a vIOMMU ({', '.join(vm.viommu)}): pinned ranges change at run time, "
                "not recorded"
            )
        for mem in qmp.try_execute("query-memdev") or []:
            if mem.get("policy", "default") != "default":
                vm.notes.append(
                    f"memdev {mem.get('id')}: policy {mem['policy']} nodes {mem.get('host-nodes')} "
                    "(an mbind: NUMA balancing skips it as 'unsuitable')"
                )
        return vm
    finally:
        qmp.close()
