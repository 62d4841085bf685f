"""Process model: which process (thread group, one mm) every traced thread belongs to.

Traces recorded the usual ways often lack a per-event tgid: ``trace-cmd
record`` / ``extract`` trace.dat files (the reader then assumes every task it
did not see created leads its own group), tracefs text without
``record-tgid``, ``trace-cmd report`` output. A VMM's NUMA scans run in its
vCPU threads, so a VM named in the manifest by its tgid would get nothing.

:func:`assign_processes` uses every source the trace has, strongest first:

1. *exact* (basis observed): the tgid recorded with the event (record-tgid,
   a trace.dat's saved tgids, perf samples' pid, the Perfetto process tree);
   the manifest's ``tids``; ``task_newtask`` with ``CLONE_THREAD`` (the child
   joins its creator's process; without it the child leads its own, as after
   ``sched_process_exec``); a thread id that is a manifest process id (the
   thread-group leader);
2. *manifest ranges* (assumed): the thread's KVM invalidations land inside the
   memslots of exactly one manifest VM (else its user page faults inside the
   memslots / regions of exactly one entry) — where entries overlap, the one
   whose name equals the thread's comm;
3. *same address space* (assumed), between threads, each edge with its
   evidence (and, last, ``only_candidate``: the one manifest VM given without
   memslots takes the one group of unknown threads with KVM invalidations):

   * ``numa_scan_chain``: task_numa_work resumes at ``mm->numa_scan_offset``
     whichever thread runs it, so a NUMA-scan invalidation (stack, or a
     ``sched_skip_vma_numa`` of the same task within 2 ms) starting where
     another thread's ended, or a ``sched_skip_vma_numa`` printing that end as
     its ``numa_scan_offset``, continues that thread's mm;
   * ``same_vma``: ``sched_skip_vma_numa`` of two threads naming the same VMA
     (start and end): VMA addresses are per mm (ASLR). VMAs named by threads of
     two known, different processes (forks share their parent's layout) are
     no evidence;
   * ``range_overlap``: a thread's KVM invalidation overlaps another thread's
     NUMA-scan invalidation: KVM invalidates the ranges of its own mm;
   * ``shootdown_target``: twice or more, a host TLB shootdown IPI
     (``flush_tlb_func``) of one thread was handled (``tlb_flush`` "remote
     shootdown") on the target CPU while the other thread ran there: x86 only
     IPIs CPUs that have the mm loaded and are not lazy.

Merges never join two groups with different known processes. A group with no
known process is named after its lowest thread id (a thread-group leader has
the lowest id of its group) and marked assumed. Results go to the
``thread_processes`` table (pid, tgid, rule, basis, evidence) and the tgid
columns of ``events`` and the typed tables (rows that had no tgid, or only the
trace.dat reader's tgid = pid guess).

Limits: with address-space layout randomization off, two processes of one
binary share VMA addresses and ranges. When manifest entries overlap, the
address rules are not used (threads then need ``tids``, thread creation or
shootdown evidence); without a manifest such processes would be merged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from tracereplay.store.split import ELIDED

CLONE_THREAD = 0x00010000
SEED_WINDOW_NS = 2_000_000
SHOOTDOWN_WINDOW_NS = 1_000_000
SHOOTDOWN_MIN = 2

# the tables with a tgid column the reader filled (event_rows: the table under the
# events view, store/split.py)
TABLES = (
    "event_rows",
    "kvm_unmaps",
    "tlb_flushes",
    "ipis",
    "csd_queues",
    "numa_vma_skips",
    "page_faults",
    "kvm_faults",
    "migrations",
    "task_numa",
)

# anchor strength: lower wins; groups with anchors of strength < TENTATIVE never merge
MANIFEST_TIDS, EXACT, RANGES, TENTATIVE = 0, 1, 2, 3
EXACT_RULES = ("event", "manifest_tids", "clone_thread", "fork_or_exec", "manifest_tgid")
RULE_TEXT = {
    "event": "tgid recorded with its events",
    "manifest_tids": "listed in the manifest's tids",
    "clone_thread": "created in the trace with CLONE_THREAD",
    "fork_or_exec": "created without CLONE_THREAD or exec'd in the trace: leads its own process",
    "manifest_tgid": "its thread id is a manifest process id (the thread-group leader)",
    "manifest_ranges": "its KVM invalidations / user faults land in the manifest entry's ranges",
    "numa_scan_chain": "a NUMA-scan chunk continues where another thread's ended",
    "same_vma": "task_numa_work skipped the same VMAs as another thread",
    "range_overlap": "a KVM invalidation overlaps another thread's NUMA-scan invalidation",
    "shootdown_target": "another thread's TLB shootdown IPIs were handled while it ran",
    "same_address_space": "shares the address space of the process's known threads",
    "only_candidate": "the only manifest VM without memslots, and the only threads of unknown "
    "process with KVM invalidations",
    "lowest_thread": "process id unknown: named after the group's lowest thread id",
}


@dataclass
class InferredGroup:
    """Threads put into one process by inference (every one of them is ``assumed``)."""

    tgid: int
    tgid_rule: str  # how the group's process id was found
    pids: list[int]
    rules: dict[str, int] = field(default_factory=dict)  # rule -> edges / anchors used

    def describe(self, comms: dict[int, str]) -> str:
        shown = ", ".join(f"{p} ({comms.get(p, '?')})" for p in self.pids[:6])
        more = f" and {len(self.pids) - 6} more" if len(self.pids) > 6 else ""
        why = "; ".join(f"{RULE_TEXT[r]} ({n}x)" for r, n in sorted(self.rules.items()))
        return (
            f"threads {shown}{more} are assumed to belong to process {self.tgid} "
            f"(process known by: {RULE_TEXT[self.tgid_rule]}); evidence: {why}"
        )


@dataclass
class ProcessModel:
    groups: list[InferredGroup]
    # threads still without a known process: pid -> (comm, KVM invalidations, NUMA skips)
    unknown: dict[int, tuple[str, int, int]]
    # threads whose manifest-range evidence matched several entries: pid -> tgids
    ambiguous: dict[int, list[int]]
    conflicts: int  # merges refused because they would join two known processes
    rows_filled: int
    tentative_source: bool  # the reader guessed tgid = pid (trace.dat without tgids)
    comms: dict[int, str] = field(default_factory=dict)
    shared_layout: bool = False  # manifest processes overlap: address rules were not used

    def assumptions(self) -> list[str]:
        out = [g.describe(self.comms) for g in self.groups]
        if self.rows_filled:
            out.append(
                f"{self.rows_filled} events without a recorded tgid were given their thread's "
                "process (tracereplay.reconstruct.processes)"
            )
        if self.shared_layout:
            out.append(
                "manifest processes have overlapping address ranges (layouts not randomized): "
                "threads were not grouped by addresses, only by thread creation, tids and TLB "
                "shootdown targets"
            )
        if self.conflicts and (self.groups or self.unknown or self.rows_filled):
            out.append(
                f"{self.conflicts} same-address-space hints joined threads of two known, different "
                "processes and were ignored"
            )
        return out


class _Groups:
    """Union-find over thread ids with one anchor (strength, tgid, rule) per group."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.anchor: dict[int, tuple[int, int, str]] = {}
        self.own: dict[int, tuple[int, int, str]] = {}  # the anchor a thread was given itself
        self.edges: dict[int, dict[str, int]] = defaultdict(dict)
        self.conflicts = 0

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def set_anchor(self, pid: int, strength: int, tgid: int, rule: str) -> None:
        mine = self.own.get(pid)
        if mine is None or (strength, tgid) < (mine[0], mine[1]):
            self.own[pid] = (strength, tgid, rule)
        r = self.find(pid)
        old = self.anchor.get(r)
        if old is None or (strength, tgid) < (old[0], old[1]):
            self.anchor[r] = (strength, tgid, rule)

    def union(self, a: int, b: int, rule: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        xa, xb = self.anchor.get(ra), self.anchor.get(rb)
        if xa and xb and xa[1] != xb[1] and max(xa[0], xb[0]) < TENTATIVE:
            self.conflicts += 1
            return False
        self.parent[rb] = ra
        best = min((x for x in (xa, xb) if x), default=None, key=lambda x: (x[0], x[1]))
        if best is not None:
            self.anchor[ra] = best
        merged = self.edges.pop(rb, {})
        for k, v in merged.items():
            self.edges[ra][k] = self.edges[ra].get(k, 0) + v
        self.edges[ra][rule] = self.edges[ra].get(rule, 0) + 1
        return True

    def known(self, pid: int) -> tuple[int, int, str] | None:
        """The group's anchor when it names a process (not the reader's guess)."""
        a = self.anchor.get(self.find(pid))
        return a if a is not None and a[0] < TENTATIVE else None


def _threads(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, int | None, bool]]:
    """pid -> (comm, recorded tgid or None, tgid is the reader's tgid = pid guess)."""
    opts = con.execute("SELECT recorder_options->>'tgid_assumed_leader' FROM trace_info").fetchall()
    guessed = bool(opts and opts[0][0] not in (None, "0"))
    rows = con.execute(
        """
        SELECT pid, mode(comm), min(tgid), max(tgid)
        FROM events WHERE pid <> 0 GROUP BY pid ORDER BY pid  -- a stable order of groups
        """
    ).fetchall()
    created = set()
    if guessed:
        created = {
            int(p)
            for (p,) in con.execute(
                "SELECT (args->>'pid')::INTEGER FROM events WHERE name = 'task_newtask' "
                "UNION SELECT pid FROM events WHERE name = 'sched_process_exec'"
            ).fetchall()
            if p is not None
        }
    out: dict[int, tuple[str, int | None, bool]] = {}
    for pid, comm, lo, hi in rows:
        tgid = int(lo) if lo is not None and lo == hi else None
        tentative = guessed and tgid == pid and pid not in created
        out[int(pid)] = (str(comm or ""), tgid, tentative)
    return out


