"""NUMA-scan activity of a non-VM process (GPU / RDMA buffers), reconstructed without KVM events.

A process that pins memory without KVM sends no ``kvm_unmap_hva_range``: what
the trace shows of its NUMA scans is ``sched:sched_skip_vma_numa``, the host
TLB flushes (and their ``flush_tlb_func`` IPIs) of the thread that ran
``task_numa_work``, and the hint faults (``exceptions:page_fault_user`` with a
not-present error code) its threads take afterwards.

What one task_numa_work() call covers (kernel/sched/fair.c, 6.18; the loop is
unchanged since 6.7 apart from the skip reasons): it walks the VMAs upwards
from ``mm->numa_scan_offset``; skipped VMAs emit ``sched_skip_vma_numa``
(``numa_scan_offset`` printed is the offset at entry — only a
``seq_completed`` skip moves it, to that VMA's end, before printing;
``ignore_pid_inactive`` is printed for a VMA that *is* scanned). A scanned VMA
is cut into ranges ``[start, min(ALIGN(start + pages * 4 KiB, 2 MiB), vm_end))``,
each one ``change_prot_numa()`` call that flushes the host TLB when it changed a
PTE; ``pages`` (``numa_balancing_scan_size_mb``) shrinks by a range's size only
when the range changed a PTE, ``virtpages`` (8 x scan size) by every range. The
walk stops when either is used up (the offset is left at the end of the last
range) or the VMA list ends (the offset wraps to 0: a pass is complete). When
every remaining VMA was skipped as ``pid_inactive`` it walks once more from the
same offset, scanning the first such VMA ("forced"; the skip events repeat).

So a call's coverage is exact where the trace shows the next call of the same
mm: ``[offset at this call, offset at the next call)`` — or up to the end of the
address space when the next call starts lower (a wrap) — minus the VMAs it
reported skipped (for a forced retry: the first walk to the end, the second up
to the next offset, each minus its own skips). Calls are the runs of one
thread's ``sched_skip_vma_numa`` events less than 50 ms apart (two calls of one
mm are at least one scan period apart).

What the trace cannot tell, and is assumed (the page counts are then marked
assumed and the rule printed):

* a call that starts and ends inside one large VMA (scan size smaller than the
  region) skips nothing, so it reports nothing; it shows only as a burst of host
  flushes of one of the process's threads. Each such burst after the first
  reported call (and not within 50 ms of a thread exit: teardown unmaps flush
  too) is taken as a call with a fresh budget whose first range changed a PTE,
  i.e. covering one ``ALIGN(scan size, 2 MiB)`` range: they are laid backwards
  from where the next reported call started, inside the region holding that
  offset (scan size from the manifest's tunables, else the kernel default);
* the last reported call has no successor: it went at least as far as the VMAs
  it reported, and is taken (with the bursts after it) to cover one scan-size
  range each of the next region.

The host flushes of a call are the ``local mm shootdown`` flushes, and its host
TLB-shootdown IPIs the ``flush_tlb_func`` IPIs (per target), of the scanning
thread between its last user fault before the call and its first after (at
most 5 ms around the call's events). Every call is one chunk per region it
covered (a chunk with no pages for a call that covered none, to keep its
IPIs); each chunk with PTE changes is taken as one change_prot_numa() range,
one flush.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from tracereplay.reconstruct.pages import merge_ranges, vma_pieces

CALL_GAP_NS = 50_000_000
CALL_EDGE_NS = 5_000_000
END = 1 << 64  # end of the address space
HPAGE = 2 << 20
EXIT_MARGIN_NS = 50_000_000
DEFAULT_SCAN = 256 << 20  # numa_balancing_scan_size_mb default
NOT_SKIPPED = {"ignore_pid_inactive", "5"}  # printed for a VMA that is scanned anyway
SEQ_COMPLETED = {"seq_completed", "6"}


@dataclass
class ScanCall:
    """One task_numa_work() call of the process, as the trace shows it."""

    pid: int
    first_ts: int
    last_ts: int
    entry: int  # mm->numa_scan_offset at entry
    walks: list[list[tuple[int, int]]]  # skipped VMAs of each walk (a retry starts a walk)
    furthest: int  # end of the furthest VMA it reported
    ts: int = 0  # the call's first event (skip, host flush or shootdown IPI)
    host_ipis: int = 0
    flushes: int = 0
    visible: bool = True  # False: seen only by its host flushes (skipped no VMA)
    window: tuple[int, int] = (0, 0)  # events of the scanning thread counted as the call's


@dataclass
class ScanCoverage:
    calls: list[ScanCall]
    # per chunk: call index, [lo, hi) inside one region (lo == hi: the call covered none)
    chunk_call: np.ndarray
    chunk_lo: np.ndarray
    chunk_hi: np.ndarray
    tail_assumed: bool  # the last call's end is not known and a region lies beyond it
    split_assumed: bool = False  # calls seen only by their flushes got a share of a gap
    notes: list[str] = field(default_factory=list)


def _calls(rows: dict[str, np.ndarray]) -> list[ScanCall]:
    calls: list[ScanCall] = []
    prev_pid, prev_ts, prev_start = -1, 0, 0
    offsets: list[int] = []
    for ts, pid, lo, hi, off, reason in zip(
        rows["ts"].tolist(),
        rows["pid"].tolist(),
        rows["vm_start"].tolist(),
        rows["vm_end"].tolist(),
        rows["numa_scan_offset"].tolist(),
        [str(r) for r in rows["reason"].tolist()],
        strict=True,
    ):
        if pid != prev_pid or ts - prev_ts >= CALL_GAP_NS:
            if calls:
                calls[-1].entry = min(offsets) if offsets else calls[-1].entry
            calls.append(ScanCall(pid, ts, ts, lo, [[]], hi))
            offsets = []
        elif lo <= prev_start:
            # a walk reports each VMA once, upwards: the forced retry walks again from the offset
            calls[-1].walks.append([])
        call = calls[-1]
        call.last_ts = ts
        call.furthest = max(call.furthest, hi)
        if reason not in SEQ_COMPLETED:
            offsets.append(off)
        elif not offsets:
            # it printed its own end: the walk started at or below its start
            offsets.append(lo)
        if reason not in NOT_SKIPPED:
            call.walks[-1].append((lo, hi))
        prev_pid, prev_ts, prev_start = pid, ts, lo
    if calls and offsets:
        calls[-1].entry = min(offsets)
    return calls


def _share(
    visible_end: int, n: int, step: int, regions: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Coverage of ``n`` calls seen only by their flushes, just before ``visible_end``.

    They started and ended inside one VMA without a skip event, each with a fresh
    budget: a call whose first range changes a PTE covers exactly one range of
    ALIGN(scan size, 2 MiB). Taken backwards from where the next visible call
    started, inside the region holding that offset; nothing when it is in none.
    """
    region = next(((lo, hi) for lo, hi in regions if lo < visible_end <= hi), None)
    if region is None or n == 0:
        return [(visible_end, visible_end)] * n
    out = []
    for i in range(n, 0, -1):
        a = max(region[0], visible_end - i * step)
        b = max(region[0], visible_end - (i - 1) * step)
        out.append((a, b))
    return out


