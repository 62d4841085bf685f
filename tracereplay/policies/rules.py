"""Page arithmetic shared by the policies: which guest pages each chunk protects.

Per NUMA-scan chunk (one notifier invalidation) the reconstruction gives the
guest pages it covers (``guest_pages``), the pinned ones (``pinned_pages``)
and the part of both in shared-mapping memslots. Whether a pinned page is made
PROT_NONE depends on the kernel (see :mod:`tracereplay.reconstruct.kernel`)
and, for the RFC policies, on the series' patch 2.
"""

from __future__ import annotations

import numpy as np

from tracereplay.reconstruct.kernel import KernelModel
from tracereplay.reconstruct.model import VmActivity


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


def host_flush_kept(vm: VmActivity, pte_pages: np.ndarray) -> np.ndarray:
    """Does the host still flush the chunk's range? Yes if it still changes PTEs.

    The part of the range outside guest RAM (other VMAs) may hold PTEs the trace
    cannot see; those chunks are assumed to keep their flush.
    """
    non_guest = vm.chunks["range_pages"] - vm.chunks["guest_pages"]
    return (pte_pages > 0) | (non_guest > 0)


__all__ = ["host_flush_kept", "kernel_pte_pages", "private_pinned", "rfc_pte_pages"]
