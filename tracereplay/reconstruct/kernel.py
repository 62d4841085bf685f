"""Kernel-behaviour model the baseline replays with, by kernel release.

The baseline needs to know which pages the traced kernel's NUMA scan made
PROT_NONE; the release decides whether long-term pinned pages were among them.
Primary-MMU pin skipping in ``change_pte_range()`` (mm/mprotect.c, prot_numa):

* before 5.17: ``none`` — pinned pages are made PROT_NONE like any other (then
  the migration fails and the PTE is restored): a COW mapping only skipped
  pages with ``page_mapcount() != 1``, and a pin raises the refcount, not the
  mapcount. Except the stable releases that carry the backport of 80d47f5de5e3
  (below): 5.10.y from 5.10.102, 5.15.y from 5.15.25, 5.16.y from 5.16.11
  (all released 2022-02-23) are ``cow``;
* 5.17 .. 6.18: ``cow`` — a COW (private, writable) mapping skips pinned pages;
  shared mappings (memfd / shm / virtiofs guest RAM) are not COW mappings and
  their pinned pages are still protected; huge PMDs (``change_huge_pmd()``,
  mm/huge_memory.c) are not checked. Two kernel rules give this:

  - 5.17 .. 6.9: commit 80d47f5de5e3 ("mm: don't try to NUMA-migrate COW pages
    that have other uses", merged for v5.17-rc5) made the test
    ``is_cow_mapping(vma->vm_flags) && page_count(page) != 1`` (formerly
    ``page_mapcount(page) != 1``; later ``folio_ref_count(folio) != 1``); a
    FOLL_PIN / FOLL_LONGTERM pin adds GUP_PIN_COUNTING_BIAS to the refcount, so
    a pinned page of a COW mapping is skipped. Difference the replay does not
    model: that refcount test also skips any other COW page holding an extra
    reference (a PTE-mapped large folio, a page in the swap cache, a transient
    GUP); only pinned pages are treated as skipped, and those behave the same;
  - 6.10 .. 6.18: Baolin Wang's "mm: support multi-size THP numa balancing"
    (merged for 6.10) replaced the refcount test with
    ``folio_maybe_dma_pinned(folio) || folio_likely_mapped_shared(folio)``
    (still under ``is_cow_mapping()``);

* 6.19 and later: ``all`` — maybe-DMA-pinned folios are skipped whatever the
  mapping, also for PMD-mapped THPs (6.19's mm/mprotect.c and
  ``change_huge_pmd()``; the commit is not cited here because it was not
  confirmed).

Which release says what. Only ``MAJOR.MINOR`` decides from 5.17 on. Below 5.17
the stable sublevel decides, read only from a release that is exactly
``MAJOR.MINOR.SUBLEVEL`` optionally followed by a suffix that does not start
with a digit (``5.15.94``, ``5.15.94-arch1-1``, ``5.10.110-android12-9``). A
suffix still counts: a distribution that keeps upstream's sublevel (Arch,
Fedora, Android GKI, ...) builds on that stable release, and so carries its
backports. A distribution that does not (Ubuntu ``5.15.0-91-generic``, Debian
``5.10.0-28-amd64``, RHEL ``5.14.0-427.el9``) keeps sublevel 0 and ships stable
or vendor patches under a number that says nothing about them, so such a
release stays ``none`` — and :meth:`KernelModel.describe` says that this is an
assumption the user can correct with ``--pin-skip cow``. A 5.17 release
candidate before rc5 (``5.17.0-rc4``) does not have the commit: ``none``.

Notifier granularity: since 6.12 (commit 7f06e3aa2e83, "mm/mprotect: push mmu
notifier to PUDs") one scan chunk gives about one ``invalidate_range_start`` per
VMA it crosses; older kernels split per PUD range. The replay counts the
notifier calls it sees, so granularity only matters to the synthetic generator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PIN_SKIP = ("none", "cow", "all")

# commit 80d47f5de5e3 ("mm: don't try to NUMA-migrate COW pages that have other
# uses"): the first mainline release with it, and the first stable release of
# each older branch that carries its backport
COW_REFCOUNT_COMMIT = "80d47f5de5e3"
COW_REFCOUNT_MAINLINE = (5, 17)
COW_REFCOUNT_STABLE = {(5, 10): 102, (5, 15): 25, (5, 16): 11}
# a mainline release candidate: "5.17.0-rc4" (a stable candidate, "5.17.3-rc1", is not one)
_MAINLINE_RC = re.compile(r"\d+\.\d+(?:\.0)?-rc(\d+)")


def parse_release(release: str | None) -> tuple[int, int] | None:
    """``"6.18.44-fc-v669"`` -> (6, 18); None when it does not parse."""
    if not release:
        return None
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_sublevel(release: str | None) -> int | None:
    """``"5.15.94"`` / ``"5.15.94-arch1-1"`` -> 94; None unless MAJOR.MINOR.SUBLEVEL[non-digit...]."""
    if not release:
        return None
    m = re.fullmatch(r"\d+\.\d+\.(\d+)(?:\D.*)?", release, re.DOTALL)
    return int(m.group(1)) if m else None


def _has_cow_refcount_test(release: str | None) -> bool:
    """Does this release's change_pte_range skip COW pages with an extra reference?"""
    version = parse_release(release)
    if version is None:
        return False
    if version > COW_REFCOUNT_MAINLINE:
        return True
    if version == COW_REFCOUNT_MAINLINE:
        rc = _MAINLINE_RC.match(release or "")
        return rc is None or int(rc.group(1)) >= 5
    first = COW_REFCOUNT_STABLE.get(version)
    sublevel = parse_sublevel(release)
    return first is not None and sublevel is not None and sublevel >= first


def _stable_backport(release: str | None) -> bool:
    """A pre-5.17 release whose stable sublevel carries the 80d47f5de5e3 backport."""
    version = parse_release(release)
    return (
        version is not None and version < COW_REFCOUNT_MAINLINE and _has_cow_refcount_test(release)
    )


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
        if self.source == "release" and _stable_backport(self.release):
            why += f", a stable release with the backport of commit {COW_REFCOUNT_COMMIT}"
        text = f"baseline pin skipping in change_pte_range: {self.pin_skip} ({why})"
        if self.source == "release" and self.pin_skip == "none":
            text += (
                f"; commit {COW_REFCOUNT_COMMIT} (\"mm: don't try to NUMA-migrate COW pages "
                'that have other uses"), in 5.17 and in stable 5.10.102, 5.15.25, 5.16.11 and '
                "later, skips pinned pages of COW (private) mappings; a distribution kernel may "
                "carry its backport under a release that does not show it: pass --pin-skip cow "
                "if this kernel has it"
            )
        return text


def kernel_model(release: str | None, pin_skip: str | None = None) -> KernelModel:
    if pin_skip is not None:
        if pin_skip not in PIN_SKIP:
            raise ValueError(f"pin_skip must be one of {', '.join(PIN_SKIP)}")
        return KernelModel(release, pin_skip, "override")
    version = parse_release(release)
    if version is None:
        return KernelModel(release, "cow", "default")
    if not _has_cow_refcount_test(release):
        return KernelModel(release, "none", "release")
    if version < (6, 19):
        return KernelModel(release, "cow", "release")
    return KernelModel(release, "all", "release")


__all__ = ["PIN_SKIP", "KernelModel", "kernel_model", "parse_release", "parse_sublevel"]
