"""``baseline``: what the traced kernel did, reconstructed from the trace.

Rules, per NUMA-scan chunk (one ``invalidate_range_start`` seen in the trace):

* the notifier reaches KVM; KVM's unmap path runs when the range touches a
  memslot (one ``kvm_unmap_calls``) and zaps the SPTEs of the whole range
  (zap selection ``guest``): upstream KVM zaps the notified range before the
  primary MMU decides what to protect (``kvm_mmu_notifier_invalidate_range_start``,
  unchanged through 6.18). ``kvm_pages_zapped`` counts the pages whose SPTE was
  present (page model of :mod:`tracereplay.reconstruct.pages`: observed from
  ``kvm_page_fault`` when traced, else every guest page, assumed);
* ``kvm_remote_flushes`` = max(1 if the zap hit a present SPTE, the distinct KVM
  flush requests observed for the chunk): ``kvm_flush_remote_tlbs`` once per
  invalidation that zapped something, plus the extra flushes when the TDP MMU
  zap yields mmu_lock under contention (``tdp_mmu_iter_cond_resched`` with
  ``flush=true``), which show as extra flush IPI bursts;
* the primary MMU makes PROT_NONE the guest pages the kernel does not skip and
  that are not PROT_NONE already (pin skipping by release, with the kernel
  commits, in :mod:`tracereplay.reconstruct.kernel`; 5.17..6.18 do not check pins
  for huge PMDs in ``change_huge_pmd()``); a THP memslot counts 512 ``numa_pte_updates`` and 1
  ``numa_huge_pte_updates`` per PMD; ``numa_hint_faults`` = first fault after a
  protection (observed mode) or one per PTE update (assumed);
* ``spte_refaults``: faults on pages a zap made non-present (observed mode) or
  one per zapped page (assumed);
* the host TLB flush of the chunk and its IPIs are the ones observed;
  ``tlb_shootdown_ipis`` = observed host shootdown + KVM flush IPIs, per target.
* a non-VM process (``[[process]]``): no KVM part (every KVM metric 0); its
  chunks are the regions each task_numa_work call covered, pages and hint
  faults replayed from its user page faults (host mode of the page model), and
  ``tlb_shootdown_ipis`` the observed host shootdown IPIs of its calls;
* migrations: ``migrations_attempted`` = NUMA (``numa_misplaced``)
  ``mm_migrate_pages`` calls, ``migrations_failed`` = those with failed > 0,
  ``pages_migrated`` = sum of succeeded; ``task_numa_placements`` = sched
  move/swap/stick events (all observed).
"""

from __future__ import annotations

import numpy as np

from tracereplay.policies.base import Outcome, Policy, ReplayContext, register
from tracereplay.policies.rules import host_flush_kept, kernel_prot_sel, run_pages
from tracereplay.reconstruct.model import VmActivity


@register
class Baseline(Policy):
    """What the traced kernel did (upstream: KVM zaps every notified range)."""

    name = "baseline"
    proposal = "none: today's kernel (upstream KVM zaps every notified range)"
    legend = "baseline: what the traced kernel did, reconstructed from the trace"
    rules = (
        "Every NUMA-scan invalidation in the trace reaches KVM, which zaps the SPTEs of the whole "
        "notified range before the primary MMU decides what to protect, and flushes remote TLBs "
        "once per invalidation that zapped a present SPTE (plus the flush storms observed under "
        "mmu_lock contention). The primary MMU makes PROT_NONE the guest pages the traced kernel "
        "does not skip (pin skipping by kernel release, --pin-skip overrides); hint faults, "
        "refaults, migrations and task placements are the observed ones or one per page when "
        "the trace lacks kvm_page_fault events."
    )

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        g = vm.chunks["guest_pages"]
        run = run_pages(vm, "guest", kernel_prot_sel(ctx.kernel))
        observed = vm.chunks.get("kvm_flush_requests", np.zeros(len(g), np.int64))
        # a VM's change_prot_numa() call flushes once, after its last notifier granule
        # (marked there, as host_flush_kept does, so a policy replaying this outcome gets
        # the baseline's IPIs); a process's chunk is one region a call covered: one
        # flush when it changed a PTE
        if vm.kind == "process":
            host = run.made_pages > 0
        else:
            host = host_flush_kept(vm, np.ones(len(g), np.int64))
        return Outcome.from_pages(
            run,
            invalidates=g >= 0,
            unmap_calls=(g > 0).astype("int64"),
            flushes=np.maximum((run.zapped_units > 0).astype("int64"), observed),
            host_flush=host,
            protects_pinned=ctx.kernel.pin_skip == "none",
        )