def _exact_anchors(
    con: duckdb.DuckDBPyConnection, g: _Groups, threads: dict[int, tuple[str, int | None, bool]]
) -> None:
    for pid, (_comm, tgid, tentative) in threads.items():
        if tgid is not None:
            g.set_anchor(pid, TENTATIVE if tentative else EXACT, tgid, "event")
    for tgid, pid in con.execute("SELECT tgid, pid FROM process_threads").fetchall():
        g.set_anchor(int(pid), MANIFEST_TIDS, int(tgid), "manifest_tids")
    for (tgid,) in con.execute("SELECT tgid FROM vms WHERE source = 'manifest'").fetchall():
        if int(tgid) in threads:
            g.set_anchor(int(tgid), EXACT, int(tgid), "manifest_tgid")
    rows = con.execute(
        """
        SELECT pid, (args->>'pid')::INTEGER, (args->>'clone_flags')::UBIGINT
        FROM events WHERE name = 'task_newtask' ORDER BY ts, seq
        """
    ).fetchall()
    for parent, child, flags in rows:
        if child is None or parent == 0:
            continue
        if flags is not None and int(flags) & CLONE_THREAD:
            g.union(int(parent), int(child), "clone_thread")
        else:
            g.set_anchor(int(child), EXACT, int(child), "fork_or_exec")
    for (pid,) in con.execute(
        "SELECT DISTINCT pid FROM events WHERE name = 'sched_process_exec'"
    ).fetchall():
        g.set_anchor(int(pid), EXACT, int(pid), "fork_or_exec")


