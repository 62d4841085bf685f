"""``notifier-flag``: RFC v1 "Reduce NUMA balance caused TLB-shootdowns in a VM" (Aug 2023).

The series adds an ``MMU_NOTIFIER_RANGE_NUMA`` flag to NUMA-balancing
invalidations, and (patch 2) makes ``change_pte_range`` / ``change_huge_pmd``
skip maybe-DMA-pinned anonymous-exclusive pages. Rules per chunk:

* the notifier still reaches KVM (``numa_invalidations`` unchanged);
* KVM, seeing the flag, leaves alone the SPTEs of maybe-DMA-pinned pages (the
  series' KVM patch checks ``page_maybe_dma_pinned()`` whatever the mapping) and
  zaps the present SPTEs of the rest (zap selection ``unpinned``); its unmap
  path still runs once for every invalidation touching a memslot (it walks the
  range to find what to skip), and flushes remote TLBs once when it zapped a
  present SPTE (no contention model: no yield flushes);
* pages made PROT_NONE: the guest pages minus pinned anonymous-exclusive ones
  (4 KiB and huge PMDs), minus those already PROT_NONE; hint faults, refaults
  and presence from the page model (:mod:`tracereplay.reconstruct.pages`);
* the host flush of a chunk remains when it still changes PTEs;
  ``tlb_shootdown_ipis`` = kept host IPIs + flushes x the baseline's KVM IPIs
  per flush;
* migrations: the baseline's calls minus the failed ones (pinned pages are no
  longer protected, so never hint-faulted).
"""

from __future__ import annotations

from tracereplay.policies.base import Outcome, Policy, ReplayContext, register
from tracereplay.policies.rules import host_flush_kept, pinned_reason, rfc_prot_sel, run_pages
from tracereplay.reconstruct.model import VmActivity


@register
class NotifierFlag(Policy):
    """RFC v1: KVM skips the SPTEs of pages the primary MMU will not protect."""

    name = "notifier-flag"
    proposal = (
        "RFC v1 'Reduce NUMA balance caused TLB-shootdowns in a VM' (Aug 2023): "
        "an MMU_NOTIFIER_RANGE_NUMA mmu-notifier flag"
    )
    legend = "notifier-flag: NUMA invalidations carry a flag; KVM keeps the SPTEs of pinned pages"
    rules = (
        "NUMA invalidations still reach KVM, flagged MMU_NOTIFIER_RANGE_NUMA. KVM leaves the SPTEs "
        "of maybe-DMA-pinned pages alone and zaps the present SPTEs of the rest of the range "
        "(one unmap call per invalidation touching a memslot, one remote flush when it zapped "
        "something). With the series' patch 2 the primary MMU no longer makes pinned "
        "anonymous-exclusive pages PROT_NONE (4 KiB and huge PMDs), so they take no hint fault and "
        "no failed migration; the host TLB flush stays for calls that still change a PTE."
    )

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        run = run_pages(vm, "unpinned", rfc_prot_sel(ctx.kernel))
        return Outcome.from_pages(
            run,
            invalidates=vm.chunks["guest_pages"] >= 0,
            unmap_calls=(vm.chunks["guest_pages"] > 0).astype("int64"),
            flushes=(run.zapped_units > 0).astype("int64"),
            host_flush=host_flush_kept(vm, run.made_pages),
        )

    def why_unchanged(self, vm: VmActivity, ctx: ReplayContext) -> str:
        return pinned_reason(vm) or super().why_unchanged(vm, ctx)
