"""Kernel-behaviour model the baseline replays with, by kernel release.

The baseline needs to know which pages the traced kernel's NUMA scan made
PROT_NONE; the release decides whether long-term pinned pages were among them.
Primary-MMU pin skipping in ``change_pte_range()`` (mm/mprotect.c, prot_numa):

* before 6.10: ``none`` — pinned pages are made PROT_NONE like any other (then
  the migration fails and the PTE is restored). Caveat, not modelled yet: since
  v5.17, commit 80d47f5de5e3 ("mm: don't try to NUMA-migrate COW pages that
  have other uses") skips COW-mapping pages whose ``page_count()`` is not 1,
  which long-term pinned pages are;
* 6.10 .. 6.18: ``cow`` — a COW (private) mapping skips folios that are
  ``folio_maybe_dma_pinned()`` or mapped shared (Baolin Wang's "mm: support
  multi-size THP numa balancing", merged for 6.10, replaced the page_count()
  test with these two); shared mappings (memfd / virtiofs guest RAM) are still
  protected; huge PMDs (``change_huge_pmd()``, mm/huge_memory.c) are not checked;
* 6.19 and later: ``all`` — maybe-DMA-pinned folios are skipped whatever the
  mapping, also for PMD-mapped THPs (6.19's mm/mprotect.c and
  ``change_huge_pmd()``; the commit is not cited here because it was not
  confirmed).

Notifier granularity: since 6.12 (commit 7f06e3aa2e83, "mm/mprotect: push mmu
notifier to PUDs") one scan chunk gives about one ``invalidate_range_start`` per
VMA it crosses; older kernels split per PUD range. The replay counts the
notifier calls it sees, so granularity only matters to the synthetic generator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PIN_SKIP = ("none", "cow", "all")


def parse_release(release: str | None) -> tuple[int, int] | None:
    """``"6.18.44-fc-v669"`` -> (6, 18); None when it does not parse."""
    if not release:
        return None
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class KernelModel:
    release: str | None
    pin_skip: str  # none | cow | all
    # where pin_skip came from: "release" (inferred from the kernel release),
    # "override" (flag/manifest) or "default" (release unknown)
    source: str

    def skips_pinned(self, shared_mapping: bool) -> bool:
        """Does change_pte_range leave pinned 4 KiB pages of this mapping alone?"""
        if self.pin_skip == "all":
            return True
        return self.pin_skip == "cow" and not shared_mapping

    def describe(self) -> str:
        why = {
            "release": f"inferred from kernel {self.release}",
            "override": "given explicitly",
            "default": "kernel release unknown: assumed like 6.18",
        }[self.source]
        return f"baseline pin skipping in change_pte_range: {self.pin_skip} ({why})"


def kernel_model(release: str | None, pin_skip: str | None = None) -> KernelModel:
    if pin_skip is not None:
        if pin_skip not in PIN_SKIP:
            raise ValueError(f"pin_skip must be one of {', '.join(PIN_SKIP)}")
        return KernelModel(release, pin_skip, "override")
    version = parse_release(release)
    if version is None:
        return KernelModel(release, "cow", "default")
    if version < (6, 10):
        return KernelModel(release, "none", "release")
    if version < (6, 19):
        return KernelModel(release, "cow", "release")
    return KernelModel(release, "all", "release")


__all__ = ["PIN_SKIP", "KernelModel", "kernel_model", "parse_release"]
