"""``notifier-flag``: RFC v1 "Reduce NUMA balance caused TLB-shootdowns in a VM" (Aug 2023).

The series adds an ``MMU_NOTIFIER_RANGE_NUMA`` flag to NUMA-balancing
invalidations, and (patch 2) makes ``change_pte_range`` / ``change_huge_pmd``
skip maybe-DMA-pinned anonymous-exclusive pages. Rules per chunk:

* the notifier still reaches KVM (``numa_invalidations`` unchanged);
* KVM, seeing the flag, leaves alone the SPTEs of the pages the primary MMU
  will skip and zaps only the rest; its unmap path still runs once for every
  invalidation touching a memslot (it walks the range to find what to skip),
  and flushes remote TLBs once when it zapped something;
* pages made PROT_NONE: the guest pages minus pinned anonymous-exclusive ones;
* the host flush of a chunk remains when it still changes PTEs.
"""

from __future__ import annotations

from tracereplay.policies.base import Outcome, Policy, ReplayContext, register
from tracereplay.policies.rules import host_flush_kept, rfc_pte_pages
from tracereplay.reconstruct.model import VmActivity


@register
class NotifierFlag(Policy):
    """RFC v1: KVM skips the SPTEs of pages the primary MMU will not protect."""

    name = "notifier-flag"

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        pte = rfc_pte_pages(vm, ctx.kernel)
        return Outcome(
            invalidates=pte >= 0,
            unmap_calls=(vm.chunks["guest_pages"] > 0).astype("int64"),
            zapped=pte.copy(),
            flushes=(pte > 0).astype("int64"),
            pte_updates=pte,
            host_flush=host_flush_kept(vm, pte),
            protects_pinned=False,
        )
