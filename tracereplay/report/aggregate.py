"""What the HTML report plots, aggregated first: the size of a chart never grows with the trace.

* lines: each policy's cumulative count at :data:`TIME_BINS` + 1 instants
  (from the per-chunk series of :mod:`tracereplay.replay.series`);
* heat maps: a grid of :data:`ADDR_BINS` guest-RAM bins × :data:`TIME_BINS` time
  bins. The y axis is the *guest RAM offset*: the VM's memslots in guest
  physical order (host address order when no GPA is known), end to end.

  - zaps: the 4 KiB pages each policy's page replay zapped, per piece of
    invalidation (an invalidation cut by memslot and pinned range), spread
    evenly over the piece's addresses and dated by the invalidation;
  - refaults: with ``kvm_page_fault`` events, the baseline's are the traced
    vCPU faults on guest RAM, scaled to the baseline's ``spte_refaults``; a
    policy's are those faults times, per address bin, the share of the
    baseline's zaps the policy still makes there, scaled to the policy's
    ``spte_refaults``. Without those events every zapped page is assumed to
    be refaulted once (as the replay assumes), so the refault map is the zap
    map dated by the zap.
* scan passes: ``numa_scan_ranges()`` grouped by pass (queries/_invalidation_pages.sql).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np

from tracereplay.replay import VmResult
from tracereplay.replay.series import ChunkSeries

TIME_BINS = 120
ADDR_BINS = 64
MIB = 1 << 20


@dataclass(frozen=True)
class Axis:
    """The report's shared time axis: trace start and end (ns) and the bin edges."""

    start: int
    end: int
    edges: np.ndarray  # TIME_BINS + 1 instants, ns

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection) -> Axis:
        row = con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
        start = int(row[0]) if row[0] is not None else 0
        end = int(row[1]) if row[1] is not None else start
        end = max(end, start + 1)
        return cls(start, end, np.linspace(start, end, TIME_BINS + 1))

    def seconds(self, ns: np.ndarray) -> np.ndarray:
        return (np.asarray(ns, np.float64) - self.start) / 1e9

    def bin_of(self, ts: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.edges, np.asarray(ts, np.float64), side="right") - 1
        return np.clip(idx, 0, TIME_BINS - 1)


def cumulative(cs: ChunkSeries, metric: str, axis: Axis) -> dict[str, np.ndarray]:
    """Each policy's running total of ``metric`` at the axis' bin edges."""
    order = np.argsort(cs.ts, kind="stable")
    ts = cs.ts[order]
    at = np.searchsorted(ts, axis.edges, side="right")
    out = {}
    for policy, metrics in cs.values.items():
        run = np.concatenate([[0.0], np.cumsum(np.asarray(metrics[metric], np.float64)[order])])
        out[policy] = run[at]
    return out