def _range_anchors(
    con: duckdb.DuckDBPyConnection, g: _Groups, threads: dict[int, tuple[str, int | None, bool]]
) -> dict[int, list[int]]:
    """Manifest-range evidence; returns the threads whose evidence names several entries."""
    rows = con.execute(
        """
        WITH hits AS (
            -- only a VM's mm has KVM invalidations: they name VMs, and outrank user faults
            SELECT k.pid, m.tgid, 0 AS rank FROM kvm_unmaps k
            JOIN memslots m ON m.hva_start < k.hva_end AND k.hva_start < m.hva_end
            JOIN vms v ON v.tgid = m.tgid AND v.kind = 'vm'
            UNION ALL
            SELECT p.pid, m.tgid, 1 FROM page_faults p
            JOIN memslots m ON p.address >= m.hva_start AND p.address < m.hva_end
        ),
        best AS (SELECT *, min(rank) OVER (PARTITION BY pid) AS top FROM hits)
        SELECT h.pid, list(DISTINCT h.tgid ORDER BY h.tgid), any_value(v.name)
        FROM best h JOIN vms v ON v.tgid = h.tgid AND v.source = 'manifest'
        WHERE h.pid <> 0 AND h.rank = h.top GROUP BY h.pid
        """
    ).fetchall()
    names = dict(con.execute("SELECT tgid, name FROM vms").fetchall())
    ambiguous: dict[int, list[int]] = {}
    for pid, tgids, _name in rows:
        cands = [int(t) for t in tgids]
        if len(cands) > 1:
            comm = threads.get(int(pid), ("", None, False))[0]
            by_comm = [t for t in cands if comm and str(names.get(t, ""))[:15] == comm]
            if len(by_comm) != 1:
                ambiguous[int(pid)] = cands
                continue
            cands = by_comm
        g.set_anchor(int(pid), RANGES, cands[0], "manifest_ranges")
    return ambiguous


