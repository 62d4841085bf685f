"""Page arithmetic shared by the policies: which guest pages each chunk zaps and protects.

A policy names two *selections* of each chunk's guest pages (see
:mod:`tracereplay.reconstruct.pages`): the pages whose SPTE KVM zaps and the
pages the primary MMU makes PROT_NONE; :func:`run_pages` replays them page by
page (observed from ``kvm_page_fault`` events when the trace has them, else
assumed). Whether a pinned page is protected depends on the kernel
(:func:`kernel_prot_sel`, :mod:`tracereplay.reconstruct.kernel`) and, for the
RFC policies, on the series' patch 2 (:func:`rfc_prot_sel`).
``kernel_pte_pages`` / ``rfc_pte_pages`` are the range-only (every page
touched) versions, kept for plugins.
"""

from __future__ import annotations

import numpy as np

from tracereplay.reconstruct.kernel import KernelModel
from tracereplay.reconstruct.model import VmActivity
from tracereplay.reconstruct.pages import PageRun


def private_pinned(vm: VmActivity) -> np.ndarray:
    c = vm.chunks
    return c["pinned_pages"] - c["shared_pinned_pages"]


def kernel_pte_pages(vm: VmActivity, kernel: KernelModel) -> np.ndarray:
    """Pages the traced kernel itself makes PROT_NONE in each chunk."""
    g = vm.chunks["guest_pages"]
    if kernel.pin_skip == "all":
        return g - vm.chunks["pinned_pages"]
    if kernel.pin_skip == "cow":
        return g - private_pinned(vm)
    return g.copy()


def rfc_pte_pages(vm: VmActivity, kernel: KernelModel) -> np.ndarray:
    """Pages made PROT_NONE with RFC patch 2 applied on top of the traced kernel.

    Patch 2 skips maybe-DMA-pinned anonymous-exclusive pages (4 KiB PTEs and huge
    PMDs) in change_prot_numa, so pinned private guest RAM is never protected;
    pinned pages of shared mappings are not anonymous-exclusive and stay
    protected unless the kernel itself skips them (6.19+).
    """
    g = vm.chunks["guest_pages"]
    if kernel.pin_skip == "all":
        return g - vm.chunks["pinned_pages"]
    return g - private_pinned(vm)


def kernel_prot_sel(kernel: KernelModel) -> str:
    """Protect selection (:mod:`tracereplay.reconstruct.pages`) of the traced kernel.

    5.17..6.18 skip pinned pages of COW mappings in change_pte_range (the
    refcount test of commit 80d47f5de5e3 through 6.9, folio_maybe_dma_pinned()
    since "mm: support multi-size THP numa balancing", 6.10) but do not check
    pins for PMD-mapped THPs in change_huge_pmd (the check came with 6.19); 6.19
    skips pinned folios everywhere; before 5.17 (and stable releases without the
    backport) the kernel skips nothing. Releases and commits:
    :mod:`tracereplay.reconstruct.kernel`.
    """
    return {"all": "unpinned", "cow": "no_private_pinned_4k"}.get(kernel.pin_skip, "guest")


def rfc_prot_sel(kernel: KernelModel) -> str:
    """Protect selection with RFC patch 2 (pinned anon-exclusive PTEs and huge PMDs)."""
    return "unpinned" if kernel.pin_skip == "all" else "no_private_pinned"


def pinned_reason(vm: VmActivity) -> str | None:
    """Why a policy that only spares pinned memory changes nothing here (None: not that)."""
    if vm.pinned_pages == 0:
        return "no pinned memory in this process (manifest or inferred): nothing for it to spare"
    if vm.n_chunks and not vm.chunks["pinned_pages"].any():
        return "no NUMA-scan invalidation in the trace covered the pinned memory"
    return None


def run_pages(vm: VmActivity, zap_sel: str, prot_sel: str) -> PageRun:
    assert vm.pages is not None, "reconstruct() builds the page model of every VM"
    return vm.pages.run(zap_sel, prot_sel, vm.inv_ts)


def host_flush_kept(vm: VmActivity, pte_pages: np.ndarray) -> np.ndarray:
    """Does the host still flush the chunk's range? Yes if its call still changes PTEs.

    A change_prot_numa() call flushes once, after its last notifier granule
    (``VmActivity.inv_call`` groups them): the flush is marked on that granule,
    kept when any granule of the call still changes PTEs. The part of a range
    outside guest RAM (other VMAs) may hold PTEs the trace cannot see: such
    calls are assumed to keep their flush.
    """
    non_guest = vm.chunks["range_pages"] - vm.chunks["guest_pages"]
    keep = (pte_pages > 0) | (non_guest > 0)
    call = vm.inv_call
    if len(call) != len(keep) or len(keep) == 0:
        return keep
    kept_call = np.bincount(call, weights=keep.astype(np.float64)) > 0
    last = np.zeros(len(call), bool)
    last[:-1] = call[1:] != call[:-1]
    last[-1] = True
    return kept_call[call] & last


__all__ = [
    "host_flush_kept",
    "kernel_prot_sel",
    "kernel_pte_pages",
    "pinned_reason",
    "private_pinned",
    "rfc_prot_sel",
    "rfc_pte_pages",
    "run_pages",
]