@dataclass(frozen=True)
class GuestLayout:
    """A VM's memslots end to end: host address -> guest RAM offset."""

    hva_start: np.ndarray  # sorted
    hva_end: np.ndarray
    offset: np.ndarray  # guest RAM offset of each slot's start
    gpa_start: np.ndarray  # -1 when unknown
    total: int

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, tgid: int) -> GuestLayout:
        rows = con.execute(
            "SELECT hva_start::BIGINT, hva_end::BIGINT, coalesce(gpa_start::BIGINT, -1) "
            "FROM memslots WHERE tgid = ? ORDER BY coalesce(gpa_start, hva_start), hva_start",
            [tgid],
        ).fetchall()
        a = np.array(rows, np.int64).reshape(-1, 3)
        sizes = a[:, 1] - a[:, 0]
        offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        by_hva = np.argsort(a[:, 0], kind="stable")
        return cls(a[by_hva, 0], a[by_hva, 1], offset[by_hva], a[by_hva, 2], int(sizes.sum()))

    def of_hva(self, hva: np.ndarray) -> np.ndarray:
        """Guest RAM offset of host addresses inside the memslots."""
        k = np.clip(np.searchsorted(self.hva_start, hva, side="right") - 1, 0, None)
        return self.offset[k] + (hva - self.hva_start[k]) if len(self.hva_start) else hva * 0

    def of_gpa(self, gpa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(guest RAM offset, inside a memslot) of guest physical addresses."""
        off = np.zeros(len(gpa), np.int64)
        inside = np.zeros(len(gpa), bool)
        for hs, he, o, gs in zip(
            self.hva_start, self.hva_end, self.offset, self.gpa_start, strict=True
        ):
            if gs < 0:
                continue
            m = (gpa >= gs) & (gpa < gs + (he - hs))
            off[m] = o + (gpa[m] - gs)
            inside |= m
        return off, inside

    def edges(self) -> np.ndarray:
        return np.linspace(0, max(self.total, 1), ADDR_BINS + 1)


def _spread(
    lo: np.ndarray, hi: np.ndarray, tbin: np.ndarray, weight: np.ndarray, a_edges: np.ndarray
) -> np.ndarray:
    """``weight`` of each [lo, hi) range spread evenly over the address bins it overlaps."""
    grid = np.zeros((ADDR_BINS, TIME_BINS))
    keep = (weight > 0) & (hi > lo)
    lo, hi, tbin, weight = lo[keep], hi[keep], tbin[keep], weight[keep]
    if not len(lo):
        return grid
    size = (hi - lo).astype(np.float64)
    for j in range(ADDR_BINS):
        part = np.clip(np.minimum(hi, a_edges[j + 1]) - np.maximum(lo, a_edges[j]), 0, None)
        np.add.at(grid[j], tbin, weight * part / size)
    return grid


def zap_grid(result: VmResult, policy: str, layout: GuestLayout, axis: Axis) -> np.ndarray:
    """4 KiB pages zapped by ``policy``, address bin × time bin (see the module docstring)."""
    vm, out = result.vm, result.outcomes.get(policy)
    a_edges = layout.edges()
    if out is None or vm.pages is None:
        return np.zeros((ADDR_BINS, TIME_BINS))
    pm = vm.pages
    if out.pages is not None and out.pages.row_zapped_units is not None:
        units = np.asarray(out.pages.row_zapped_units, np.float64)
        weight = units * np.where(pm.p_thp, 512, 1)
        lo, hi = layout.of_hva(pm.p_hlo), layout.of_hva(pm.p_hhi - 1) + 1
        tbin = axis.bin_of(vm.inv_ts[pm.p_inv]) if len(pm.p_inv) else pm.p_inv
        return _spread(lo, hi, tbin, weight, a_edges)
    # an outcome without a page run (a plugin): its per-chunk count over the chunk's range
    lo = np.maximum(pm.inv_lo, layout.hva_start.min() if len(layout.hva_start) else 0)
    hi = np.minimum(pm.inv_hi, layout.hva_end.max() if len(layout.hva_end) else 0)
    ok = hi > lo
    return _spread(
        layout.of_hva(np.where(ok, lo, 0)),
        layout.of_hva(np.where(ok, hi - 1, 0)) + 1,
        axis.bin_of(vm.inv_ts),
        np.where(ok, np.asarray(out.zapped, np.float64), 0.0),
        a_edges,
    )


def fault_grid(
    con: duckdb.DuckDBPyConnection, tgid: int, layout: GuestLayout, axis: Axis
) -> np.ndarray | None:
    """Traced vCPU faults on guest RAM, address bin × time bin; None without kvm_page_fault."""
    if not con.execute("SELECT count(*) FROM kvm_faults WHERE kind = 'page_fault'").fetchall()[0][
        0
    ]:
        return None
    got = con.execute(
        "SELECT ts, gpa::BIGINT AS gpa FROM kvm_faults WHERE tgid = ? AND kind = 'page_fault'",
        [tgid],
    ).fetchnumpy()
    off, inside = layout.of_gpa(np.asarray(got["gpa"], np.int64))
    grid = np.zeros((ADDR_BINS, TIME_BINS))
    a = np.clip(np.searchsorted(layout.edges(), off[inside], side="right") - 1, 0, ADDR_BINS - 1)
    np.add.at(grid, (a, axis.bin_of(np.asarray(got["ts"], np.int64)[inside])), 1.0)
    return grid


def refault_grid(
    faults: np.ndarray | None,
    zaps: np.ndarray,
    base_zaps: np.ndarray,
    total: float,
) -> np.ndarray:
    """A policy's refaults, address bin × time bin, summing to ``total`` (module docstring)."""
    if faults is None:
        grid = zaps.copy()
    else:
        kept = zaps.sum(axis=1)
        base = base_zaps.sum(axis=1)
        share = np.divide(kept, base, out=np.zeros_like(kept), where=base > 0)
        grid = faults * share[:, None]
    s = float(grid.sum())
    return grid * (total / s) if s > 0 else grid


@dataclass(frozen=True)
class ScanPass:
    tgid: int
    number: int
    start: int
    end: int
    invalidations: int
    guest_pages: int
    pinned_pages: int


def scan_passes(con: duckdb.DuckDBPyConnection) -> list[ScanPass]:
    """Every VM's NUMA scan passes (the named query pages_zapped_per_pass's rows)."""
    from tracereplay.store import load_query

    rows = con.execute(load_query("pages_zapped_per_pass").sql).fetchall()
    return [
        ScanPass(int(t), int(p), int(s), int(e), int(n), int(g or 0), int(pin or 0))
        for t, p, n, g, pin, s, e in rows
    ]


__all__ = [
    "ADDR_BINS",
    "MIB",
    "TIME_BINS",
    "Axis",
    "GuestLayout",
    "ScanPass",
    "cumulative",
    "fault_grid",
    "refault_grid",
    "scan_passes",
    "zap_grid",
]