_NUMA = f"""
    SELECT k.seq, k.ts, k.pid, k.hva_start, k.hva_end FROM kvm_unmaps k
    WHERE k.pid <> 0 AND (k.cause = 'numa_scan' OR EXISTS (
        SELECT 1 FROM numa_vma_skips s WHERE s.pid = k.pid
        AND s.ts BETWEEN k.ts - {SEED_WINDOW_NS} AND k.ts + {SEED_WINDOW_NS}))
"""


def _edges(con: duckdb.DuckDBPyConnection) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(rule, pid_a, pid_b) arrays of same-address-space evidence, strongest rule first."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _tr_numa AS {_NUMA}")
    queries = {
        "numa_scan_chain": """
            SELECT DISTINCT a.pid, b.pid FROM _tr_numa b
            JOIN _tr_numa a ON a.hva_end = b.hva_start AND a.pid <> b.pid AND a.ts < b.ts
            UNION
            SELECT DISTINCT a.pid, s.pid FROM numa_vma_skips s
            JOIN _tr_numa a ON a.hva_end = s.numa_scan_offset AND a.pid <> s.pid AND a.ts < s.ts
            WHERE s.numa_scan_offset <> 0 AND s.pid <> 0
        """,
        "range_overlap": """
            SELECT DISTINCT a.pid, b.pid FROM _tr_numa a
            JOIN kvm_unmaps b ON b.hva_start < a.hva_end AND a.hva_start < b.hva_end
            WHERE a.pid <> b.pid AND b.pid <> 0
        """,
        "shootdown_target": f"""
            WITH sends AS (
                SELECT ts, pid, unnest(targets) AS target FROM ipis WHERE callback = 'flush_tlb_func'
                UNION ALL
                SELECT ts, pid, target_cpu FROM csd_queues WHERE func = 'flush_tlb_func'
            ),
            recv AS (SELECT ts, cpu, pid FROM tlb_flushes WHERE reason = 'remote shootdown')
            SELECT s.pid, r.pid FROM sends s ASOF JOIN recv r ON r.cpu = s.target AND r.ts >= s.ts
            WHERE r.ts - s.ts <= {SHOOTDOWN_WINDOW_NS} AND r.pid <> s.pid AND r.pid <> 0 AND s.pid <> 0
            GROUP BY ALL HAVING count(*) >= {SHOOTDOWN_MIN}
        """,
    }
    out = []
    for rule, sql in queries.items():
        rows = con.execute(sql).fetchnumpy()
        cols = list(rows.values())
        out.append((rule, np.asarray(cols[0], np.int64), np.asarray(cols[1], np.int64)))
    return out


def _same_vma(con: duckdb.DuckDBPyConnection, g: _Groups) -> None:
    """Threads that skipped the same VMA share an mm, unless known processes disagree."""
    rows = con.execute(
        """
        SELECT list(DISTINCT pid ORDER BY pid) FROM numa_vma_skips WHERE pid <> 0
        GROUP BY vm_start, vm_end HAVING count(DISTINCT pid) > 1
        """
    ).fetchall()
    for (pids,) in rows:
        known = {a[1] for p in pids if (a := g.known(int(p))) is not None}
        if len(known) > 1:
            continue  # a VMA of several processes (fork): no evidence
        for p in pids[1:]:
            g.union(int(pids[0]), int(p), "same_vma")


