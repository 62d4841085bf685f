"""``numa-protect``: RFC v2 ".numa_protect() callback" (Aug 2023), optionally batched.

KVM ignores NUMA invalidations at ``invalidate_range_start``; instead the
primary MMU calls ``.numa_protect()`` once per PTE (4 KiB) or PMD it actually
makes PROT_NONE, and KVM zaps that page, with its own remote TLB flush each
time it zapped a present SPTE — no batching. That is why the RFC's own numbers
show KVM unmap calls rising (~35 to ~10 000 per VM boot) while remote flushes
fell (~8 600 to ~4 600): the baseline's flushes were dominated by flush storms
under mmu_lock contention, which this replay sees only through the observed
KVM flush IPIs. Includes the series' patch 2 (pinned anonymous-exclusive pages
are never protected). Rules per chunk:

* the notifier still reaches KVM but does nothing there;
* ``kvm_unmap_calls`` = ``kvm_remote_flushes`` = ceil(protected pages / batch)
  (``batch`` = 1 models the RFC; larger values a batched variant);
* ``kvm_pages_zapped`` = pages made PROT_NONE.
"""

from __future__ import annotations

from tracereplay.policies.base import Outcome, Policy, ReplayContext, register
from tracereplay.policies.rules import host_flush_kept, rfc_pte_pages
from tracereplay.reconstruct.model import VmActivity


@register
class NumaProtect(Policy):
    """RFC v2: KVM zaps only what the primary MMU protects, one call per page (batch=1)."""

    name = "numa-protect"

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        batch = int(self.params.get("batch", 1))
        if batch < 1:
            raise ValueError("numa-protect batch must be >= 1")
        pte = rfc_pte_pages(vm, ctx.kernel)
        calls = -(-pte // batch)  # ceil
        return Outcome(
            invalidates=pte >= 0,
            unmap_calls=calls,
            zapped=pte.copy(),
            flushes=calls.copy(),
            pte_updates=pte,
            host_flush=host_flush_kept(vm, pte),
            protects_pinned=False,
        )
