"""Names of the output contract (metrics, policies, bases, warning codes), shared by everything that reports them.

Only names live here (no logic), so the synthetic generator can use them and
stay independent of the replay engine it checks.
"""

from __future__ import annotations

# The per-policy, per-VM metrics of replay_metrics and analyze --format json, in report order.
METRICS = (
    "numa_invalidations",
    "kvm_unmap_calls",
    "kvm_pages_zapped",
    "kvm_remote_flushes",
    "tlb_shootdown_ipis",
    "numa_pte_updates",
    "numa_huge_pte_updates",
    "numa_hint_faults",
    "spte_refaults",
    "migrations_attempted",
    "migrations_failed",
    "pages_migrated",
    "task_numa_placements",
)

# The policies of the contract (plugins may add more).
CONTRACT_POLICIES = ("baseline", "notifier-flag", "numa-protect", "per-mm-optout", "per-vma-optout")

# Every built-in policy, replayed by default, in report order (the contract's five, then ours).
BUILTIN_POLICIES = (*CONTRACT_POLICIES, "pinned-longterm-mm")

BASES = ("observed", "derived", "assumed")

# Output file extensions naming a format (convert, synth): one list for every writer.
PERFETTO_SUFFIXES = (".perfetto-trace", ".pftrace", ".perfetto")
TRACE_DAT_SUFFIXES = (".dat",)

# Codes of analyze's ``warnings`` ({"code", "message"}; tracereplay.pipeline.diagnostics).
WARNING_CODES = (
    "manifest-entry-without-events",  # a manifest VM / process no event is attributed to
    "threads-without-process",  # threads of unknown process, with their KVM invalidations
    "missing-events",  # events the analysis needs that the trace lacks, and how to record them
    "nothing-to-replay",  # no VM and no pinned process with NUMA-scan activity
    "vmstat-disagreement",  # trace-derived baseline vs vmstat deltas outside 90..110 %
)

__all__ = [
    "BASES",
    "BUILTIN_POLICIES",
    "CONTRACT_POLICIES",
    "METRICS",
    "PERFETTO_SUFFIXES",
    "TRACE_DAT_SUFFIXES",
    "WARNING_CODES",
]