def coverage(
    calls: list[ScanCall], regions: list[tuple[int, int]], scan_bytes: int = DEFAULT_SCAN
) -> ScanCoverage:
    """Each call's coverage of the regions, from the offsets of the visible calls around it."""
    cc, clo, chi = [], [], []
    tail_assumed = split = False
    visible = [k for k, c in enumerate(calls) if c.visible]
    spans: dict[int, list[tuple[int, int]]] = {}
    step = -(-scan_bytes // HPAGE) * HPAGE
    for i, k in enumerate(visible):
        call = calls[k]
        nxt_k = visible[i + 1] if i + 1 < len(visible) else len(calls)
        hidden = list(range(k + 1, nxt_k))
        if nxt_k < len(calls):
            nxt = calls[nxt_k].entry
            last_end = nxt if nxt > call.entry else END
            if hidden and last_end < END:
                shares = _share(last_end, len(hidden), step, regions)
                split = split or any(a < b for a, b in shares)
                for j, sh in zip(hidden, shares, strict=True):
                    spans[j] = [sh] if sh[0] < sh[1] else []
                last_end = max(call.entry, min(a for a, _b in shares))
        else:
            # the last reported call: it went at least as far as the VMAs it reported;
            # beyond, it and the calls seen only by their flushes are assumed to have
            # covered one scan-size range each of the next region
            last_end = max(call.furthest, call.entry)
            ahead = [(lo, hi) for lo, hi in sorted(regions) if hi > last_end]
            if ahead:
                tail_assumed = True
                lo, hi = ahead[0]
                pos = max(lo, last_end)
                for j in [k, *hidden]:
                    end = min(hi, pos + step)
                    if j == k:
                        last_end = end
                    else:
                        spans[j] = [(pos, end)] if pos < end else []
                    pos = end
        parts: list[tuple[int, int]] = []
        for w, skipped in enumerate(call.walks):
            end = last_end if w == len(call.walks) - 1 else END
            parts += vma_pieces(call.entry, end, sorted(skipped))
        spans[k] = merge_ranges(parts)
    for k in range(len(calls)):
        n = 0
        for rlo, rhi in sorted(regions):
            for a, b in spans.get(k, []):
                lo, hi = max(a, rlo), min(b, rhi)
                if lo < hi:
                    cc.append(k)
                    clo.append(lo)
                    chi.append(hi)
                    n += 1
        if n == 0:
            cc.append(k)
            clo.append(0)
            chi.append(0)
    return ScanCoverage(
        calls,
        np.array(cc, np.int64),
        np.array(clo, np.uint64).astype(np.int64),
        np.array(chi, np.uint64).astype(np.int64),
        tail_assumed,
        split,
    )


_SENDS = """
    use_ipi AS (SELECT count(*) > 0 AS yes FROM ipis WHERE callback = 'flush_tlb_func'),
    sends AS (
        SELECT ts, pid, tgid, n_targets AS targets FROM ipis WHERE callback = 'flush_tlb_func'
        UNION ALL
        SELECT ts, pid, tgid, 1 FROM csd_queues
        WHERE func = 'flush_tlb_func' AND NOT (SELECT yes FROM use_ipi)
    )
"""


def _windows(con: duckdb.DuckDBPyConnection, tgid: int, calls: list[ScanCall]) -> None:
    """Host flushes, shootdown IPIs, window and first event of every visible call."""
    con.register(
        "_tr_calls",
        pa.table(
            {
                "k": np.arange(len(calls), dtype=np.int64),
                "pid": np.array([c.pid for c in calls], np.int64),
                "t0": np.array([c.first_ts for c in calls], np.int64),
                "t1": np.array([c.last_ts for c in calls], np.int64),
            }
        ),
    )
    rows = con.execute(
        f"""
        WITH faults AS (SELECT pid, ts FROM page_faults WHERE tgid = $tgid),
        w0 AS (
            SELECT c.*, greatest(c.t0 - {CALL_EDGE_NS}, coalesce(f.ts, c.t0 - {CALL_EDGE_NS})) AS lo
            FROM _tr_calls c ASOF LEFT JOIN faults f ON f.pid = c.pid AND f.ts < c.t0
        ),
        w AS (
            SELECT w0.*, least(w0.t1 + {CALL_EDGE_NS}, coalesce(f.ts, w0.t1 + {CALL_EDGE_NS}),
                               coalesce(lead(w0.t0) OVER (ORDER BY w0.t0), w0.t1 + {CALL_EDGE_NS})) AS hi
            FROM w0 ASOF LEFT JOIN faults f ON f.pid = w0.pid AND f.ts > w0.t1
        ),
        {_SENDS},
        local AS (SELECT ts, pid FROM tlb_flushes WHERE reason IN ('local mm shootdown', 'remote ipi send'))
        SELECT w.k, w.lo, w.hi,
               coalesce((SELECT sum(targets) FROM sends s
                         WHERE s.pid = w.pid AND s.ts BETWEEN w.lo AND w.hi), 0),
               coalesce((SELECT count(*) FROM tlb_flushes t WHERE t.pid = w.pid
                         AND t.reason = 'local mm shootdown' AND t.ts BETWEEN w.lo AND w.hi), 0),
               coalesce((SELECT count(DISTINCT s.ts) FROM sends s
                         WHERE s.pid = w.pid AND s.ts BETWEEN w.lo AND w.hi), 0),
               least(w.t0, coalesce((SELECT min(ts) FROM local l
                                     WHERE l.pid = w.pid AND l.ts BETWEEN w.lo AND w.hi), w.t0))
        FROM w ORDER BY w.k
        """,
        {"tgid": tgid},
    ).fetchall()
    con.unregister("_tr_calls")
    for k, lo, hi, ipis, local, bursts, first in rows:
        call = calls[int(k)]
        call.window = (int(lo), int(hi))
        call.host_ipis = int(ipis)
        call.flushes = int(local) or int(bursts)
        call.ts = int(first)


def _hidden_calls(
    con: duckdb.DuckDBPyConnection, tgid: int, calls: list[ScanCall]
) -> list[ScanCall]:
    """Calls seen only by their flushes: host flush bursts of the process's threads after its
    first visible call, outside the visible calls' windows (a call that started and ended
    inside one VMA reports no skip; it still flushes what it changed), and not within
    50 ms of a thread exit."""
    rows = con.execute(
        f"""
        WITH {_SENDS}
        SELECT ts, pid, 0 AS targets, 1 AS local FROM tlb_flushes
        WHERE tgid = $tgid AND reason = 'local mm shootdown'
        UNION ALL
        SELECT ts, pid, targets, 0 FROM sends WHERE tgid = $tgid
        ORDER BY ts
        """,
        {"tgid": tgid},
    ).fetchall()
    # from the first reported call on, until a thread exits (teardown unmaps flush too)
    exit_ts = con.execute(
        "SELECT min(ts) FROM events WHERE name = 'sched_process_exit' AND tgid = ?", [tgid]
    ).fetchall()[0][0]
    lo_all = calls[0].window[1]
    hi_all = int(exit_ts) - EXIT_MARGIN_NS if exit_ts is not None else END
    windows = sorted(c.window for c in calls)
    starts = [w[0] for w in windows]
    out: list[ScanCall] = []
    open_: dict[int, ScanCall] = {}
    for ts, pid, targets, local in rows:
        if not lo_all < ts < hi_all:
            continue
        i = bisect.bisect_right(starts, ts) - 1
        if i >= 0 and windows[i][0] <= ts <= windows[i][1]:
            continue
        call = open_.get(pid)
        if call is None or ts - call.last_ts > CALL_EDGE_NS:
            call = ScanCall(pid, ts, ts, 0, [[]], 0, ts=ts, visible=False)
            open_[pid] = call
            out.append(call)
        call.last_ts = ts
        call.host_ipis += int(targets)
        call.flushes += int(local)
    for call in out:
        call.window = (call.first_ts, call.last_ts)
        call.flushes = call.flushes or 1
    return out


def scan_coverage(
    con: duckdb.DuckDBPyConnection,
    tgid: int,
    regions: list[tuple[int, int]],
    scan_bytes: int | None = None,
) -> ScanCoverage:
    """The process's task_numa_work calls and what each covered of ``regions``."""
    rows = con.execute(
        "SELECT ts, pid, vm_start, vm_end, numa_scan_offset, reason FROM numa_vma_skips "
        "WHERE tgid = ? ORDER BY ts, seq",
        [tgid],
    ).fetchnumpy()
    calls = _calls({k: np.asarray(v) for k, v in rows.items()})
    if calls:
        _windows(con, tgid, calls)
        calls = sorted(calls + _hidden_calls(con, tgid, calls), key=lambda c: c.ts)
    cov = coverage(calls, regions, scan_bytes or DEFAULT_SCAN)
    hidden = sum(1 for c in calls if not c.visible)
    if hidden:
        cov.notes.append(
            f"process {tgid}: {hidden} host TLB flush burst(s) of its threads between its NUMA scans, "
            "with no sched_skip_vma_numa around them, are taken as task_numa_work calls that started "
            "and ended inside one VMA: their IPIs count as NUMA-scan shootdowns and each is assumed "
            f"to have covered one {-(-(scan_bytes or DEFAULT_SCAN) // HPAGE) * 2} MiB range of the "
            "region, backwards from where the next reported call started"
            + ("" if scan_bytes else " (scan size unknown: the kernel default 256 MiB)")
        )
    if cov.tail_assumed:
        cov.notes.append(
            f"process {tgid}: its last NUMA scan (task_numa_work at {calls[-1].ts / 1e9:.6f} s) has "
            "no successor in the trace, so where it stopped is unknown: it is taken to end at the "
            "furthest VMA it reported skipping"
        )
    return cov


def call_pairs(calls: list[ScanCall]) -> list[tuple[int, int]]:
    """(entry offset, next entry offset) of every call; for tests and notebooks."""
    return [(a.entry, b.entry) for a, b in itertools.pairwise(calls)]


__all__ = ["ScanCall", "ScanCoverage", "call_pairs", "coverage", "scan_coverage"]
