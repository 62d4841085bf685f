"""Scenario description for the synthetic generator: dataclasses, TOML parsing, built-ins.

A scenario TOML looks like::

    name = "my-host"
    duration = 6.0            # seconds of trace
    stacks = true             # stacktrace trigger on kvm_unmap_hva_range
    seed = 1
    [host]
    nodes = 2
    cpus_per_node = 4
    kernel = "6.18.44"
    [numa_balancing]
    scan_delay_ms = 1000
    scan_period_min_ms = 1000
    scan_period_max_ms = 60000
    scan_size_mb = 256
    [[vm]]                    # or [[process]] for a non-VM process (threads instead of vcpus)
    name = "qemu-system-x86"
    ram = "1G"
    pinned = "all"            # or a fraction (0.25: the first quarter) or [{offset = "0", size = "256M"}]
    vcpus = 2
    vcpu_nodes = [0, 1]       # node of each vCPU, cycled
    mem_node = 0              # or "interleave" (1 GiB stripes over the nodes)
    thp = false
    shared = false            # MAP_SHARED memfd guest RAM (vhost-user / virtiofs style)
    hot_fraction = 0.125      # share of RAM the guest keeps touching
    pattern = "random"        # or "sequential" (the first hot_fraction of RAM)
    boot_seconds = 0.0        # >0: guest RAM is first touched progressively over this time
    zap_yield_pages = 0       # >0: KVM yields mmu_lock (extra flush) every N zapped pages while booting
    [[lost]]
    cpu = 1
    at = 2.5                  # seconds after the start
    count = 100
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

from tracereplay.errors import TraceReplayError
from tracereplay.units import parse_size as parse_bytes

BLOCK = 2 << 20  # the simulation's unit: one 2 MiB block (a PMD)


class ScenarioError(TraceReplayError):
    """A scenario file or name that cannot be used."""


@dataclass(frozen=True)
class HostSpec:
    nodes: int = 1
    cpus_per_node: int = 4
    kernel: str = "6.18.44"

    @property
    def cpus(self) -> int:
        return self.nodes * self.cpus_per_node


@dataclass(frozen=True)
class NumaSpec:
    scan_delay_ms: int = 1000
    scan_period_min_ms: int = 1000
    scan_period_max_ms: int = 60000
    scan_size_mb: int = 256


@dataclass(frozen=True)
class ProcSpec:
    name: str
    kind: str = "vm"  # "vm" | "process"
    ram: int = 1 << 30
    pinned: tuple[tuple[int, int], ...] = ()  # (offset, size) inside ram, 2 MiB aligned
    pinned_all: bool = False
    vcpus: int = 2  # vCPU threads (VM) or worker threads (process)
    vcpu_nodes: tuple[int, ...] = (0,)
    mem_node: int | str = 0
    thp: bool = False
    shared: bool = False
    hot_fraction: float = 0.125
    pattern: str = "random"
    boot_seconds: float = 0.0
    zap_yield_pages: int = 0
    write_fraction: float = 0.5


@dataclass(frozen=True)
class LostSpec:
    cpu: int
    at: float
    count: int


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    duration: float = 6.0
    stacks: bool = True
    seed: int = 1
    host: HostSpec = field(default_factory=HostSpec)
    numa: NumaSpec = field(default_factory=NumaSpec)
    procs: tuple[ProcSpec, ...] = ()
    lost: tuple[LostSpec, ...] = ()

    def with_overrides(self, *, seed: int | None = None, duration: float | None = None) -> Scenario:
        out = self
        if seed is not None:
            out = replace(out, seed=seed)
        if duration is not None:
            out = replace(out, duration=duration)
        return out


def parse_size(value: Any, where: str) -> int:
    """:func:`tracereplay.units.parse_size`, failing with a ScenarioError naming ``where``."""
    try:
        return parse_bytes(value)
    except ValueError:
        raise ScenarioError(
            f"{where}: {value!r} is not a size (bytes, or like '512M', '1T')"
        ) from None


def _proc(entry: dict[str, Any], kind: str, where: str) -> ProcSpec:
    known = {f for f in ProcSpec.__dataclass_fields__ if f not in ("kind", "pinned_all")}
    known |= {"threads"}
    extra = set(entry) - known
    if extra:
        raise ScenarioError(f"{where}: unknown key(s): {', '.join(sorted(extra))}")
    ram = parse_size(entry.get("ram", "1G"), f"{where}.ram")
    if ram <= 0 or ram % BLOCK:
        raise ScenarioError(f"{where}.ram must be a positive multiple of 2 MiB")
    pinned_all = False
    pinned: list[tuple[int, int]] = []
    p = entry.get("pinned", 0.0)
    if p == "all":
        pinned_all = True
        pinned = [(0, ram)]
    elif isinstance(p, int | float) and not isinstance(p, bool):
        if not 0 <= p <= 1:
            raise ScenarioError(f"{where}.pinned fraction must be within 0..1")
        size = round(ram * float(p) / BLOCK) * BLOCK
        pinned = [(0, size)] if size else []
        pinned_all = size == ram
    elif isinstance(p, list):
        for j, r in enumerate(p):
            off = parse_size(r.get("offset", 0), f"{where}.pinned[{j}].offset")
            size = parse_size(r.get("size", 0), f"{where}.pinned[{j}].size")
            if off % BLOCK or size % BLOCK or size <= 0 or off + size > ram:
                raise ScenarioError(f"{where}.pinned[{j}] must be 2 MiB aligned and inside ram")
            pinned.append((off, size))
    else:
        raise ScenarioError(f'{where}.pinned must be "all", a fraction or a list of ranges')
    threads = entry.get("vcpus", entry.get("threads", 2))
    nodes = entry.get("vcpu_nodes", [0])
    mem_node = entry.get("mem_node", 0)
    if not (isinstance(mem_node, int) or mem_node == "interleave"):
        raise ScenarioError(f'{where}.mem_node must be a node number or "interleave"')
    pattern = entry.get("pattern", "random")
    if pattern not in ("random", "sequential"):
        raise ScenarioError(f'{where}.pattern must be "random" or "sequential"')
    return ProcSpec(
        name=str(entry.get("name", "qemu-system-x86" if kind == "vm" else "worker"))[:15],
        kind=kind,
        ram=ram,
        pinned=tuple(sorted(pinned)),
        pinned_all=pinned_all,
        vcpus=int(threads),
        vcpu_nodes=tuple(int(n) for n in nodes) or (0,),
        mem_node=mem_node,
        thp=bool(entry.get("thp", False)),
        shared=bool(entry.get("shared", False)),
        hot_fraction=float(entry.get("hot_fraction", 0.125)),
        pattern=pattern,
        boot_seconds=float(entry.get("boot_seconds", 0.0)),
        zap_yield_pages=int(entry.get("zap_yield_pages", 0)),
        write_fraction=float(entry.get("write_fraction", 0.5)),
    )


def parse_scenario(data: dict[str, Any], where: str = "<scenario>") -> Scenario:
    known = {"name", "description", "duration", "stacks", "seed", "host", "numa_balancing"}
    extra = set(data) - known - {"vm", "process", "lost"}
    if extra:
        raise ScenarioError(f"{where}: unknown top-level key(s): {', '.join(sorted(extra))}")
    h = data.get("host", {})
    host = HostSpec(
        nodes=int(h.get("nodes", 1)),
        cpus_per_node=int(h.get("cpus_per_node", 4)),
        kernel=str(h.get("kernel", "6.18.44")),
    )
    n = data.get("numa_balancing", {})
    numa = NumaSpec(
        scan_delay_ms=int(n.get("scan_delay_ms", 1000)),
        scan_period_min_ms=int(n.get("scan_period_min_ms", 1000)),
        scan_period_max_ms=int(n.get("scan_period_max_ms", 60000)),
        scan_size_mb=int(n.get("scan_size_mb", 256)),
    )
    if numa.scan_period_min_ms <= 0 or numa.scan_size_mb <= 0:
        raise ScenarioError(f"{where}: scan_period_min_ms and scan_size_mb must be positive")
    procs = [_proc(e, "vm", f"{where}: vm[{i}]") for i, e in enumerate(data.get("vm", []))]
    procs += [
        _proc(e, "process", f"{where}: process[{i}]") for i, e in enumerate(data.get("process", []))
    ]
    if not procs:
        raise ScenarioError(f"{where}: no [[vm]] or [[process]]")
    for p in procs:
        if any(nd >= host.nodes for nd in p.vcpu_nodes) or (
            isinstance(p.mem_node, int) and p.mem_node >= host.nodes
        ):
            raise ScenarioError(f"{where}: {p.name}: node number beyond host.nodes")
    lost = tuple(
        LostSpec(cpu=int(e["cpu"]), at=float(e["at"]), count=int(e["count"]))
        for e in data.get("lost", [])
    )
    return Scenario(
        name=str(data.get("name", "scenario")),
        description=str(data.get("description", "")),
        duration=float(data.get("duration", 6.0)),
        stacks=bool(data.get("stacks", True)),
        seed=int(data.get("seed", 1)),
        host=host,
        numa=numa,
        procs=tuple(procs),
        lost=lost,
    )


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario TOML file."""
    if name_or_path in BUILTIN:
        return parse_scenario(BUILTIN[name_or_path], f"built-in {name_or_path}")
    try:
        with open(name_or_path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        names = ", ".join(sorted(BUILTIN))
        raise ScenarioError(
            f"{name_or_path}: neither a built-in scenario ({names}) nor a file"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{name_or_path}: not valid TOML: {e}") from None
    return parse_scenario(data, name_or_path)


_FAST = {"scan_delay_ms": 500, "scan_period_min_ms": 250, "scan_size_mb": 256}

BUILTIN: dict[str, dict[str, Any]] = {
    "vfio-full-pin": {
        "description": "VFIO guest without vIOMMU: all guest RAM long-term pinned (6.18)",
        "duration": 3.0,
        "host": {"nodes": 1, "cpus_per_node": 4},
        "numa_balancing": _FAST,
        "vm": [
            {
                "name": "qemu-system-x86",
                "ram": "1G",
                "pinned": "all",
                "vcpus": 2,
                "hot_fraction": 0.0625,
            }
        ],
    },
    "vfio-partial-pin": {
        "description": "vIOMMU-style guest: a quarter of guest RAM pinned for DMA (6.18)",
        "duration": 3.0,
        "host": {"nodes": 1, "cpus_per_node": 4},
        "numa_balancing": _FAST,
        "vm": [{"name": "qemu-system-x86", "ram": "1G", "pinned": 0.25, "vcpus": 3}],
    },
    "gpu-pinned-buffers": {
        "description": "non-VM process with pinned host buffers and a device mapping (6.18)",
        "duration": 3.0,
        "host": {"nodes": 1, "cpus_per_node": 4},
        "numa_balancing": _FAST,
        "process": [
            {"name": "gpu-worker", "ram": "512M", "pinned": 0.5, "threads": 3, "hot_fraction": 0.25}
        ],
    },
    "multinode-migrating": {
        "description": "two nodes, 6.8 kernel (per-PUD notifier), THP guest (no pin check for "
        "huge PMDs): unpinned memory migrates, pinned fails, vCPUs get placed",
        "duration": 3.0,
        "host": {"nodes": 2, "cpus_per_node": 4, "kernel": "6.8.12"},
        "numa_balancing": _FAST,
        "vm": [
            {
                "name": "qemu-system-x86",
                "ram": "2G",
                "pinned": 0.25,
                "vcpus": 4,
                "vcpu_nodes": [0, 1],
                "mem_node": 0,
                "thp": True,
                "hot_fraction": 0.5,
            }
        ],
    },
    "vm-boot-contention": {
        "description": "VFIO guest booting while NUMA scans run: faults race zaps, mmu_lock yields "
        "add flushes (the RFC v2 measurement)",
        "duration": 2.0,
        "host": {"nodes": 1, "cpus_per_node": 8},
        "numa_balancing": {"scan_delay_ms": 200, "scan_period_min_ms": 200, "scan_size_mb": 256},
        "vm": [
            {
                "name": "qemu-system-x86",
                "ram": "512M",
                "pinned": "all",
                "vcpus": 4,
                "boot_seconds": 1.5,
                "pattern": "sequential",
                "hot_fraction": 0.125,
                "zap_yield_pages": 8192,
            }
        ],
    },
    "shared-memory-vm": {
        "description": "guest RAM is a shared memfd (vhost-user/virtiofs), no pins, vCPUs on two nodes",
        "duration": 3.0,
        "host": {"nodes": 2, "cpus_per_node": 4},
        "numa_balancing": _FAST,
        "vm": [
            {
                "name": "cloud-hypervisor",
                "ram": "2G",
                "shared": True,
                "vcpus": 4,
                "vcpu_nodes": [0, 1],
                "mem_node": "interleave",
                "hot_fraction": 0.0625,
            }
        ],
    },
    "huge-guest": {
        "description": "1 TiB VFIO guest, 20% working set: tens of millions of events (scale)",
        # fully pinned on 6.18: no PTE is updated, so each task_numa_work call walks
        # virtpages = 8 x scan_size (8 GiB) and a pass over 1 TiB takes 128 calls
        "duration": 36.0,
        "stacks": True,
        "host": {"nodes": 1, "cpus_per_node": 16},
        "numa_balancing": {"scan_delay_ms": 250, "scan_period_min_ms": 250, "scan_size_mb": 1024},
        "vm": [
            {
                "name": "qemu-system-x86",
                "ram": "1T",
                "pinned": "all",
                "vcpus": 8,
                "hot_fraction": 0.2,
            }
        ],
    },
}
for _n, _d in BUILTIN.items():
    _d["name"] = _n

__all__ = [
    "BLOCK",
    "BUILTIN",
    "HostSpec",
    "LostSpec",
    "NumaSpec",
    "ProcSpec",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
    "parse_size",
]
