"""Page-level SPTE presence and PROT_NONE state of a VM's guest RAM, as intervals.

Each policy replays the same NUMA-scan invalidations with its own *zap*
selection (the guest pages whose SPTE KVM zaps) and *protect* selection (the
guest pages the primary MMU makes PROT_NONE). :meth:`PageModel.run` turns a
pair of selections into per-invalidation counts (pages zapped, pages made
PROT_NONE) and VM totals (hint faults, SPTE refaults).

Units: a guest page is a 4 KiB page, or one 2 MiB PMD in a memslot mapped
with THP (manifest ``thp = true``: NUMA balancing protects, KVM maps and
refaults it as one huge entry). Selections are kept as unit *intervals* per
invalidation, never one row per page (a table of page runs keeps it small); only pages that appear in
``kvm_page_fault`` events get per-page rows (one per event), and those are
replayed a block of whole pages at a time (:mod:`tracereplay.reconstruct.faults`):
each page's history is independent of the others', so memory stays flat as the
trace grows.

Observed mode (the trace has ``kvm:kvm_page_fault`` events; gpa -> hva via the
memslot's ``gpa_start``). The same accesses are replayed under every policy:

* a page's SPTE is present after a fault on it until the next zap covering it;
  a fault under a policy happens at a traced fault when the page is
  not present under that policy (the policy's zaps are a subset of the
  baseline's, so every such fault is one the trace shows);
* **trace-start state**: no page is PROT_NONE. A page's SPTE is present at
  trace start unless the trace shows otherwise: it is not present when its
  first fault precedes every invalidation covering it (a fault only happens
  on a non-present SPTE), or when the first NUMA invalidation covering it
  sent no KVM remote flush although the VM's flushes are traced (KVM flushes
  whenever it zapped a present SPTE, so that invalidation found none — the
  guest had not touched the page yet, e.g. while booting). The one case the
  trace cannot decide: a page first covered by an invalidation that did flush
  (for other pages of its range) and first faulted after it. It is taken as
  present (populated before the trace); when it was in fact never touched (a
  guest booting faster than the scan walks its RAM) its zap and its first
  touch are over-counted in ``kvm_pages_zapped`` / ``spte_refaults``
  (tests/test_synth_truth.py shows the case);
* ``kvm_pages_zapped``: pages present at each zap (4 KiB units, THP 512);
* ``spte_refaults``: faults on pages a zap had made non-present (first
  touches of never-present pages excluded);
* pages made PROT_NONE: a protected page that is not already PROT_NONE;
  PROT_NONE is cleared by the first fault after it (the vCPU's EPT violation
  reaches the host PTE through KVM's GUP): that fault is a hint fault.

Assumed mode (no ``kvm_page_fault`` events, e.g. the PVM-KVM fixtures): every
page in a zap selection is taken as present, every page of a protect
selection is made PROT_NONE and touched (one hint fault) before the next scan.

Host mode (``host=True``, a non-VM process, :mod:`tracereplay.reconstruct.process_scan`):
the "invalidations" are the process's reconstructed NUMA-scan coverage, the
units its regions' pages, the faults its threads' not-present user page faults
(``page_fault_user``), which reach the PTE directly: nothing is zapped, a
fault on a PROT_NONE page is a hint fault and clears it, a never-faulted page
is taken as populated (made PROT_NONE once).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tracereplay.reconstruct.faults import (
    HUGE_SHIFT,
    PAGE_SHIFT,
    ArrayFaults,
    FaultBlock,
    FaultSource,
    gpa_units,
    slot_layout,
)

# selections: which guest pages of an invalidation a policy zaps / protects
SELECTIONS = ("guest", "unpinned", "no_private_pinned", "no_private_pinned_4k", "none")


@dataclass
class PageRun:
    """One policy's page-level outcome (per invalidation arrays, VM totals)."""

    zapped_units: np.ndarray
    zapped_pages: np.ndarray  # 4 KiB pages (a THP counts 512)
    made_units: np.ndarray  # PTEs / huge PMDs made PROT_NONE
    made_pages: np.ndarray  # 4 KiB units (numa_pte_updates)
    made_huge: np.ndarray  # huge PMDs (numa_huge_pte_updates)
    hint_faults: int
    refaults: int
    # NUMA migration calls (ok, failed) and pages migrated triggered by this
    # policy's hint faults (observed mode; None when assumed)
    migrations: tuple[int, int, int] | None = None
    # per piece (PageModel.p_*: one invalidation x memslot x pinned/unpinned run)
    row_zapped_units: np.ndarray | None = None
    row_made_units: np.ndarray | None = None


