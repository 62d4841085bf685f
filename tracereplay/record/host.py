"""Host facts the recorder snapshots into the manifest (``[host]``: kernel, NUMA, vmstat).

vmstat counters are the kernel's own totals: the before/after delta lets
``analyze`` cross-check its trace-derived baseline. Everything here only
reads; nothing needs the analysis stack.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
from pathlib import Path
from typing import Any

from tracereplay.numa_tunables import SYSCTL, TUNABLES, tunable_path

__all__ = [
    "VMSTAT_PREFIXES",
    "host_facts",
    "numa_settings",
    "numa_topology",
    "read_vmstat",
]

VMSTAT_PREFIXES = ("numa_", "pgmigrate_", "nr_tlb_", "thp_migration_")
NODES = Path("/sys/devices/system/node")


def read_vmstat(path: str = "/proc/vmstat") -> dict[str, int]:
    out: dict[str, int] = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            name, value = line.split()
            if name.startswith(VMSTAT_PREFIXES):
                out[name] = int(value)
    return out


def numa_topology() -> dict[str, dict[str, Any]]:
    """``{"node0": {"cpus": "0-1", "mem_kb": ..., "distance": [10]}, ...}``."""
    topo: dict[str, dict[str, Any]] = {}
    if not NODES.is_dir():
        return topo
    nodes = sorted(
        (d for d in NODES.iterdir() if re.fullmatch(r"node\d+", d.name)),
        key=lambda d: int(d.name[4:]),
    )
    for d in nodes:
        entry: dict[str, Any] = {}
        try:
            entry["cpus"] = (d / "cpulist").read_text().strip()
            m = re.search(r"MemTotal:\s+(\d+)", (d / "meminfo").read_text())
            if m:
                entry["mem_kb"] = int(m.group(1))
            entry["distance"] = [int(x) for x in (d / "distance").read_text().split()]
        except OSError:
            pass
        topo[d.name] = entry
    return topo


def numa_settings() -> dict[str, Any]:
    """numa_balancing mode and whichever scan tunables are readable (debugfs may say EPERM)."""
    out: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        out["numa_balancing"] = int(Path(SYSCTL).read_text())
    tunables: dict[str, int] = {}
    for name in TUNABLES:
        try:
            tunables[name] = int(Path(tunable_path(name)).read_text())
        except (OSError, ValueError):
            continue
    try:
        rate = Path("/proc/sys/kernel/numa_balancing_promote_rate_limit_MBps").read_text()
        tunables["promote_rate_limit_MBps"] = int(rate)
    except (OSError, ValueError):
        pass
    out["numa_balancing_tunables"] = tunables
    return out


def host_facts() -> dict[str, Any]:
    """The ``[host]`` table minus the vmstat snapshots."""
    topo = numa_topology()
    facts: dict[str, Any] = {
        "kernel": platform.release(),
        "hostname": platform.node(),
        "numa_nodes": len(topo) or 1,
        "cpus": os.cpu_count() or 0,
    }
    facts.update(numa_settings())
    facts["numa_topology"] = topo
    return facts
