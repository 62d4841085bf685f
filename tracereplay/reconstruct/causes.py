"""Cause of every KVM invalidation: which rule decided it, on what evidence.

``kvm_unmaps.cause`` stays ``numa_scan | other | unknown`` (the contract);
``cause_kind`` names the finer class, ``cause_rule`` the rule that decided it
and ``cause_ref`` the ``events.seq`` of the evidence (the syscall entry, the
user fault, the skip event, the previous chunk of the chain).

With a symbolized stack the cause is exact (``cause_rule = 'stack'``): the
store marks ``task_numa_work`` / ``change_prot_numa`` stacks ``numa_scan`` at
ingest, and the class shown by the rest of the stack is, in this order, a
listed syscall's entry point (``__x64_sys_madvise`` ...), a COW fault
(``do_wp_page``), a migration (``migrate_pages``), else ``other``.

Without a stack the rules below run per invalidation, first match wins
(queries/_invalidation_evidence.sql gathers what the task did around it; the
evidence is always the invalidating task's own):

1. ``syscall`` -> ``other``, kind = the syscall: the task was inside one of
   its own windows (enter .. exit) of a syscall of :data:`CAUSE_SYSCALLS`
   (``syscalls:sys_{enter,exit}_*``, or ``raw_syscalls`` with those ids,
   x86-64 numbers). These syscalls never run task_work before their exit:
   ``task_numa_work`` runs on the return to user space (after the sys_exit
   tracepoint, kernel/entry/common.c), or inside KVM_RUN and io_uring, which
   are not listed -- so nothing inside such a window is a NUMA-scan chunk.
   A user-mode page fault or another syscall of the task closes a window whose
   exit was lost.
2. ``cow`` -> ``other``, kind ``cow_fault``: the task's last user-mode event
   before it is a ``page_fault_user`` with the write and present bits
   (error code & 3 == 3) at most 1 ms earlier, and the range is exactly the
   4 KiB page or the 2 MiB PMD of the fault address (``wp_page_copy`` sends a
   one-page notifier; a THP is split over its PMD first).
3. ``migration`` -> ``other``, kind ``migration``: the task was between its
   own ``mm_migrate_pages_start`` and ``mm_migrate_pages``; or, without start
   events, the next event of the task is an ``mm_migrate_pages`` at most 1 ms
   later and the range is at most a PMD (try_to_migrate unmaps one folio).
4. ``seed`` -> ``numa_scan``: the task emitted ``sched_skip_vma_numa`` within
   2 ms of it and the nearest such event is consistent with one scan pass:
   the scan starts at its ``numa_scan_offset`` (mm->numa_scan_offset is only
   written back when task_numa_work returns, so every skip event of a call
   carries that call's start) and goes up in address order, so the range ends
   above the offset, above the VMAs skipped before it and below those skipped
   after it.
5. ``chain`` -> ``numa_scan``: the range starts exactly where the process's
   previous NUMA-scan invalidation ended (the scan resumes at
   ``mm->numa_scan_offset``: the chunks of a pass tile the address space).
6. ``scan_period`` -> ``other``: vetoes 4 and 5 when the invalidation would
   start a new task_numa_work call of the process (another task, or the task
   went back to user space since the previous chunk, or 50 ms passed) sooner
   than the scan period allows after the previous call began: one call per
   ``mm->numa_next_scan`` period, at least ``task_scan_min`` = 1000 ms *
   scan_size / 2560 MB (100 ms at the default 256 MB, kernel/sched/fair.c),
   less a jiffy of rounding (10 ms at HZ=100).
7. ``default`` -> ``other``, kind ``other``.

Invalidations with a stack of bare addresses (perf -g without kallsyms) go
through the same rules. On the stack-recorded traces of fixtures/ the rules
reproduce the stack classification exactly when syscall events were recorded
(docs/CAUSES.md has the confusion matrices, scripts/measure_causes.py makes them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from tracereplay.store.queries import load_query

__all__ = [
    "CAUSE_SYSCALLS",
    "RULES",
    "CauseSummary",
    "classify_invalidations",
]

# name -> x86-64 number (arch/x86/entry/syscalls/syscall_64.tbl), for raw_syscalls ids.
# Every one can send an mmu-notifier invalidation from inside the syscall:
# zap (madvise DONTNEED/FREE/PAGEOUT, munmap, mremap, brk shrink, mmap MAP_FIXED
# over a mapping, fallocate PUNCH_HOLE on shmem), change protection (mprotect,
# pkey_mprotect), migration (mbind MPOL_MF_MOVE, move_pages, migrate_pages), or
# write-protect for copy-on-write (clone/fork: copy_page_range of the parent).
CAUSE_SYSCALLS: dict[str, int] = {
    "mmap": 9,
    "mprotect": 10,
    "munmap": 11,
    "brk": 12,
    "mremap": 25,
    "madvise": 28,
    "clone": 56,
    "fork": 57,
    "vfork": 58,
    "mbind": 237,
    "migrate_pages": 256,
    "move_pages": 279,
    "fallocate": 285,
    "pkey_mprotect": 329,
    "clone3": 435,
    "process_madvise": 440,
}
# in precedence order; "stack" is decided at ingest
RULES = ("stack", "syscall", "cow", "migration", "seed", "chain", "scan_period", "default")

SEED_WINDOW_NS = 2_000_000
FAULT_WINDOW_NS = 1_000_000
CALL_GAP_NS = 50_000_000
JIFFY_SLACK_NS = 10_000_000
DEFAULT_SCAN_MB = 256
PAGE = 4096
PMD = 2 << 20

_RULE_TEXT = {
    "syscall": "inside a syscall window of the invalidating task "
    "(madvise, munmap, mprotect, clone, ...)",
    "cow": "a write fault of the task on that very page just before (copy-on-write)",
    "migration": "inside an mm_migrate_pages call of the task",
    "seed": "the task reported sched_skip_vma_numa within 2 ms, in scan order",
    "chain": "the range starts where the process's previous NUMA-scan invalidation ended",
    "scan_period": "would start a task_numa_work call sooner than the scan period allows",
    "default": "no evidence of a NUMA scan",
}


@dataclass
class CauseSummary:
    """What :func:`classify_invalidations` decided, for the assumptions and reports."""

    inferred: int = 0
    # (cause_kind, rule) -> invalidations decided that way, stack-less ones only
    by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)
    syscall_events: bool = False  # the trace had syscall enter/exit events of the list
    scan_size_mb: int | None = None  # as given (None: the kernel default was assumed)
    min_period_ms: float = 0.0  # the shortest gap between two scan calls rule scan_period allows

    def assumptions(self) -> list[str]:
        """One line per cause class: which rule decided how many invalidations."""
        if not self.inferred:
            return []
        out = [
            f"{self.inferred} KVM invalidations without a stack trace were classified by rule "
            "(tracereplay.reconstruct.causes; first match wins: syscall, cow, migration, seed, "
            "chain, scan_period, default)"
            + (
                ""
                if self.syscall_events
                else "; the trace has no syscall enter/exit events (record with --events causes), "
                "so madvise, munmap, mprotect, ... invalidations can only be told from scan "
                "chunks by timing and address order"
            )
        ]
        if any(rule == "scan_period" for _kind, rule in self.by_rule):
            size = (
                f"{self.scan_size_mb} MB"
                if self.scan_size_mb
                else f"{DEFAULT_SCAN_MB} MB, the kernel default (no manifest tunables)"
            )
            out.append(
                f"rule scan_period takes task_numa_work calls of one process to be at least "
                f"{self.min_period_ms:.0f} ms apart (scan size {size})"
            )
        kinds: dict[str, list[tuple[str, int]]] = {}
        for (kind, rule), n in sorted(self.by_rule.items()):
            kinds.setdefault(kind, []).append((rule, n))
        for kind, rules in kinds.items():
            parts = "; ".join(f"{n} by rule {rule} ({_RULE_TEXT[rule]})" for rule, n in rules)
            cause = "numa_scan" if kind == "numa_scan" else f"other ({kind})"
            out.append(f"invalidations classified {cause}: {parts}")
        return out


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    con.execute("CREATE OR REPLACE TEMP TABLE _cause_syscalls (name VARCHAR, nr INTEGER)")
    con.executemany("INSERT INTO _cause_syscalls VALUES (?, ?)", list(CAUSE_SYSCALLS.items()))
    con.execute(load_query("_invalidation_evidence").sql)
    return con.execute(
        "SELECT seq, ts, pid, tgid, hva_start, hva_end, has_stack, stack_kind, user_before, "
        "user_after, mig_before, mig_after, skip_before, skip_after, epoch "
        "FROM _invalidation_evidence ORDER BY tgid, ts, seq"
    ).fetchall()


def _syscall(before: dict | None, after: dict | None) -> dict | None:
    if before is not None:
        return before if before["kind"] == "enter" and before["detail"] else None
    # the trace began inside the syscall: its exit is the task's next user-mode marker
    if after is not None and after["kind"] == "exit" and after["detail"]:
        return after
    return None


def _cow(ts: int, lo: int, hi: int, before: dict | None) -> bool:
    if before is None or before["kind"] != "fault" or ts - before["ts"] > FAULT_WINDOW_NS:
        return False
    addr, err = int(before["a"]), int(before["b"])
    if err & 3 != 3:
        return False
    page = addr & ~(PAGE - 1)
    pmd = addr & ~(PMD - 1)
    return (lo, hi) in ((page, page + PAGE), (pmd, pmd + PMD))


def _migration(ts: int, lo: int, hi: int, before: dict | None, after: dict | None) -> dict | None:
    if before is not None and before["kind"] == "menter":
        return before
    if (
        after is not None
        and after["kind"] == "mexit"
        and (before is None or before["kind"] == "mexit")
        and after["ts"] - ts <= FAULT_WINDOW_NS
        and hi - lo <= PMD
    ):
        return after
    return None


def _seed(ts: int, lo: int, hi: int, before: dict | None, after: dict | None) -> dict | None:
    near = [
        (abs(ts - s["ts"]), s)
        for s in (before, after)
        if s is not None and abs(ts - s["ts"]) <= SEED_WINDOW_NS
    ]
    if not near:
        return None
    skip = min(near, key=lambda x: x[0])[1]
    if hi <= int(skip["c"] or 0):
        return None  # below where this scan call started
    if skip is before and int(skip["b"]) > lo:
        return None  # the scan already passed this address
    if skip is after and int(skip["a"]) < hi:
        return None  # the scan had not reached this address yet
    return skip


def classify_invalidations(
    con: duckdb.DuckDBPyConnection, *, scan_size_mb: int | None = None
) -> CauseSummary:
    """Set cause, cause_kind, cause_rule, cause_ref of every invalidation (module docstring).

    Stack-less invalidations get ``cause_evidence = 'inferred'``; ``scan_size_mb``
    (``numa_balancing_scan_size_mb``, default 256) sets the minimum scan period.
    """
    rows = _rows(con)
    min_period = 1_000_000 * (scan_size_mb or DEFAULT_SCAN_MB) * 1000 // 2560 - JIFFY_SLACK_NS
    summary = CauseSummary(scan_size_mb=scan_size_mb, min_period_ms=min_period / 1e6)
    summary.syscall_events = bool(
        con.execute(
            "SELECT count(*) FROM events e WHERE e.name IN (SELECT 'sys_enter_' || name FROM "
            "_cause_syscalls) OR (e.name = 'sys_enter' AND TRY_CAST(json_extract_string(e.args, "
            "'$.id') AS INTEGER) IN (SELECT nr FROM _cause_syscalls))"
        ).fetchall()[0][0]
    )
    if not rows:
        return summary
    out_seq: list[int] = []
    out: dict[str, list[Any]] = {"cause": [], "kind": [], "rule": [], "ref": []}
    # per process: end, seq, task, epoch and time of the last NUMA chunk; start of its call
    last: dict[int, tuple[int, int, int, int, int]] = {}
    call_start: dict[int, int] = {}
    for row in rows:
        seq, ts, pid, tgid, lo, hi, has_stack, stack_kind = row[:8]
        user_b, user_a, mig_b, mig_a, skip_b, skip_a, epoch = row[8:]
        lo, hi = int(lo), int(hi)
        prev = last.get(tgid)
        same_call = (
            prev is not None
            and prev[2] == pid
            and prev[3] == epoch
            and ts - prev[4] < CALL_GAP_NS
        )
        if has_stack:
            kind, rule, ref = stack_kind, "stack", None
        elif (sc := _syscall(user_b, user_a)) is not None:
            kind, rule, ref = sc["detail"], "syscall", sc["seq"]
        elif _cow(ts, lo, hi, user_b):
            kind, rule, ref = "cow_fault", "cow", user_b["seq"]
        elif (mig := _migration(ts, lo, hi, mig_b, mig_a)) is not None:
            kind, rule, ref = "migration", "migration", mig["seq"]
        else:
            skip = _seed(ts, lo, hi, skip_b, skip_a)
            if skip is not None:
                kind, rule, ref = "numa_scan", "seed", skip["seq"]
            elif prev is not None and prev[0] == lo:
                kind, rule, ref = "numa_scan", "chain", prev[1]
            else:
                kind, rule, ref = "other", "default", None
            if (
                kind == "numa_scan"
                and not same_call
                and tgid in call_start
                and ts - call_start[tgid] < min_period
            ):
                kind, rule = "other", "scan_period"
        if kind == "numa_scan":
            if not same_call:
                call_start[tgid] = ts
            last[tgid] = (hi, seq, pid, epoch, ts)
        out_seq.append(seq)
        out["cause"].append(None if has_stack else ("numa_scan" if kind == "numa_scan" else "other"))
        out["kind"].append(kind)
        out["rule"].append(rule)
        out["ref"].append(ref)
        if not has_stack:
            summary.inferred += 1
            summary.by_rule[(kind, rule)] += 1
    con.register(
        "_causes",
        pa.table(
            {
                "seq": np.array(out_seq, np.int64),
                "cause": pa.array(out["cause"], pa.string()),
                "kind": pa.array(out["kind"], pa.string()),
                "rule": pa.array(out["rule"], pa.string()),
                "ref": pa.array(out["ref"], pa.int64()),
            }
        ),
    )
    con.execute(
        "UPDATE kvm_unmaps SET cause = coalesce(c.cause, kvm_unmaps.cause), "
        "cause_evidence = CASE WHEN c.cause IS NULL THEN kvm_unmaps.cause_evidence "
        "ELSE 'inferred' END, cause_kind = c.kind, cause_rule = c.rule, cause_ref = c.ref "
        "FROM _causes c WHERE kvm_unmaps.seq = c.seq"
    )
    con.unregister("_causes")
    return summary
