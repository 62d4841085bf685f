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

* the notifier still reaches KVM (``numa_invalidations`` unchanged) but does
  nothing there;
* ``kvm_unmap_calls`` = ceil(PTEs + huge PMDs made PROT_NONE / ``batch``): one
  ``.numa_protect()`` per 4 KiB PTE, or per PMD in a THP memslot (``batch`` = 1
  models the RFC; larger values a batched variant);
* ``kvm_pages_zapped``: the present SPTEs among them (page model of
  :mod:`tracereplay.reconstruct.pages`; assumed: all of them);
* ``kvm_remote_flushes`` = ceil(calls that zapped a present SPTE / ``batch``);
  ``tlb_shootdown_ipis`` = kept host IPIs + flushes x the baseline's KVM IPIs
  per flush;
* migrations: the baseline's calls minus the failed ones.
"""

from __future__ import annotations

from tracereplay.params import Param
from tracereplay.policies.base import Outcome, Policy, ReplayContext, register
from tracereplay.policies.rules import host_flush_kept, rfc_prot_sel, run_pages
from tracereplay.reconstruct.model import VmActivity


@register
class NumaProtect(Policy):
    """RFC v2: KVM zaps only what the primary MMU protects, one call per page (batch=1)."""

    name = "numa-protect"
    proposal = "RFC v2 (Aug 2023): a .numa_protect() mmu-notifier callback"
    legend = (
        "numa-protect: KVM ignores NUMA invalidations and zaps each page the primary MMU "
        "protects (RFC v2 .numa_protect())"
    )
    rules = (
        "NUMA invalidations still reach KVM but do nothing there. The primary MMU calls "
        ".numa_protect() for every 4 KiB PTE or huge PMD it actually makes PROT_NONE, and KVM "
        "zaps that page, with a remote TLB flush each time it zapped a present SPTE: unmap calls "
        "rise to one per protected page (divided by `batch`, 1 = the RFC) while flushes follow "
        "the pages that had a present SPTE. Includes the series' patch 2 (pinned "
        "anonymous-exclusive pages are never protected); migrations are the baseline's minus "
        "the failed ones."
    )
    parameters = (
        Param(
            "batch",
            int,
            1,
            "protected pages per .numa_protect() call and remote flush (1 = the RFC, no batching)",
            min=1,
        ),
    )

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        batch: int = self.params["batch"]
        sel = rfc_prot_sel(ctx.kernel)
        run = run_pages(vm, sel, sel)
        return Outcome.from_pages(
            run,
            invalidates=vm.chunks["guest_pages"] >= 0,
            unmap_calls=-(-run.made_units // batch),
            flushes=-(-run.zapped_units // batch),
            host_flush=host_flush_kept(vm, run.made_pages),
        )
