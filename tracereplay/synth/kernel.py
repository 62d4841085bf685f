"""Kernel-release dependent behaviour the generator reproduces.

Each switch cites the kernel change it models; the truth rules in the package
docstring refer to these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracereplay.synth.scenario import ScenarioError

GIB = 1 << 30


def release_tuple(release: str) -> tuple[int, int]:
    m = re.match(r"^(\d+)\.(\d+)", release)
    if not m:
        raise ScenarioError(f"kernel release {release!r} does not start with MAJOR.MINOR")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class KernelModel:
    release: str
    # change_pte_range() skip of long-term pinned folios under prot_numa:
    #   "cow" (6.3..6.18): a COW (private) mapping skips them, a shared one does not,
    #   and PMD-mapped THPs (change_huge_pmd) are not checked. Up to 6.9 through the
    #   refcount test of commit 80d47f5de5e3 "mm: don't try to NUMA-migrate COW pages
    #   that have other uses" (5.17; a pin adds GUP_PIN_COUNTING_BIAS), from 6.10
    #   through folio_maybe_dma_pinned() ("mm: support multi-size THP numa balancing").
    #   "all" (6.19+): skipped unconditionally, huge PMDs too. ("none", pinned pages
    #   protected like any other, was the rule before 5.17: older than this model.)
    pin_skip: str
    # span of one MMU_NOTIFY_PROTECTION_VMA notifier inside one change_prot_numa() call:
    # per PUD range (1 GiB) from change_pmd_range() before 6.12, per P4D (512 GiB) once
    # commit 7f06e3aa2e83 "mm/mprotect: push mmu notifier to PUDs" (6.12) moved it.
    notifier_granule: int
    # how an smp_call_function_many() IPI shows: "direct" (6.3: ipi_send_* carry the
    # callback), "queued" (6.4-6.5, commit 5c3124975e15 traces every queued call as
    # ipi_send_cpumask(callback) and the real IPI with the generic handler), "csd"
    # (6.6+, commit bf5a8c26ad7c: csd_queue_cpu names the callback per target, the
    # IPI names generic_smp_call_function_single_interrupt).
    ipi_mode: str
    # mm_migrate_pages prints nr_split since 6.9
    migrate_nr_split: bool
    # tlb_flush reason names were re-cased in late 2025 (6.18: "local MM shootdown")
    tlb_upper: bool
    # KVM's remote-flush IPI callback (ack_flush was renamed ack_kick in 5.15)
    kvm_ack: str = "ack_kick"


def kernel_model(release: str) -> KernelModel:
    v = release_tuple(release)
    if v < (6, 3):
        raise ScenarioError(
            f"kernel {release}: releases before 6.3 have no ipi_send_cpu/ipi_send_cpumask "
            "tracepoints, so KVM flushes would be invisible; use 6.3 or later"
        )
    pin_skip = "cow" if v < (6, 19) else "all"
    return KernelModel(
        release=release,
        pin_skip=pin_skip,
        notifier_granule=GIB if v < (6, 12) else 512 * GIB,
        ipi_mode="direct" if v < (6, 4) else "queued" if v < (6, 6) else "csd",
        migrate_nr_split=v >= (6, 9),
        tlb_upper=v >= (6, 18),
    )


__all__ = ["KernelModel", "kernel_model", "release_tuple"]
