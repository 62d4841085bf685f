"""Cause of every KVM invalidation: NUMA scan or not (stack trace when recorded, else inferred).

With a stack trace the cause is exact (the store classified it at ingest:
``task_numa_work`` / ``change_prot_numa`` in the stack). Without one, this
module infers it with two rules, in time order per process:

1. *seed*: the invalidating task emitted ``sched:sched_skip_vma_numa`` within
   2 ms of it — task_numa_work reports the VMAs it passes over during the very
   invocation that sends the notifier for the ones it scans;
2. *chain*: the range starts exactly where the process's previous NUMA-scan
   invalidation ended — the scan resumes at ``mm->numa_scan_offset``, so the
   chunks of a pass tile the address space in order.

Everything else is ``other``. On the stack-traced fixture recorded here the
rules reproduce the stack classification exactly (tests/test_reconstruct.py).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

SEED_WINDOW_NS = 2_000_000

INFERRED_RULE = (
    "KVM invalidations without a stack trace are classified by rule: numa_scan when the "
    "invalidating task reported a sched_skip_vma_numa within 2 ms, or when the range starts "
    "where the process's previous NUMA-scan invalidation ended; other otherwise"
)


def classify_invalidations(con: duckdb.DuckDBPyConnection) -> int:
    """Set cause/evidence of stack-less invalidations; returns how many were inferred."""
    rows = con.execute(
        """
        SELECT k.seq, k.ts, coalesce(k.tgid, k.pid), k.hva_start, k.hva_end,
               k.cause_evidence = 'stack' AND k.cause = 'numa_scan' AS stack_numa,
               k.cause_evidence = 'stack' AS has_stack,
               EXISTS (SELECT 1 FROM numa_vma_skips s
                       WHERE s.pid = k.pid AND s.ts BETWEEN k.ts - ? AND k.ts + ?) AS seeded
        FROM kvm_unmaps k ORDER BY coalesce(k.tgid, k.pid), k.ts, k.seq
        """,
        [SEED_WINDOW_NS, SEED_WINDOW_NS],
    ).fetchall()
    if not rows:
        return 0
    inferred_seq: list[int] = []
    inferred_cause: list[str] = []
    last_end: dict[int, int] = {}
    for seq, _ts, tgid, start, end, stack_numa, has_stack, seeded in rows:
        if has_stack:
            if stack_numa:
                last_end[tgid] = end
            continue
        numa = bool(seeded) or last_end.get(tgid) == start
        if numa:
            last_end[tgid] = end
        inferred_seq.append(seq)
        inferred_cause.append("numa_scan" if numa else "other")
    if inferred_seq:
        con.register(
            "_causes", pa.table({"seq": np.array(inferred_seq, np.int64), "cause": inferred_cause})
        )
        con.execute(
            "UPDATE kvm_unmaps SET cause = c.cause, cause_evidence = 'inferred' "
            "FROM _causes c WHERE kvm_unmaps.seq = c.seq"
        )
        con.unregister("_causes")
    return len(inferred_seq)


__all__ = ["INFERRED_RULE", "classify_invalidations"]
