"""Page-level SPTE presence and PROT_NONE state of a VM's guest RAM, as intervals.

Each policy replays the same NUMA-scan invalidations with its own *zap*
selection (the guest pages whose SPTE KVM zaps) and *protect* selection (the
guest pages the primary MMU makes PROT_NONE). :meth:`PageModel.run` turns a
pair of selections into per-invalidation counts (pages zapped, pages made
PROT_NONE) and VM totals (hint faults, SPTE refaults).

Units: a guest page is a 4 KiB page, or one 2 MiB PMD in a memslot mapped
with THP (manifest ``thp = true``: NUMA balancing protects, KVM maps and
refaults it as one huge entry). Selections are kept as unit *intervals* per
invalidation, never one row per page (DESIGN §3); only pages that appear in
``kvm_page_fault`` events get per-page rows (one per event).

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
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

import numpy as np

HUGE_SHIFT, PAGE_SHIFT = 21, 12

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


def _merge(ranges: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
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


class PageModel:
    """Guest RAM of one VM in units, the NUMA invalidations as unit pieces, the faults."""

    def __init__(
        self,
        slots: list[tuple[int, int, int, bool, bool]],  # hva_start, hva_end, gpa_start, shared, thp
        pinned: list[tuple[int, int]],
        inv_lo: np.ndarray,
        inv_hi: np.ndarray,
        inv_flush: np.ndarray,
        fault_ts: np.ndarray | None,
        fault_gpa: np.ndarray | None,
        fault_mig: np.ndarray | None = None,  # per fault: NUMA migration calls ok, failed, pages
    ):
        self.n_inv = len(inv_lo)
        base = 0
        self.slots = []
        for hs, he, gs, shared, thp in sorted(slots):
            shift = HUGE_SHIFT if thp else PAGE_SHIFT
            n = -(-(he - hs) >> shift) if thp else (he - hs) >> shift
            self.slots.append((hs, he, gs, shared, thp, shift, base, n))
            base += n
        self.n_units = base
        # pieces: (invalidation, unit lo, unit hi, pinned, shared, thp)
        self.inv_lo, self.inv_hi = inv_lo, inv_hi
        self.pinned = _merge(pinned)
        cuts = sorted({x for s, e in self.pinned for x in (s, e)})
        pin_starts = [a for a, _ in self.pinned]
        rows: list[tuple[int, int, int, bool, bool, bool]] = []
        hva_rows: list[tuple[int, int]] = []
        for i, (a, b) in enumerate(zip(inv_lo.tolist(), inv_hi.tolist(), strict=True)):
            for hs, he, _gs, shared, thp, shift, ub, _n in self.slots:
                lo, hi = max(a, hs), min(b, he)
                if lo >= hi:
                    continue
                c0, c1 = bisect.bisect_right(cuts, lo), bisect.bisect_left(cuts, hi)
                bounds = [lo, *cuts[c0:c1], hi]
                for x, y in itertools.pairwise(bounds):
                    k = bisect.bisect_right(pin_starts, x) - 1
                    pin = k >= 0 and y <= self.pinned[k][1]
                    ulo = ub + ((x - hs) >> shift)
                    uhi = ub + (-(-(y - hs) >> shift))
                    rows.append((i, ulo, uhi, pin, shared, thp))
                    hva_rows.append((x, y))
        arr = np.array(rows, dtype=np.int64).reshape(-1, 6)
        hv = np.array(hva_rows, dtype=np.int64).reshape(-1, 2)
        self.p_hlo, self.p_hhi = hv[:, 0], hv[:, 1]
        self.p_inv, self.p_lo, self.p_hi = arr[:, 0], arr[:, 1], arr[:, 2]
        self.p_pin, self.p_shared, self.p_thp = (arr[:, k].astype(bool) for k in (3, 4, 5))
        self.observed = fault_ts is not None
        self.inv_flush = inv_flush
        self._unit_thp = np.zeros(0, bool)
        # NUMA migration calls (ok, failed) and pages tied to a guest-RAM fault
        self.mig_attributed = np.zeros(3, np.int64)
        if self.observed:
            assert fault_ts is not None and fault_gpa is not None
            units = np.full(len(fault_gpa), -1, np.int64)
            g = fault_gpa.astype(np.int64)
            for hs, he, gs, _shared, _thp, shift, ub, _n in self.slots:
                m = (g >= gs) & (g < gs + (he - hs))
                units[m] = ub + ((g[m] - gs) >> shift)
            keep = units >= 0
            order = np.argsort(fault_ts[keep], kind="stable")
            self.f_ts = fault_ts[keep][order].astype(np.int64)
            self.f_unit = units[keep][order]
            mig = fault_mig if fault_mig is not None else np.zeros((len(fault_ts), 3), np.int64)
            self.f_mig = mig[keep][order]
            self.mig_attributed = self.f_mig.sum(axis=0).astype(np.int64)
            su = np.sort(self.f_unit)
            self.faulted = su[np.concatenate([[True], su[1:] != su[:-1]])] if len(su) else su
            # position of every fault's unit in ``faulted``
            self.f_pos = np.searchsorted(self.faulted, self.f_unit)
            thp_of = np.zeros(len(self.faulted), bool)
            for _hs, _he, _gs, _sh, thp, _shift, ub, n in self.slots:
                thp_of |= thp & (self.faulted >= ub) & (self.faulted < ub + n)
            self._unit_thp = thp_of
            self._init_presence()

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
    def _pairs(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``faulted``, piece) of every faulted unit inside every selected piece."""
        inv, lo, hi = np.flatnonzero(mask), self.p_lo[mask], self.p_hi[mask]
        a = np.searchsorted(self.faulted, lo)
        b = np.searchsorted(self.faulted, hi)
        n = b - a
        rep = np.repeat(np.arange(len(a)), n)
        off = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        return a[rep] + off, inv[rep]

    def _init_presence(self) -> None:
        """Trace-start presence of every unit (see the module docstring)."""
        evidence = bool((self.inv_flush > 0).any())
        flush_inv = self.inv_flush > 0 if evidence else np.ones(self.n_inv, bool)
        ci, cl, ch = _newcov(self.p_inv, self.p_lo, self.p_hi)
        order = np.argsort(cl)
        ci, cl, ch = ci[order], cl[order], ch[order]
        # first-coverage pieces of invalidations that flushed: units present at start
        keep = flush_inv[ci] if len(ci) else np.zeros(0, bool)
        self._fl_lo, self._fl_hi = cl[keep], ch[keep]
        self._fl_cum = np.concatenate([[0], np.cumsum(self._fl_hi - self._fl_lo)])
        # faulted units: present at start iff first covered by a flushing invalidation
        # before their first fault
        first_fault = np.full(len(self.faulted), np.iinfo(np.int64).max)
        np.minimum.at(first_fault, self.f_pos, self.f_ts)
        self._first_fault = first_fault
        j = np.searchsorted(cl, self.faulted, side="right") - 1
        jj = np.maximum(j, 0)
        if len(cl):
            inside = (j >= 0) & (ch[jj] > self.faulted)
            self._first_inv = np.where(inside, ci[jj], -1)
            self._in_flush_cov = inside & flush_inv[ci[jj]]
        else:
            self._first_inv = np.full(len(self.faulted), -1, np.int64)
            self._in_flush_cov = np.zeros(len(self.faulted), bool)

    def _flush_measure(self, x: np.ndarray) -> np.ndarray:
        """Units of the start-present region below each x."""
        if len(self._fl_lo) == 0:
            return np.zeros(len(x), np.int64)
        k = np.searchsorted(self._fl_lo, x, side="right") - 1
        kk = np.maximum(k, 0)
        part = np.clip(x - self._fl_lo[kk], 0, self._fl_hi[kk] - self._fl_lo[kk])
        return np.where(k >= 0, self._fl_cum[kk] + part, 0)

    # ---- one policy --------------------------------------------------------------------
    def run(self, zap_sel: str, prot_sel: str, inv_ts: np.ndarray) -> PageRun:
        """Replay one policy's zap / protect selections; see the module docstring."""
        zm, pm = self._mask(zap_sel), self._mask(prot_sel)
        nrow = len(self.p_inv)
        w = np.where(self.p_thp, 1 << (HUGE_SHIFT - PAGE_SHIFT), 1)
        units = self.p_hi - self.p_lo
        rows = np.arange(nrow)

        def per_row(r: np.ndarray, weights: np.ndarray) -> np.ndarray:
            return np.bincount(r, weights=weights, minlength=nrow).astype(np.int64)

        if not self.observed:
            zr = per_row(rows[zm], units[zm])
            mr = per_row(rows[pm], units[pm])
            run = self._finish(zr, mr, w, 0, 0, None)
            run.hint_faults, run.refaults = int(mr.sum()), int(zr.sum())
            return run
        fu = self.faulted
        # never-faulted units: made PROT_NONE once (first protect coverage), zapped once
        # (first zap coverage) when present at trace start
        ci, cl, ch = _newcov(rows[pm], self.p_lo[pm], self.p_hi[pm])
        nf = ch - cl - (np.searchsorted(fu, ch) - np.searchsorted(fu, cl))
        mr = per_row(ci, nf)
        ci, cl, ch = _newcov(rows[zm], self.p_lo[zm], self.p_hi[zm])
        present = self._flush_measure(ch) - self._flush_measure(cl)
        fin = np.concatenate([[0], np.cumsum(self._in_flush_cov)])
        present -= fin[np.searchsorted(fu, ch)] - fin[np.searchsorted(fu, cl)]
        zr = per_row(ci, present)
        # faulted units: every zap / protect / fault on them, in time order
        never = np.iinfo(np.int64).max
        first_ts = np.where(self._first_inv >= 0, inv_ts[np.maximum(self._first_inv, 0)], never)
        start_present = (self._first_inv >= 0) & self._in_flush_cov & (first_ts < self._first_fault)
        zpos, zrow = self._pairs(zm)
        ppos, prow = self._pairs(pm)
        fpos = self.f_pos
        u = np.concatenate([zpos, ppos, fpos])
        ts = np.concatenate([inv_ts[self.p_inv[zrow]], inv_ts[self.p_inv[prow]], self.f_ts])
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
        fidx = order - (len(zpos) + len(ppos))  # original fault index of fault rows
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
        pf = is_f & (((lf >= 0) & (lz > lf)) | ((lf < 0) & ((lz >= 0) | ~p0)))
        lpf = last(pf)
        hint = pf & (lp >= 0) & (lp > lpf)
        refault = pf & ((lf >= 0) | p0)
        zapped = is_z & ((lpf > lz) | ((lz < 0) & p0))
        made = is_p & ((lp < 0) | (lpf > lp))
        zr += per_row(row[zapped], np.ones(int(zapped.sum())))
        mr += per_row(row[made], np.ones(int(made.sum())))
        mig = self.f_mig[fidx[hint]].sum(axis=0)
        migrations = (int(mig[0]), int(mig[1]), int(mig[2]))
        return self._finish(zr, mr, w, int(hint.sum()), int(refault.sum()), migrations)

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


__all__ = ["SELECTIONS", "PageModel", "PageRun", "vma_pieces"]
