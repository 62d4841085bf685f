"""The reconstructed model the policies replay: per VM, its NUMA-scan chunks and outcomes.

:func:`reconstruct` runs on an ingested database:

1. process model (:mod:`tracereplay.reconstruct.processes`): the process of
   every thread, from the trace's own evidence where it has no tgid;
2. VMs: from the manifest, else inferred (processes with KVM invalidations;
   guest RAM = contiguous runs of ranges NUMA-scanned more than once that reach
   64 MiB), with
   every inference printed as an assumption;
3. causes of invalidations (:mod:`tracereplay.reconstruct.causes`);
4. ``invalidation_pages``: guest, pinned and shared pages of every NUMA-scan
   invalidation and the IPIs it caused (queries/_invalidation_pages.sql).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from tracereplay.progress import Task, current
from tracereplay.reconstruct.causes import classify_invalidations
from tracereplay.reconstruct.faults import bounded_memory, create_fault_table, slot_layout
from tracereplay.reconstruct.kernel import KernelModel, kernel_model
from tracereplay.reconstruct.pages import PageModel, merge_ranges
from tracereplay.reconstruct.process_scan import scan_coverage
from tracereplay.reconstruct.processes import ProcessModel, assign_processes
from tracereplay.store.queries import load_query

INFERRED_RAM_MIN = 64 << 20


@dataclass
class VmActivity:
    """One VM's NUMA-scan activity: per-chunk arrays and VM-level observed counts.

    Also a non-VM process's (``kind == "process"``, built by :func:`_process_activity`):
    its chunks are the regions each reconstructed task_numa_work call covered
    (:mod:`tracereplay.reconstruct.process_scan`), with no KVM part.
    """

    tgid: int
    name: str
    source: str  # manifest | inferred
    guest_pages: int
    pinned_pages: int
    # per NUMA-scan invalidation (numpy arrays of equal length)
    chunks: dict[str, np.ndarray] = field(default_factory=dict)
    # observed VM-level counts
    # NUMA (reason numa_misplaced) mm_migrate_pages calls, those with failed > 0,
    # and the sum of their succeeded (4 KiB pages; a THP counts 512)
    migrations_attempted: int = 0
    migrations_failed: int = 0
    pages_migrated: int = 0
    task_numa_placements: int = 0
    kvm_page_faults: int | None = None  # None: the trace has no kvm_page_fault events
    evidence: dict[str, int] = field(default_factory=dict)
    # timestamps of the NUMA-scan invalidations (same order as ``chunks``)
    inv_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # change_prot_numa() call of each invalidation (a group id, see _call_groups)
    inv_call: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # page-level presence / PROT_NONE replay (:mod:`tracereplay.reconstruct.pages`)
    pages: PageModel | None = None
    kind: str = "vm"  # vm | process
    # processes: task_numa_work call of each chunk, and that call's host shootdown IPIs
    # per host flush (a policy that drops or adds a flush drops or adds that many)
    scan_call: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ipis_per_flush: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    user_faults: int | None = None  # processes: None when the trace has no page_fault_user
    coverage_assumed: bool = False  # processes: part of the scan coverage is not known

    @property
    def n_chunks(self) -> int:
        return len(self.chunks.get("guest_pages", ()))


@dataclass
class Model:
    kernel: KernelModel
    vms: list[VmActivity]
    assumptions: list[str]
    vmstat_delta: dict[str, int] | None = None
    threads: ProcessModel | None = None
    processes: list[VmActivity] = field(default_factory=list)


def _infer_vms(con: duckdb.DuckDBPyConnection, assumptions: list[str]) -> None:
    """Without a manifest: VMs and guest RAM from the invalidations (assumed).

    A VM is a process with NUMA-scan invalidations (or a known process with any KVM
    invalidation): a lone thread of unknown process whose invalidations are all of
    other causes is no VM of its own (see threads-without-process).
    """
    # named after the thread-group leader when it is traced, else its busiest thread
    found = con.execute(
        """
        SELECT coalesce(k.tgid, k.pid) AS tgid,
               coalesce(any_value(k.comm) FILTER (WHERE k.pid = coalesce(k.tgid, k.pid)),
                        mode(k.comm)) AS name
        FROM (SELECT u.*, e.comm FROM kvm_unmaps u JOIN events e USING (seq)) k
        WHERE coalesce(k.tgid, k.pid) NOT IN (SELECT tgid FROM vms)
        GROUP BY 1
        HAVING count(*) FILTER (WHERE k.cause = 'numa_scan') > 0
            OR bool_or(k.tgid IS NOT NULL)
        ORDER BY 1
        """
    ).fetchall()
    for tgid, name in found:
        merged = _infer_guest_ram(con, int(tgid))
        con.execute("INSERT INTO vms VALUES (?, ?, 'vm', 'inferred')", [tgid, name])
        total = sum(e - s for s, e in merged) >> 20
        assumptions.append(
            f"process {tgid} ({name}) is taken as a VM because KVM invalidated its memory; its guest RAM "
            f"is assumed to be the {len(merged)} contiguous run(s) of ranges NUMA-scanned more than once "
            f"that reach 64 MiB ({total} MiB) and "
            "nothing is assumed pinned: pass a manifest for exact numbers"
        )


def _infer_guest_ram(con: duckdb.DuckDBPyConnection, tgid: int) -> list[tuple[int, int]]:
    """Guest RAM of a VM whose memslots nobody gave: contiguous runs of ranges NUMA-scanned
    more than once that reach 64 MiB (written to ``memslots``, no GPA)."""
    ranges = con.execute(
        """
        SELECT hva_start, hva_end FROM kvm_unmaps
        WHERE coalesce(tgid, pid) = ? AND cause = 'numa_scan'
        GROUP BY hva_start, hva_end HAVING count(*) >= 2 ORDER BY hva_start
        """,
        [tgid],
    ).fetchall()
    runs: list[list[int]] = []
    for start, end in ranges:
        if runs and start <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    merged = [(a, b) for a, b in runs if b - a >= INFERRED_RAM_MIN]
    for start, end in merged:
        con.execute("INSERT INTO memslots VALUES (?, ?, ?, NULL, false, false)", [tgid, start, end])
    return merged


def _manifest_vms_without_memslots(
    con: duckdb.DuckDBPyConnection, assumptions: list[str]
) -> set[int]:
    """Manifest VMs given without memslots ("left for inference"): guest RAM inferred."""
    out = set()
    for tgid, name in con.execute(
        "SELECT tgid, name FROM vms WHERE kind = 'vm' AND source = 'manifest' "
        "AND tgid NOT IN (SELECT tgid FROM memslots) ORDER BY tgid"
    ).fetchall():
        merged = _infer_guest_ram(con, int(tgid))
        out.add(int(tgid))
        assumptions.append(
            f"manifest VM {tgid} ({name}) has no memslots: its guest RAM is assumed to be the "
            f"{len(merged)} contiguous run(s) of ranges NUMA-scanned more than once that reach "
            f"64 MiB ({sum(e - s for s, e in merged) >> 20} MiB); the figures depending on it are "
            "assumed"
        )
    return out


def _observed(con: duckdb.DuckDBPyConnection, vm: VmActivity) -> None:
    row = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE failed > 0), coalesce(sum(succeeded), 0) "
        "FROM migrations "
        "WHERE tgid = ? AND reason = 'numa_misplaced'",
        [vm.tgid],
    ).fetchall()[0]
    if row:
        vm.migrations_attempted, vm.migrations_failed, vm.pages_migrated = (int(x) for x in row)
    placed = con.execute("SELECT count(*) FROM task_numa WHERE tgid = ?", [vm.tgid]).fetchall()[0]
    vm.task_numa_placements = int(placed[0]) if placed else 0
    has_faults = con.execute(
        "SELECT count(*) FROM kvm_faults WHERE kind = 'page_fault'"
    ).fetchall()[0]
    if has_faults and has_faults[0]:
        n = con.execute(
            "SELECT count(*) FROM kvm_faults WHERE tgid = ? AND kind = 'page_fault'", [vm.tgid]
        ).fetchall()[0]
        vm.kvm_page_faults = int(n[0]) if n else 0
    evidence = con.execute(
        "SELECT cause_evidence, count(*) FROM kvm_unmaps WHERE tgid = ? AND cause = 'numa_scan' GROUP BY 1",
        [vm.tgid],
    ).fetchall()
    vm.evidence = {str(k): int(v) for k, v in evidence}


CALL_GAP_NS = 50_000_000
_FAULT_TABLES = itertools.count()


def _call_groups(vm: VmActivity, inv: dict[str, np.ndarray]) -> np.ndarray:
    """Group the notifier granules of one change_prot_numa() call.

    Before 6.12 the PROT_NONE notifier is sent per PUD range (change_pmd_range),
    from 6.12 per P4D (commit 7f06e3aa2e83, "mm/mprotect: push mmu notifier to
    PUDs"): one call over a 1 GiB boundary gives several invalidations but one
    host TLB flush, after the last. An invalidation continues the previous
    one's call when the same task sent it, its range starts where the previous
    ended, no host shootdown was attributed to the previous one, and it came
    within 50 ms.
    """
    n = len(inv["ts"])
    if n == 0:
        return np.zeros(0, np.int64)
    ts = np.asarray(inv["ts"], np.int64)
    pid = np.asarray(inv["pid"], np.int64)
    lo = np.asarray(inv["hva_start"], np.int64)
    hi = np.asarray(inv["hva_end"], np.int64)
    host = vm.chunks.get("host_shootdown_ipis", np.zeros(n, np.int64))
    cont = np.zeros(n, bool)
    cont[1:] = (
        (pid[1:] == pid[:-1])
        & (lo[1:] == hi[:-1])
        & (host[:-1] == 0)
        & (ts[1:] - ts[:-1] < CALL_GAP_NS)
    )
    return np.cumsum(~cont) - 1


def _page_model(
    con: duckdb.DuckDBPyConnection, vm: VmActivity, inv: dict[str, np.ndarray]
) -> PageModel:
    slots = [
        (int(a), int(b), int(g if g is not None else a), bool(sh), bool(t))
        for a, b, g, sh, t in con.execute(
            "SELECT hva_start, hva_end, gpa_start, shared, coalesce(thp, false) FROM memslots "
            "WHERE tgid = ?",
            [vm.tgid],
        ).fetchall()
    ]
    pinned = [
        (int(a), int(b))
        for a, b in con.execute(
            "SELECT hva_start, hva_end FROM pinned_ranges WHERE tgid = ?", [vm.tgid]
        ).fetchall()
    ]
    faults = None
    if vm.kvm_page_faults is not None:
        # a name of its own per call: a second reconstruct() on the connection (another
        # manifest, in a notebook) must not replace the table an earlier Model streams
        table = f"_tr_faults_{vm.tgid}_{next(_FAULT_TABLES)}"
        faults = create_fault_table(con, vm.tgid, slot_layout(slots), table)
    return PageModel(
        slots,
        pinned,
        np.asarray(inv["hva_start"], np.int64),
        np.asarray(inv["hva_end"], np.int64),
        vm.chunks.get("kvm_flush_requests", np.zeros(len(inv["ts"]), np.int64)),
        faults=faults,
    )


def reconstruct(
    con: duckdb.DuckDBPyConnection,
    *,
    kernel_release: str | None = None,
    pin_skip: str | None = None,
    vmstat_delta: dict[str, int] | None = None,
    scan_size_mb: int | None = None,
    recorded_events: Collection[str] = (),
) -> Model:
    """Build the replay model in ``con`` (writable) and return it.

    ``scan_size_mb``: ``numa_balancing_scan_size_mb`` when known (manifest);
    ``recorded_events``: events the recording enabled (manifest ``[recording]``,
    ``system:name`` or bare names), so that "none in the trace" means none happened.
    The model's page replay streams each VM's faults from a temporary table of
    ``con``: replay while the connection is open.
    """
    recorded = frozenset(e.split(":")[-1] for e in recorded_events)
    scan_bytes = int(scan_size_mb) << 20 if scan_size_mb else None
    with bounded_memory(con), current().task("reconstructing NUMA-scan activity") as step:
        return _reconstruct(
            con, kernel_release, pin_skip, vmstat_delta, scan_bytes, recorded, step
        )


def _reconstruct(
    con: duckdb.DuckDBPyConnection,
    kernel_release: str | None,
    pin_skip: str | None,
    vmstat_delta: dict[str, int] | None,
    scan_bytes: int | None,
    recorded: frozenset[str],
    step: Task,
) -> Model:
    assumptions: list[str] = []
    step.update(note="threads to processes")
    processes = assign_processes(con)
    assumptions += processes.assumptions()
    # causes first: guest RAM is inferred from the NUMA-scan invalidations
    step.update(note="invalidation causes")
    causes = classify_invalidations(con, scan_size_mb=scan_bytes >> 20 if scan_bytes else None)
    assumptions += causes.assumptions()
    if causes.inferred:
        bare = con.execute(
            "SELECT count(*) FROM kvm_unmaps JOIN events USING (seq) "
            "WHERE kvm_unmaps.cause_evidence = 'inferred' AND len(events.stack) > 0"
        ).fetchall()[0][0]
        if bare:
            assumptions.append(
                f"{bare} of them had a stack of bare addresses (perf -g callchains: perf.data "
                "embeds no kallsyms), which names no function and so counts as no stack"
            )
    if not con.execute("SELECT count(*) FROM vms").fetchall()[0][0]:
        _infer_vms(con, assumptions)
    ram_inferred = _manifest_vms_without_memslots(con, assumptions)
    step.update(note="invalidated pages")
    con.execute(load_query("_invalidation_pages").sql)
    con.execute(load_query("_page_timeline").sql)
    kernel = kernel_model(kernel_release, pin_skip)
    assumptions.append(kernel.describe())
    vms = []
    for tgid, name, source in con.execute(
        "SELECT tgid, name, source FROM vms WHERE kind = 'vm' ORDER BY tgid"
    ).fetchall():
        step.update(note=f"VM {tgid} ({name})")
        guest = con.execute(
            "SELECT coalesce(sum(hva_end - hva_start), 0)::HUGEINT // 4096 FROM memslots WHERE tgid = ?",
            [tgid],
        ).fetchall()[0]
        pinned = con.execute(
            "SELECT coalesce(sum(hva_end - hva_start), 0)::HUGEINT // 4096 FROM pinned_ranges WHERE tgid = ?",
            [tgid],
        ).fetchall()[0]
        table: pa.Table = con.sql(
            "SELECT * EXCLUDE (seq, ts, pid, tgid, hva_start, hva_end), "
            "((hva_end - hva_start) // 4096)::BIGINT AS range_pages FROM invalidation_pages "
            "WHERE tgid = $tgid ORDER BY ts, seq",
            params={"tgid": int(tgid)},
        ).to_arrow_table()
        chunks = {c: table.column(c).to_numpy().astype(np.int64) for c in table.column_names}
        inv = con.execute(
            "SELECT ts, pid, hva_start::BIGINT AS hva_start, hva_end::BIGINT AS hva_end "
            "FROM invalidation_pages WHERE tgid = ? ORDER BY ts, seq",
            [int(tgid)],
        ).fetchnumpy()
        vm = VmActivity(
            tgid=int(tgid),
            name=str(name),
            source="manifest, guest RAM inferred" if int(tgid) in ram_inferred else str(source),
            guest_pages=int(guest[0]) if guest else 0,
            pinned_pages=int(pinned[0]) if pinned else 0,
            chunks=chunks,
        )
        _observed(con, vm)
        vm.inv_ts = np.asarray(inv["ts"], np.int64)
        vm.inv_call = _call_groups(vm, inv)
        vm.pages = _page_model(con, vm, inv)
        vms.append(vm)
    procs = []
    for tgid, name, source in con.execute(
        "SELECT tgid, name, source FROM vms WHERE kind = 'process' ORDER BY tgid"
    ).fetchall():
        step.update(note=f"process {tgid} ({name})")
        proc = _process_activity(
            con, int(tgid), str(name), str(source), assumptions, scan_bytes, recorded
        )
        if proc is not None:
            procs.append(proc)
    return Model(
        kernel=kernel,
        vms=vms,
        assumptions=assumptions,
        vmstat_delta=vmstat_delta,
        threads=processes,
        processes=procs,
    )


def _overlap_pages(lo: np.ndarray, hi: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros(len(lo), np.int64)
    for a, b in ranges:
        out += np.maximum(0, np.minimum(hi, b) - np.maximum(lo, a)) // 4096
    return out


def _process_activity(
    con: duckdb.DuckDBPyConnection,
    tgid: int,
    name: str,
    source: str,
    assumptions: list[str],
    scan_bytes: int | None,
    recorded: frozenset[str],
) -> VmActivity | None:
    """A manifest ``[[process]]``'s NUMA scans, reconstructed without KVM events."""
    slots = [
        (int(a), int(b), int(a), bool(sh), bool(t))
        for a, b, sh, t in con.execute(
            "SELECT hva_start, hva_end, shared, coalesce(thp, false) FROM memslots WHERE tgid = ?",
            [tgid],
        ).fetchall()
    ]
    if not slots:
        return None
    pinned = [
        (int(a), int(b))
        for a, b in con.execute(
            "SELECT hva_start, hva_end FROM pinned_ranges WHERE tgid = ?", [tgid]
        ).fetchall()
    ]
    regions = [(s[0], s[1]) for s in slots]
    cov = scan_coverage(con, tgid, regions, scan_bytes)
    assumptions += cov.notes
    lo, hi, call = cov.chunk_lo, cov.chunk_hi, cov.chunk_call
    n = len(lo)
    shared = [(s[0], s[1]) for s in slots if s[3]]
    guest = (hi - lo) // 4096
    first = np.ones(n, bool)
    first[1:] = call[1:] != call[:-1]
    host = np.array([c.host_ipis for c in cov.calls], np.int64)
    flushes = np.array([c.flushes for c in cov.calls], np.int64)
    zeros = np.zeros(n, np.int64)
    chunks = {
        "guest_pages": guest,
        "pinned_pages": _overlap_pages(lo, hi, pinned),
        "shared_pages": _overlap_pages(lo, hi, shared),
        "shared_pinned_pages": zeros.copy(),
        "host_shootdown_ipis": np.where(first, host[call], 0) if n else zeros,
        "kvm_flush_ipis": zeros.copy(),
        "kvm_flush_requests": zeros.copy(),
        "range_pages": guest.copy(),
    }
    proc = VmActivity(
        tgid=tgid,
        name=name,
        source=source,
        guest_pages=sum(b - a for a, b in regions) // 4096,
        pinned_pages=sum(b - a for a, b in merge_ranges(pinned)) // 4096,
        chunks=chunks,
        kind="process",
    )
    _observed(con, proc)
    # zero page_fault_user events may mean none happened or none were recorded
    n_user = int(con.execute("SELECT count(*) FROM page_faults").fetchall()[0][0])
    proc.user_faults = n_user if n_user or "page_fault_user" in recorded else None
    proc.inv_ts = np.array([c.ts for c in cov.calls], np.int64)[call] if n else zeros
    proc.inv_call = np.arange(n, dtype=np.int64)  # each chunk flushes on its own
    proc.scan_call = call
    per_flush = np.divide(host, flushes, out=np.zeros(len(host)), where=flushes > 0)
    proc.ipis_per_flush = per_flush[call] if n else np.zeros(0)
    proc.coverage_assumed = cov.tail_assumed or cov.split_assumed or not cov.calls
    faults = None
    if proc.user_faults is not None:
        table = f"_tr_faults_{tgid}_{next(_FAULT_TABLES)}"
        faults = create_fault_table(con, tgid, slot_layout(slots), table, user=True)
    proc.pages = PageModel(slots, pinned, lo, hi, zeros.copy(), faults=faults, host=True)
    return proc


def model_summary(model: Model) -> dict[str, Any]:
    return {"kernel": model.kernel.describe(), "vms": [vm.tgid for vm in model.vms]}


__all__ = ["Model", "VmActivity", "reconstruct"]
