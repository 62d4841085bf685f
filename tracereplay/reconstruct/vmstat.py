"""Cross-check of the trace-derived baseline against the kernel's own vmstat deltas.

The recorder snapshots /proc/vmstat before and after (manifest ``[host.vmstat_*]``).
vmstat counts the whole host, the trace-derived numbers count the guest RAM of
the VMs in the manifest: agreement close to (and below) 100 % means the
reconstruction accounts for what the kernel did; the rest is other processes.
"""

from __future__ import annotations

from typing import Any

# trace-derived baseline metric -> vmstat counter
PAIRS = {
    "numa_pte_updates": "numa_pte_updates",
    "numa_huge_pte_updates": "numa_huge_pte_updates",
    "numa_hint_faults": "numa_hint_faults",
    "pages_migrated": "numa_pages_migrated",
}


def cross_check(derived: dict[str, float], delta: dict[str, int]) -> list[dict[str, Any]]:
    """One row per counter present in both: derived, kernel, agreement (derived / kernel)."""
    rows = []
    for metric, counter in PAIRS.items():
        if counter not in delta or metric not in derived:
            continue
        kernel = delta[counter]
        value = derived[metric]
        rows.append(
            {
                "metric": metric,
                "vmstat": counter,
                "derived": int(value),
                "kernel": int(kernel),
                "agreement": round(value / kernel, 4) if kernel else (1.0 if value == 0 else None),
            }
        )
    return rows


__all__ = ["PAIRS", "cross_check"]
