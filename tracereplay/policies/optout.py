"""Opt-outs from NUMA balancing: ``per-mm-optout``, ``per-vma-optout``, ``pinned-longterm-mm``.

* ``per-mm-optout`` (prctl-style, proposed in the RFC threads): the VMM's mm is
  never scanned — no invalidations, PTE updates, hint faults, migrations or
  task placements. Its cost is the NUMA-balancing benefit lost: the migrations
  that succeeded and the placements that happened in the baseline.
* ``per-vma-optout`` (VM_NO_NUMA_BALANCING via madvise, or an mbind policy on
  the pinned ranges): only the pinned ranges are excluded; task_numa_work skips
  them as unsuitable VMAs, so a chunk lying wholly in them sends no notifier,
  and the rest of guest RAM is scanned, zapped (present SPTEs) and protected
  by the baseline rules (one unmap call and at most one flush per chunk that
  still touches unpinned guest RAM; no contention model). A chunk's range
  minus the pinned ranges falls into pieces, each its own change_prot_numa()
  call: one notifier (``numa_invalidations``), one KVM unmap call when it
  touches guest RAM, one remote flush when it zapped a present SPTE, one host
  TLB flush (with the IPIs of the baseline's flush of that call) when it made
  a PTE PROT_NONE or covers memory outside guest RAM.
* ``pinned-longterm-mm`` (ours, not proposed in the thread): the kernel opts a
  process out automatically once it holds a long-term (FOLL_LONGTERM) pin —
  ``per-mm-optout`` for VMs with pinned memory, ``baseline`` for the others.
"""

from __future__ import annotations

import numpy as np

from tracereplay.policies.base import Outcome, Policy, ReplayContext, register
from tracereplay.policies.baseline import Baseline
from tracereplay.policies.rules import pinned_reason, run_pages
from tracereplay.reconstruct.model import VmActivity
from tracereplay.reconstruct.pages import vma_pieces


@register
class PerMmOptout(Policy):
    """The VMM's mm is never NUMA-scanned (prctl-style opt-out)."""

    name = "per-mm-optout"
    proposal = "per-mm opt-out (prctl-style, proposed in the RFC threads)"
    legend = "per-mm-optout: the VMM's mm is never NUMA-scanned; its cost is the benefit lost"
    rules = (
        "The whole process opts out of NUMA balancing: no NUMA invalidations, PTE updates, "
        "hint faults, zaps, refaults, migrations or task placements. Its cost is the "
        "NUMA-balancing benefit lost: the migrations that succeeded and the task placements "
        "that happened in the baseline would not happen."
    )

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        return Outcome.nothing(vm)


@register
class PerVmaOptout(Policy):
    """Only the pinned ranges are excluded from NUMA balancing (madvise / mbind)."""

    name = "per-vma-optout"
    proposal = "per-VMA opt-out (VM_NO_NUMA_BALANCING via madvise, or an mbind policy)"
    legend = "per-vma-optout: only the pinned ranges are excluded from NUMA balancing"
    rules = (
        "task_numa_work skips the pinned ranges as unsuitable VMAs; the rest of guest RAM is "
        "scanned, zapped and protected by the baseline rules. A scan chunk's range minus the "
        "pinned ranges falls into pieces, each its own change_prot_numa() call: one notifier, "
        "one KVM unmap call when it touches guest RAM, one remote flush when it zapped a present "
        "SPTE, one host TLB flush when it made a PTE PROT_NONE or covers memory outside guest RAM."
    )

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        run = run_pages(vm, "unpinned", "unpinned")
        pm = vm.pages
        assert pm is not None and run.row_zapped_units is not None
        assert run.row_made_units is not None
        n = vm.n_chunks
        inv = np.zeros(n, np.int64)
        calls = np.zeros(n, np.int64)
        flushes = np.zeros(n, np.int64)
        host = np.zeros(n, np.int64)
        zr, mr = run.row_zapped_units, run.row_made_units
        bounds = np.searchsorted(pm.p_inv, np.arange(n + 1))
        # the previous piece, while it may continue into the next granule of its call
        open_piece: tuple[int, int, bool] | None = None  # (end, chunk, keeps the host flush)
        for i in range(n):  # per invalidation
            r = np.arange(bounds[i], bounds[i + 1])
            r = r[~pm.p_pin[r]]
            for a, b in vma_pieces(int(pm.inv_lo[i]), int(pm.inv_hi[i]), pm.pinned):
                sel = r[(pm.p_hlo[r] >= a) & (pm.p_hhi[r] <= b)]
                guest_bytes = int((pm.p_hhi[sel] - pm.p_hlo[sel]).sum())
                inv[i] += 1
                calls[i] += guest_bytes > 0
                flushes[i] += int(zr[sel].sum()) > 0
                keep = int(mr[sel].sum()) > 0 or (b - a) > guest_bytes
                cont = (
                    open_piece is not None
                    and open_piece[0] == a
                    and i > 0
                    and vm.inv_call[i] == vm.inv_call[open_piece[1]]
                )
                if cont and open_piece is not None:
                    keep = keep or open_piece[2]
                elif open_piece is not None and open_piece[2]:
                    host[open_piece[1]] += 1
                open_piece = (b, i, keep)
        if open_piece is not None and open_piece[2]:
            host[open_piece[1]] += 1
        return Outcome.from_pages(
            run,
            invalidates=inv,
            unmap_calls=calls,
            flushes=flushes,
            host_flush=host,
        )

    def why_unchanged(self, vm: VmActivity, ctx: ReplayContext) -> str:
        return pinned_reason(vm) or super().why_unchanged(vm, ctx)


@register
class PinnedLongtermMm(Policy):
    """Ours: opt the whole mm out once it holds a long-term pin."""

    name = "pinned-longterm-mm"
    proposal = "ours, not proposed upstream: automatic per-mm opt-out once a long-term pin exists"
    legend = (
        "pinned-longterm-mm: per-mm-optout for a process holding a long-term pin, "
        "baseline otherwise"
    )
    rules = (
        "The kernel opts a process out of NUMA balancing on its own once it holds a long-term "
        "(FOLL_LONGTERM) pin, as VFIO device assignment takes: a VM or process with pinned "
        "memory (manifest or inferred) is replayed as per-mm-optout, any other as the baseline."
    )

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        if vm.pinned_pages > 0:
            return Outcome.nothing(vm)
        return Baseline().outcome(vm, ctx)

    def why_unchanged(self, vm: VmActivity, ctx: ReplayContext) -> str:
        if vm.pinned_pages == 0:
            return (
                "no long-term pin in this process (no pinned range in the manifest or inferred), "
                "so it is not opted out and replays as the baseline"
            )
        return super().why_unchanged(vm, ctx)
