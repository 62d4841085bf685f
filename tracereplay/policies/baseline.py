"""``baseline``: what the traced kernel did, reconstructed (DESIGN §5).

Rules, per NUMA-scan chunk (one ``invalidate_range_start`` seen in the trace):

* the notifier reaches KVM; KVM's unmap path runs when the range touches a
  memslot (one call) and zaps every guest page of the range: upstream KVM zaps
  the whole notified range before the primary MMU decides what to protect;
* one remote TLB flush per call that zapped something (``kvm_flush_remote_tlbs``);
* the primary MMU makes PROT_NONE the guest pages the kernel does not skip
  (pin skipping by release, :mod:`tracereplay.reconstruct.kernel`);
* the host TLB flush of the chunk and its IPIs are the ones observed.
"""

from __future__ import annotations

from tracereplay.policies.base import Outcome, Policy, ReplayContext, register
from tracereplay.policies.rules import kernel_pte_pages
from tracereplay.reconstruct.model import VmActivity


@register
class Baseline(Policy):
    """What the traced kernel did (upstream: KVM zaps every notified range)."""

    name = "baseline"

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        g = vm.chunks["guest_pages"]
        touches = (g > 0).astype("int64")
        return Outcome(
            invalidates=g >= 0,
            unmap_calls=touches,
            zapped=g.copy(),
            flushes=touches,
            pte_updates=kernel_pte_pages(vm, ctx.kernel),
            host_flush=g >= 0,
            protects_pinned=ctx.kernel.pin_skip == "none",
        )