def assign_processes(con: duckdb.DuckDBPyConnection) -> ProcessModel:
    """Resolve every thread's process, write ``thread_processes`` and fill the tgid columns."""
    threads = _threads(con)
    exact, full = _Groups(), _Groups()
    for g in (exact, full):
        for pid in threads:
            g.find(pid)
        _exact_anchors(con, g, threads)
    ambiguous = _range_anchors(con, full, threads)
    chain, overlap, shootdown = _edges(con)
    # manifest entries sharing addresses: the layouts are not randomized, so addresses
    # tell no address space from another (only tids, thread creation and shootdowns do)
    shared_layout = _overlapping_entries(con)
    if not shared_layout:
        for x, y in zip(chain[1].tolist(), chain[2].tolist(), strict=True):
            full.union(x, y, chain[0])
        _same_vma(con, full)
    for rule, a, b in (overlap, shootdown) if not shared_layout else (shootdown,):
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            full.union(x, y, rule)
    _only_candidate(con, full)
    model = _resolve(con, exact, full, threads, ambiguous)
    model.shared_layout = shared_layout
    return model


def _only_candidate(con: duckdb.DuckDBPyConnection, g: _Groups) -> None:
    """A manifest VM given without memslots (left for inference) and nothing tying threads
    to it: when it is the only such VM and one group of threads of unknown process has KVM
    invalidations, that group is taken as its threads (its leader may be known: the
    manifest names it)."""
    vms = [
        int(t)
        for (t,) in con.execute(
            "SELECT tgid FROM vms WHERE kind = 'vm' AND source = 'manifest' "
            "AND tgid NOT IN (SELECT tgid FROM memslots)"
        ).fetchall()
    ]
    if len(vms) != 1:
        return
    # threads with NUMA-scan invalidations (_tr_numa: built by _edges)
    pids = [int(p) for (p,) in con.execute("SELECT DISTINCT pid FROM _tr_numa").fetchall()]
    if any((a := g.known(p)) is not None and a[1] == vms[0] for p in pids):
        return  # its NUMA scans are attributed already
    roots = {g.find(p) for p in pids if g.known(p) is None}
    if len(roots) == 1:
        g.set_anchor(roots.pop(), RANGES, vms[0], "only_candidate")


def _overlapping_entries(con: duckdb.DuckDBPyConnection) -> bool:
    """Do two manifest processes have overlapping ranges (address-space layout not randomized)?"""
    row = con.execute(
        """
        SELECT count(*) FROM memslots a JOIN memslots b
        ON a.tgid < b.tgid AND a.hva_start < b.hva_end AND b.hva_start < a.hva_end
        """
    ).fetchall()
    return bool(row[0][0])


def _resolve(
    con: duckdb.DuckDBPyConnection,
    exact: _Groups,
    full: _Groups,
    threads: dict[int, tuple[str, int | None, bool]],
    ambiguous: dict[int, list[int]],
) -> ProcessModel:
    members: dict[int, list[int]] = defaultdict(list)
    for pid in threads:
        members[full.find(pid)].append(pid)
    rows: list[tuple[int, int, str, str]] = []
    groups: list[InferredGroup] = []
    unknown_pids: list[int] = []
    for root, ms in members.items():
        ms.sort()
        anchor = full.known(root)
        if anchor is not None:
            tgid, group_rule = anchor[1], anchor[2]
        elif len(ms) > 1:
            tgid, group_rule = ms[0], "lowest_thread"
        else:
            unknown_pids += ms
            continue
        assumed: list[int] = []
        for pid in ms:
            sure = exact.known(pid)
            if sure is not None and sure[1] == tgid:
                own = exact.own.get(pid)
                rule = own[2] if own is not None and own[0] < TENTATIVE else "clone_thread"
                rows.append((pid, tgid, rule, "observed"))
                continue
            own = full.own.get(pid)
            if group_rule in ("lowest_thread", "only_candidate"):
                rule = group_rule
            elif own is not None and own[2] == "manifest_ranges" and own[1] == tgid:
                rule = "manifest_ranges"
            else:
                rule = "same_address_space"
            rows.append((pid, tgid, rule, "assumed"))
            assumed.append(pid)
        if assumed:
            used = {k: v for k, v in full.edges.get(root, {}).items() if k != "clone_thread"}
            by_ranges = sum(
                1 for p in ms if (o := full.own.get(p)) is not None and o[2] == "manifest_ranges"
            )
            if by_ranges:
                used["manifest_ranges"] = by_ranges
            groups.append(InferredGroup(tgid, group_rule, assumed, used))
    con.register(
        "_tr_tp",
        pa.table(
            {
                "pid": pa.array([r[0] for r in rows], pa.int32()),
                "tgid": pa.array([r[1] for r in rows], pa.int32()),
                "rule": pa.array([r[2] for r in rows], pa.string()),
                "basis": pa.array([r[3] for r in rows], pa.string()),
            }
        ),
    )
    con.execute("CREATE OR REPLACE TABLE thread_processes AS SELECT * FROM _tr_tp ORDER BY pid")
    con.unregister("_tr_tp")
    con.execute(
        "COMMENT ON TABLE thread_processes IS 'Process of every traced thread whose process is "
        "known or inferred, and how (tracereplay.reconstruct.processes): rule event, "
        "manifest_tids, clone_thread, fork_or_exec, manifest_tgid (basis observed) or "
        "manifest_ranges, same_address_space, lowest_thread (basis assumed)'"
    )
    filled = _fill(con, threads)
    return ProcessModel(
        groups=groups,
        unknown=_unknown_activity(con, unknown_pids, threads),
        ambiguous=ambiguous,
        conflicts=full.conflicts,
        rows_filled=filled,
        tentative_source=any(t[2] for t in threads.values()),
        comms={p: t[0] for p, t in threads.items()},
    )