def merge_ranges(
    ranges: list[tuple[int, int]] | tuple[tuple[int, int], ...],
) -> list[tuple[int, int]]:
    """The union of ``[start, end)`` ranges, sorted and disjoint."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def vma_pieces(lo: int, hi: int, pinned: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[lo, hi)`` minus the (merged, sorted) pinned ranges: what task_numa_work still scans
    when the pinned ranges are VMAs of their own that it skips (per-VMA opt-out)."""
    out = []
    cur = lo
    for a, b in pinned:
        if b <= cur or a >= hi:
            continue
        if a > cur:
            out.append((cur, a))
        cur = max(cur, b)
    if cur < hi:
        out.append((cur, hi))
    return out


def _newcov(inv: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Parts of each interval (in time order) not covered by an earlier one."""
    starts: list[int] = []
    ends: list[int] = []
    oi: list[int] = []
    ol: list[int] = []
    oh: list[int] = []
    for i, a, b in zip(inv.tolist(), lo.tolist(), hi.tolist(), strict=True):
        if a >= b:
            continue
        k = bisect.bisect_right(ends, a)
        j, cur = k, a
        while j < len(starts) and starts[j] < b:
            if starts[j] > cur:
                oi.append(i)
                ol.append(cur)
                oh.append(starts[j])
            cur = max(cur, ends[j])
            j += 1
        if cur < b:
            oi.append(i)
            ol.append(cur)
            oh.append(b)
        ns = min(a, starts[k]) if k < j else a
        ne = max(b, ends[j - 1]) if k < j else b
        starts[k:j] = [ns]
        ends[k:j] = [ne]
    return np.array(oi, np.int64), np.array(ol, np.int64), np.array(oh, np.int64)


def _per_row(r: np.ndarray, weights: np.ndarray, nrow: int) -> np.ndarray:
    return np.bincount(r, weights=weights, minlength=nrow).astype(np.int64)


def _pairs(
    faulted: np.ndarray, mask: np.ndarray, p_lo: np.ndarray, p_hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``faulted``, piece) of every faulted unit inside every selected piece."""
    piece, lo, hi = np.flatnonzero(mask), p_lo[mask], p_hi[mask]
    a = np.searchsorted(faulted, lo)
    b = np.searchsorted(faulted, hi)
    n = b - a
    rep = np.repeat(np.arange(len(a)), n)
    off = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return a[rep] + off, piece[rep]


def _check_order(block: FaultBlock, last_unit: int) -> int:
    """Blocks must come in (unit, time) order, a unit in one block: the replay relies on it."""
    u, ts = block.unit, block.ts
    if len(u) == 0:
        return last_unit
    du = np.diff(u)
    if u[0] <= last_unit or (du < 0).any() or ((du == 0) & (np.diff(ts) < 0)).any():
        raise RuntimeError("page model: fault blocks are not in (unit, time) order")
    return int(u[-1])


class PageModel:
    """Guest RAM of one VM in units, the NUMA invalidations as unit pieces, the faults.

    Faults come from a :class:`~tracereplay.reconstruct.faults.FaultSource` (or,
    for small cases, the ``fault_ts`` / ``fault_gpa`` arrays) and are replayed a
    block of whole units at a time, each block cut further so that its faults
    plus the (unit, invalidation) pairs covering them stay within about
    ``EVENT_BUDGET``: memory does not grow with the trace.
    """

    EVENT_BUDGET = 1 << 20

    def __init__(
        self,
        slots: list[tuple[int, int, int, bool, bool]],  # hva_start, hva_end, gpa_start, shared, thp
        pinned: list[tuple[int, int]],
        inv_lo: np.ndarray,
        inv_hi: np.ndarray,
        inv_flush: np.ndarray,
        fault_ts: np.ndarray | None = None,
        fault_gpa: np.ndarray | None = None,
        fault_mig: np.ndarray | None = None,  # per fault: NUMA migration calls ok, failed, pages
        *,
        faults: FaultSource | None = None,
        host: bool = False,
    ):
        # host=True: a non-VM process — no secondary MMU, faults are user page faults
        # that always reach the PTE (no zaps, no SPTE refaults)
        self.host = host
        self.n_inv = len(inv_lo)
        self.slots = slot_layout(slots)
        self.n_units = sum(s.units for s in self.slots)
        self.inv_lo, self.inv_hi = inv_lo, inv_hi
        self._pieces(inv_lo, inv_hi, merge_ranges(pinned))
        if faults is None and fault_ts is not None:
            assert fault_gpa is not None
            mig = fault_mig if fault_mig is not None else np.zeros((len(fault_ts), 3), np.int64)
            faults = ArrayFaults(gpa_units(self.slots, fault_gpa), fault_ts, mig)
        self.faults = faults
        self.observed = faults is not None
        self.inv_flush = inv_flush
        # NUMA migration calls (ok, failed) and pages tied to a guest-RAM fault
        self.mig_attributed = (
            faults.migration_totals() if faults is not None else np.zeros(3, np.int64)
        )
        if faults is not None:
            self._init_presence()

    def _pieces(
        self, inv_lo: np.ndarray, inv_hi: np.ndarray, pinned: list[tuple[int, int]]
    ) -> None:
        """Cut every invalidation into pieces: (invalidation, unit lo, unit hi, pinned, shared, thp)."""
        self.pinned = pinned
        cuts = sorted({x for s, e in pinned for x in (s, e)})
        pin_starts = [a for a, _ in pinned]
        rows: list[tuple[int, int, int, bool, bool, bool]] = []
        hva_rows: list[tuple[int, int]] = []
        for i, (a, b) in enumerate(zip(inv_lo.tolist(), inv_hi.tolist(), strict=True)):
            for s in self.slots:
                lo, hi = max(a, s.hva_start), min(b, s.hva_end)
                if lo >= hi:
                    continue
                c0, c1 = bisect.bisect_right(cuts, lo), bisect.bisect_left(cuts, hi)
                bounds = [lo, *cuts[c0:c1], hi]
                for x, y in itertools.pairwise(bounds):
                    k = bisect.bisect_right(pin_starts, x) - 1
                    pin = k >= 0 and y <= pinned[k][1]
                    ulo = s.base + ((x - s.hva_start) >> s.shift)
                    uhi = s.base + (-(-(y - s.hva_start) >> s.shift))
                    rows.append((i, ulo, uhi, pin, s.shared, s.thp))
                    hva_rows.append((x, y))
        arr = np.array(rows, dtype=np.int64).reshape(-1, 6)
        hv = np.array(hva_rows, dtype=np.int64).reshape(-1, 2)
        self.p_hlo, self.p_hhi = hv[:, 0], hv[:, 1]
        self.p_inv, self.p_lo, self.p_hi = arr[:, 0], arr[:, 1], arr[:, 2]
        self.p_pin, self.p_shared, self.p_thp = (arr[:, k].astype(bool) for k in (3, 4, 5))

    # ---- selections ---------------------------------------------------------------
    def _mask(self, sel: str) -> np.ndarray:
        private_pin = self.p_pin & ~self.p_shared
        return {
            "guest": np.ones(len(self.p_inv), bool),
            "unpinned": ~self.p_pin,
            "no_private_pinned": ~private_pin,
            "no_private_pinned_4k": ~(private_pin & ~self.p_thp),
            "none": np.zeros(len(self.p_inv), bool),
        }[sel]

    def _per_inv(self, inv: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.bincount(inv, weights=weights, minlength=self.n_inv).astype(np.int64)

    # ---- observed mode helpers ----------------------------------------------------------
    def _init_presence(self) -> None:
        """Trace-start presence: the parts that do not depend on the faults."""
        evidence = bool((self.inv_flush > 0).any())
        self._flush_inv = self.inv_flush > 0 if evidence else np.ones(self.n_inv, bool)
        ci, cl, ch = _newcov(self.p_inv, self.p_lo, self.p_hi)
        order = np.argsort(cl)
        self._cov = ci[order], cl[order], ch[order]
        ci, cl, ch = self._cov
        # first-coverage pieces of invalidations that flushed: units present at start
        keep = self._flush_inv[ci] if len(ci) else np.zeros(0, bool)
        self._fl_lo, self._fl_hi = cl[keep], ch[keep]
        self._fl_cum = np.concatenate([[0], np.cumsum(self._fl_hi - self._fl_lo)])

    def _start_present(
        self, faulted: np.ndarray, first_fault: np.ndarray, inv_ts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(present at trace start, inside a flushing first coverage) of faulted units.

        A faulted unit was present at start iff a flushing invalidation first
        covered it before its first fault (see the module docstring).
        """
        ci, cl, ch = self._cov
        if not len(cl):
            none = np.zeros(len(faulted), bool)
            return none, none
        j = np.searchsorted(cl, faulted, side="right") - 1
        jj = np.maximum(j, 0)
        inside = (j >= 0) & (ch[jj] > faulted)
        in_flush_cov = inside & self._flush_inv[ci[jj]]
        present = in_flush_cov & (inv_ts[ci[jj]] < first_fault)
        return present, in_flush_cov

    def _flush_measure(self, x: np.ndarray) -> np.ndarray:
        """Units of the start-present region below each x."""
        if len(self._fl_lo) == 0:
            return np.zeros(len(x), np.int64)
        k = np.searchsorted(self._fl_lo, x, side="right") - 1
        kk = np.maximum(k, 0)
        part = np.clip(x - self._fl_lo[kk], 0, self._fl_hi[kk] - self._fl_lo[kk])
        return np.where(k >= 0, self._fl_cum[kk] + part, 0)

    def _sub_blocks(
        self, block: FaultBlock, bounds: list[tuple[np.ndarray, np.ndarray]]
    ) -> Iterator[FaultBlock]:
        """Cut a block at unit boundaries so faults + covering pairs stay within about
        EVENT_BUDGET (a cut falls at the first unit past each multiple of it).

        ``bounds``: (sorted starts, sorted ends) of the pieces of each selection.
        """
        u = block.unit
        if len(u) == 0:
            return
        start = np.concatenate([[True], u[1:] != u[:-1]])
        faulted = u[start]
        # pieces covering each faulted unit, under either selection
        cover = np.zeros(len(faulted), np.int64)
        for lo, hi in bounds:
            cover += np.searchsorted(lo, faulted, side="right") - np.searchsorted(
                hi, faulted, side="right"
            )
        cost = np.add.reduceat(np.ones(len(u), np.int64), np.flatnonzero(start)) + cover
        total = np.cumsum(cost)
        if total[-1] <= self.EVENT_BUDGET:
            yield block
            return
        # unit-group boundaries where the running cost crosses each budget multiple
        group_rows = np.flatnonzero(start)
        cuts = np.unique(
            np.searchsorted(
                total, np.arange(self.EVENT_BUDGET, total[-1], self.EVENT_BUDGET), side="right"
            )
        )
        rows = [0, *(int(group_rows[c]) for c in cuts if c < len(group_rows)), len(u)]
        for a, b in itertools.pairwise(sorted(set(rows))):
            yield FaultBlock(u[a:b], block.ts[a:b], block.mig[a:b])

    # ---- one policy --------------------------------------------------------------------
    def run(self, zap_sel: str, prot_sel: str, inv_ts: np.ndarray) -> PageRun:
        """Replay one policy's zap / protect selections; see the module docstring."""
        zm, pm = self._mask("none" if self.host else zap_sel), self._mask(prot_sel)
        nrow = len(self.p_inv)
        w = np.where(self.p_thp, 1 << (HUGE_SHIFT - PAGE_SHIFT), 1)
        units = self.p_hi - self.p_lo
        rows = np.arange(nrow)

        if self.faults is None:
            zr = _per_row(rows[zm], units[zm], nrow)
            mr = _per_row(rows[pm], units[pm], nrow)
            run = self._finish(zr, mr, w, 0, 0, None)
            run.hint_faults, run.refaults = int(mr.sum()), int(zr.sum())
            return run
        # never-faulted units: made PROT_NONE once (first protect coverage), zapped once
        # (first zap coverage) when present at trace start; the faulted units inside
        # these first coverages are taken out block by block
        pci, pcl, pch = _newcov(rows[pm], self.p_lo[pm], self.p_hi[pm])
        zci, zcl, zch = _newcov(rows[zm], self.p_lo[zm], self.p_hi[zm])
        never_faulted = pch - pcl
        present = self._flush_measure(zch) - self._flush_measure(zcl)
        zr = np.zeros(nrow, np.int64)
        mr = np.zeros(nrow, np.int64)
        hints = refaults = 0
        mig = np.zeros(3, np.int64)
        bounds = [(np.sort(self.p_lo[m]), np.sort(self.p_hi[m])) for m in (zm, pm)]
        last_unit = -1
        for big in self.faults.blocks():
            last_unit = _check_order(big, last_unit)
            for blk in self._sub_blocks(big, bounds):
                start = np.concatenate([[True], blk.unit[1:] != blk.unit[:-1]])
                fu = blk.unit[start]
                never_faulted -= np.searchsorted(fu, pch) - np.searchsorted(fu, pcl)
                p0, in_flush = self._start_present(fu, blk.ts[start], inv_ts)
                fin = np.concatenate([[0], np.cumsum(in_flush)])
                present -= fin[np.searchsorted(fu, zch)] - fin[np.searchsorted(fu, zcl)]
                out = self._replay_block(blk, start, fu, p0, zm, pm, inv_ts, nrow)
                zr += out[0]
                mr += out[1]
                hints += out[2]
                refaults += out[3]
                mig += out[4]
        mr += _per_row(pci, never_faulted, nrow)
        zr += _per_row(zci, present, nrow)
        migrations = (int(mig[0]), int(mig[1]), int(mig[2]))
        return self._finish(zr, mr, w, hints, refaults, migrations)

    def _replay_block(
        self,
        blk: FaultBlock,
        start: np.ndarray,
        fu: np.ndarray,
        start_present: np.ndarray,
        zm: np.ndarray,
        pm: np.ndarray,
        inv_ts: np.ndarray,
        nrow: int,
    ) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray]:
        """Every zap / protect / fault on the faulted units ``fu``, in time order."""
        zpos, zrow = _pairs(fu, zm, self.p_lo, self.p_hi)
        ppos, prow = _pairs(fu, pm, self.p_lo, self.p_hi)
        fpos = np.cumsum(start) - 1  # position of every fault's unit in ``fu``
        u = np.concatenate([zpos, ppos, fpos])
        ts = np.concatenate([inv_ts[self.p_inv[zrow]], inv_ts[self.p_inv[prow]], blk.ts])
        kind = np.concatenate(
            [
                np.zeros(len(zpos), np.int8),
                np.ones(len(ppos), np.int8),
                np.full(len(fpos), 2, np.int8),
            ]
        )
        row = np.concatenate([zrow, prow, np.full(len(fpos), -1, np.int64)])
        order = np.lexsort((kind, ts, u))
        u, kind, row = u[order], kind[order], row[order]
        fidx = order - (len(zpos) + len(ppos))  # index in the block of fault rows
        del ts, order
        n = len(u)
        gstart = np.searchsorted(u, u, side="left")
        idx = np.arange(n)

        def last(mask: np.ndarray) -> np.ndarray:
            """Index of the previous row of the same unit where mask holds, else -1."""
            if n == 0:
                return np.zeros(0, np.int64)
            acc = np.maximum.accumulate(np.where(mask, idx, -1))
            prev = np.concatenate([[-1], acc[:-1]])
            return np.where(prev >= gstart, prev, -1)

        is_z, is_p, is_f = kind == 0, kind == 1, kind == 2
        p0 = start_present[u]
        lz, lf, lp = last(is_z), last(is_f), last(is_p)
        # a traced fault is a fault under this policy when the page is not present
        # (a host process's user faults always reach the PTE)
        missing = ((lf >= 0) & (lz > lf)) | ((lf < 0) & ((lz >= 0) | ~p0))
        pf = is_f if self.host else is_f & missing
        lpf = last(pf)
        hint = pf & (lp >= 0) & (lp > lpf)
        refault = pf & ((lf >= 0) | p0) & (not self.host)
        zapped = is_z & ((lpf > lz) | ((lz < 0) & p0))
        made = is_p & ((lp < 0) | (lpf > lp))
        zr = _per_row(row[zapped], np.ones(int(zapped.sum())), nrow)
        mr = _per_row(row[made], np.ones(int(made.sum())), nrow)
        mig = blk.mig[fidx[hint]].sum(axis=0).astype(np.int64)
        return zr, mr, int(hint.sum()), int(refault.sum()), mig

    def _finish(
        self,
        zr: np.ndarray,
        mr: np.ndarray,
        w: np.ndarray,
        hints: int,
        refaults: int,
        migrations: tuple[int, int, int] | None,
    ) -> PageRun:
        inv = self.p_inv
        return PageRun(
            zapped_units=self._per_inv(inv, zr),
            zapped_pages=self._per_inv(inv, zr * w),
            made_units=self._per_inv(inv, mr),
            made_pages=self._per_inv(inv, mr * w),
            made_huge=self._per_inv(inv, mr * self.p_thp),
            hint_faults=hints,
            refaults=refaults,
            migrations=migrations,
            row_zapped_units=zr,
            row_made_units=mr,
        )


__all__ = ["SELECTIONS", "PageModel", "PageRun", "merge_ranges", "vma_pieces"]
