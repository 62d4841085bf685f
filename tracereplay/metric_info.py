"""What each reported metric means: its unit, and how its basis (observed / derived / assumed) is decided.

Data only, for ``tracereplay metrics`` and the reports; the names are those of the
metric contract (:data:`tracereplay.contract.METRICS`) plus ``est_cpu_us`` and
``mmtests_autonuma_cost``. The basis rules restate what
:func:`tracereplay.replay.engine._bases` decides (a test keeps the two in step)::

    info = metric_info("kvm_unmap_calls_avoided")
    info.unit, info.basis_rule
"""

from __future__ import annotations

from dataclasses import dataclass

from tracereplay.contract import BASES

# The basis rules shared by several metrics.
_GUEST = (
    "derived when guest RAM comes from the manifest (or --guest-ram), assumed when it is "
    "inferred from the invalidations (no manifest)"
)
_PAGES = (
    "with kvm_page_fault events in the trace (replayed page by page): derived when guest RAM "
    "comes from the manifest, assumed when inferred; without them: assumed (every page taken "
    "as present and touched)"
)
_OBSERVED = (
    "baseline: observed (read from the trace's events); other policies: derived (the observed "
    "ones their rules keep)"
)


@dataclass(frozen=True)
class MetricInfo:
    """One metric: ``unit`` of its value, ``meaning`` in a sentence, ``basis_rule`` how its basis is set."""

    name: str
    unit: str
    meaning: str
    basis_rule: str


METRIC_INFO: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo(
            "numa_invalidations",
            "notifier calls",
            "NUMA-caused mmu-notifier invalidations (invalidate_range_start) reaching KVM",
            "baseline: observed when every one's cause comes from a kernel stack, derived when "
            "the cause is inferred; other policies: derived",
        ),
        MetricInfo(
            "kvm_unmap_calls",
            "calls",
            "calls into KVM's unmap path that touch memslots",
            _GUEST,
        ),
        MetricInfo(
            "kvm_pages_zapped",
            "4 KiB pages",
            "guest pages whose present SPTE is zapped",
            _PAGES,
        ),
        MetricInfo(
            "kvm_remote_flushes",
            "flush requests",
            "KVM remote TLB flush requests (kvm_flush_remote_tlbs)",
            _GUEST,
        ),
        MetricInfo(
            "tlb_shootdown_ipis",
            "IPIs (per target CPU)",
            "IPIs sent for TLB shootdown, host and KVM, counted per target CPU",
            "baseline: observed (flush_tlb_func and KVM flush IPIs); other policies: derived "
            "(the observed IPIs of each flush the policy keeps); processes without a known "
            "scan coverage: assumed",
        ),
        MetricInfo(
            "numa_pte_updates",
            "4 KiB pages",
            "pages made PROT_NONE, in 4 KiB units like vmstat (a huge PMD counts 512)",
            _GUEST + "; processes: assumed when part of the scan coverage is unknown",
        ),
        MetricInfo(
            "numa_huge_pte_updates",
            "huge PMDs",
            "huge PMDs made PROT_NONE",
            _GUEST,
        ),
        MetricInfo(
            "numa_hint_faults",
            "faults",
            "NUMA hint faults taken on pages made PROT_NONE",
            _PAGES + "; processes: from their user page faults, assumed without them",
        ),
        MetricInfo(
            "spte_refaults",
            "faults",
            "secondary-MMU faults re-installing a zapped SPTE",
            _PAGES,
        ),
        MetricInfo(
            "migrations_attempted",
            "migration calls",
            "NUMA (numa_misplaced) mm_migrate_pages calls",
            _OBSERVED,
        ),
        MetricInfo(
            "migrations_failed",
            "migration calls",
            "NUMA migration calls with a failed page",
            "baseline: observed; other policies: assumed (failed migrations are taken to be of "
            "pinned pages, which a policy sparing pinned pages never hint-faults)",
        ),
        MetricInfo(
            "pages_migrated",
            "4 KiB pages",
            "pages NUMA migrations moved (sum of succeeded; a THP counts 512)",
            _OBSERVED,
        ),
        MetricInfo(
            "task_numa_placements",
            "decisions",
            "sched_move_numa / swap / stick task placement decisions",
            _OBSERVED,
        ),
        MetricInfo(
            "est_cpu_us",
            "µs of CPU (estimate)",
            "CPU time of the counts above under the cost model (defaults or --costs FILE)",
            "derived: computed from the other metrics",
        ),
        MetricInfo(
            "mmtests_autonuma_cost",
            "mmtests cost units (ms if its weights are read as ns per event)",
            "mmtests' AutoNUMA cost: (7 x numa_pte_updates + 5000 x numa_hint_faults "
            "+ 19 x pages_migrated) / 10^6",
            "the weakest basis of numa_pte_updates, numa_hint_faults and pages_migrated",
        ),
    )
}

AVOIDED_RULE = "derived (baseline minus the policy), assumed when the policy's own value is assumed"


def metric_info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of ``name``; ``<metric>_avoided`` gets its metric's unit."""
    if name.endswith("_avoided") and name[: -len("_avoided")] in METRIC_INFO:
        base = METRIC_INFO[name[: -len("_avoided")]]
        return MetricInfo(
            name,
            base.unit,
            f"baseline minus the policy: {base.meaning} avoided (negative: added)",
            AVOIDED_RULE,
        )
    try:
        return METRIC_INFO[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r} (known: {', '.join(METRIC_INFO)})") from None


def weakest_basis(*bases: str) -> str:
    """The least certain of ``bases`` (assumed < derived < observed): a sum's basis."""
    return max(bases, key=BASES.index) if bases else "derived"


__all__ = ["AVOIDED_RULE", "METRIC_INFO", "MetricInfo", "metric_info", "weakest_basis"]
