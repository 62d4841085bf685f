"""Where the kernel keeps the NUMA-balancing switch and its scan tunables.

``/proc/sys/kernel/numa_balancing`` is the switch. The scan tunables lived in
``/proc/sys/kernel/numa_balancing_scan_*`` until they moved to
``/sys/kernel/debug/sched/numa_balancing/`` (kernel commit 8a99b6833c88,
"sched: Move SCHED_DEBUG sysctl to debugfs", v5.13). Read by the recorder (for
the manifest) and written by the lab (for a run); only paths live here.
"""

from __future__ import annotations

import os

SYSCTL = "/proc/sys/kernel/numa_balancing"
DEBUGFS = "/sys/kernel/debug"
TUNABLES = ("scan_delay_ms", "scan_period_min_ms", "scan_period_max_ms", "scan_size_mb")


def tunable_path(name: str) -> str:
    """The file of tunable ``name`` (one of :data:`TUNABLES`) on this kernel."""
    legacy = f"/proc/sys/kernel/numa_balancing_{name}"
    if os.path.exists(legacy):
        return legacy
    return f"{DEBUGFS}/sched/numa_balancing/{name}"


__all__ = ["DEBUGFS", "SYSCTL", "TUNABLES", "tunable_path"]