def _fill(con: duckdb.DuckDBPyConnection, threads: dict[int, tuple[str, int | None, bool]]) -> int:
    """Write the resolved tgids into rows that had none (or the reader's guess)."""
    tentative = [p for p, t in threads.items() if t[2]]
    con.register("_tr_tentative", pa.table({"pid": pa.array(tentative, pa.int32())}))
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _tr_fill AS
        SELECT t.pid, t.tgid, t.pid IN (SELECT pid FROM _tr_tentative) AS guessed
        FROM thread_processes t
        """
    )
    con.unregister("_tr_tentative")
    filled = 0
    # the manifest's thread lists are facts: they beat what a reader recorded
    for table in TABLES:
        con.execute(
            f"UPDATE {table} SET tgid = t.tgid FROM process_threads t "
            f"WHERE {table}.pid = t.pid AND ({table}.tgid IS NULL OR {table}.tgid <> t.tgid)"
        )
    # the events kept only in a typed table first, so they are counted as events
    # (their table also holds rows copied from event_rows: counted there)
    scopes = [(e.table, e.stored_sql()) for e in ELIDED] + [(t, "true") for t in TABLES]
    for table, scope in scopes:
        n = con.execute(
            f"""
            UPDATE {table} SET tgid = f.tgid FROM _tr_fill f
            WHERE {table}.pid = f.pid AND {table}.pid <> 0
              AND ({table}.tgid IS NULL OR (f.guessed AND {table}.tgid = {table}.pid))
              AND {table}.tgid IS DISTINCT FROM f.tgid AND {scope}
            """
        ).fetchall()
        if n and (scope != "true" or table == "event_rows"):
            filled += int(n[0][0])
    return filled


def _unknown_activity(
    con: duckdb.DuckDBPyConnection,
    pids: list[int],
    threads: dict[int, tuple[str, int | None, bool]],
) -> dict[int, tuple[str, int, int]]:
    """Threads of unknown process that carry NUMA-relevant events (KVM invalidations, scans)."""
    if not pids:
        return {}
    con.register("_tr_unknown", pa.table({"pid": pa.array(pids, pa.int32())}))
    rows = con.execute(
        """
        SELECT u.pid,
               (SELECT count(*) FROM kvm_unmaps k WHERE k.pid = u.pid),
               (SELECT count(*) FROM numa_vma_skips s WHERE s.pid = u.pid)
        FROM _tr_unknown u
        """
    ).fetchall()
    con.unregister("_tr_unknown")
    return {int(p): (threads[int(p)][0], int(k), int(s)) for p, k, s in rows if int(k) or int(s)}


__all__ = ["RULE_TEXT", "InferredGroup", "ProcessModel", "assign_processes"]
