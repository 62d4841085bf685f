"""Opt-outs from NUMA balancing: ``per-mm-optout``, ``per-vma-optout``, ``pinned-longterm-mm``.

* ``per-mm-optout`` (prctl-style, proposed in the RFC threads): the VMM's mm is
  never scanned — no invalidations, PTE updates, hint faults, migrations or
  task placements. Its cost is the NUMA-balancing benefit lost: the migrations
  that succeeded and the placements that happened in the baseline.
* ``per-vma-optout`` (VM_NO_NUMA_BALANCING via madvise, or an mbind policy on
  the pinned ranges): only the pinned ranges are excluded; task_numa_work skips
  them as unsuitable VMAs, so a chunk lying wholly in them sends no notifier,
  and the rest of guest RAM is scanned and zapped as before.
* ``pinned-longterm-mm`` (ours, not proposed in the thread): the kernel opts a
  process out automatically once it holds a long-term (FOLL_LONGTERM) pin —
  ``per-mm-optout`` for VMs with pinned memory, ``baseline`` for the others.
"""

from __future__ import annotations

from tracereplay.policies.base import Outcome, Policy, ReplayContext, register
from tracereplay.policies.baseline import Baseline
from tracereplay.policies.rules import host_flush_kept
from tracereplay.reconstruct.model import VmActivity


@register
class PerMmOptout(Policy):
    """The VMM's mm is never NUMA-scanned (prctl-style opt-out)."""

    name = "per-mm-optout"

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        return Outcome.nothing(vm)


@register
class PerVmaOptout(Policy):
    """Only the pinned ranges are excluded from NUMA balancing (madvise / mbind)."""

    name = "per-vma-optout"

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        c = vm.chunks
        left = c["guest_pages"] - c["pinned_pages"]
        calls = (left > 0).astype("int64")
        return Outcome(
            invalidates=(c["range_pages"] - c["pinned_pages"]) > 0,
            unmap_calls=calls,
            zapped=left.copy(),
            flushes=calls,
            pte_updates=left,
            host_flush=host_flush_kept(vm, left),
            protects_pinned=False,
        )


@register
class PinnedLongtermMm(Policy):
    """Ours: opt the whole mm out once it holds a long-term pin."""

    name = "pinned-longterm-mm"

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        if vm.pinned_pages > 0:
            return Outcome.nothing(vm)
        return Baseline().outcome(vm, ctx)
