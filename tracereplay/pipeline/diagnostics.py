"""Diagnostics a user must not miss: ``analyze``'s ``warnings`` (codes in :mod:`tracereplay.contract`).

Each is an :class:`~tracereplay.pipeline.analysis.AnalysisWarning`, printed at the top of the table
output, in the JSON ``warnings`` list and as ``warning`` rows of the CSV:

* ``manifest-entry-without-events``: a manifest VM or process to which no event
  of the trace is attributed (wrong tgid, recorded while it was not running,
  a pid filter);
* ``threads-without-process``: threads whose process the trace does not say and
  the process model could not infer, with the KVM invalidations and NUMA scans
  they carry (counted as processes of their own);
* ``missing-events``: events the analysis needs that the trace lacks, named, with
  what is lost and the commands that record them;
* ``nothing-to-replay``: no VM and no pinned process with NUMA-scan activity;
* ``vmstat-disagreement``: the trace-derived baseline and the kernel's own vmstat
  deltas agree below 90 % (or exceed them by 10 %), with the likely causes found
  in the trace.
"""

from __future__ import annotations

import duckdb

from tracereplay.pipeline.analysis import AnalysisWarning, TraceInfo, VmstatRow
from tracereplay.reconstruct.model import Model
from tracereplay.replay import ReplayResult

AGREEMENT_MIN = 0.9
AGREEMENT_MAX = 1.1

# event -> (tracefs system, what the analysis loses without it)
NEEDED = {
    "kvm_unmap_hva_range": ("kvm", "the NUMA-scan invalidations of every VM"),
    "sched_skip_vma_numa": (
        "sched",
        "the NUMA scans of non-VM processes and the cause of stack-less KVM invalidations",
    ),
    "page_fault_user": ("exceptions", "the hint faults of non-VM processes"),
    "tlb_flush": ("tlb", "host TLB flushes"),
    "ipi_send_cpu": ("ipi", "TLB-shootdown IPIs"),
    "ipi_send_cpumask": ("ipi", "TLB-shootdown IPIs"),
    "csd_queue_cpu": ("csd", "the callback of IPIs on 6.6+ kernels (which IPIs are shootdowns)"),
    "kvm_page_fault": ("kvm", "SPTE presence and refaults (assumed without it)"),
    "task_newtask": ("task", "threads created during the trace (tgid-less traces)"),
    "mm_migrate_pages": ("migrate", "NUMA migrations"),
    "sched_move_numa": ("sched", "task NUMA placements"),
}
RECORD_HINT = (
    "`tracereplay record -o trace.dat` enables every event the analysis uses (and record-tgid); "
    "with trace-cmd: `trace-cmd record -O record-tgid {flags}`, with perf: `perf record -a {flags}`"
)
# names that stand for a pair of events
_PAIRS = {"ipi_send_cpu": ("ipi_send_cpu", "ipi_send_cpumask")}


def _warn(code: str, message: str) -> AnalysisWarning:
    return AnalysisWarning(code, message)


def _flags(events: list[str]) -> str:
    return " ".join(f"-e {NEEDED[e][0]}:{x}" for e in events for x in _PAIRS.get(e, (e,)))


def _names(events: list[str]) -> str:
    return ", ".join("/".join(_PAIRS.get(e, (e,))) for e in events)


def _missing(
    counts: dict[str, int],
    recorded: frozenset[str],
    model: Model,
    multi_node: bool,
    stacks: bool,
) -> list[str]:
    """The needed events this trace lacks (neither seen nor listed as recorded)."""

    def absent(e: str) -> bool:
        return not counts.get(e) and e not in recorded

    want = ["kvm_unmap_hva_range", "sched_skip_vma_numa", "tlb_flush"]
    if absent("ipi_send_cpu") and absent("ipi_send_cpumask"):
        want.append("ipi_send_cpu")
    if model.processes:
        want.append("page_fault_user")
    elif stacks and model.vms:
        want.remove("sched_skip_vma_numa")  # stacks give every cause
    if model.processes or model.vms:
        want.append("csd_queue_cpu")
    threads = model.threads
    if threads is not None and (threads.unknown or threads.ambiguous):
        want.append("task_newtask")
    if multi_node:
        want += ["mm_migrate_pages", "sched_move_numa"]
    return [e for e in want if absent(e)]


def diagnose(
    con: duckdb.DuckDBPyConnection,
    trace: TraceInfo,
    vmstat_check: list[VmstatRow] | None,
    model: Model,
    result: ReplayResult,
    recorded: frozenset[str],
    multi_node: bool,
) -> list[AnalysisWarning]:
    """Every warning of the ``analyze`` result."""
    counts = trace.event_counts
    out: list[AnalysisWarning] = []
    out += _manifest_without_events(con)
    out += _threads_without_process(model)
    stacks = bool(
        con.execute("SELECT count(*) FROM kvm_unmaps WHERE cause_evidence = 'stack'").fetchall()[0][
            0
        ]
    )
    missing = _missing(counts, recorded, model, multi_node, stacks)
    active = [r for r in result.vms if r.vm.n_chunks] + [
        r for r in result.processes if r.vm.n_chunks and r.vm.chunks["guest_pages"].any()
    ]
    if not active:
        out.append(_nothing(con, counts, missing))
    elif missing:
        lost = "; ".join(f"{e}: {NEEDED[e][1]}" for e in missing)
        out.append(
            _warn(
                "missing-events",
                f"the trace has no {_names(missing)} events ({lost}): "
                + RECORD_HINT.format(flags=_flags(missing)),
            )
        )
    out += _vmstat(con, trace, vmstat_check or [], model)
    return out


def _manifest_without_events(con: duckdb.DuckDBPyConnection) -> list[AnalysisWarning]:
    rows = con.execute(
        """
        SELECT v.tgid, v.name, v.kind,
               (SELECT count(*) FROM events e WHERE e.tgid = v.tgid) AS n
        FROM vms v WHERE v.source = 'manifest' ORDER BY v.tgid
        """
    ).fetchall()
    busy = con.execute(
        """
        SELECT coalesce(tgid, pid), count(*) FROM kvm_unmaps
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3
        """
    ).fetchall()
    hint = (
        "; processes with KVM invalidations in the trace: "
        + ", ".join(f"{t} ({n})" for t, n in busy)
        if busy
        else ""
    )
    return [
        _warn(
            "manifest-entry-without-events",
            f"manifest {kind} {tgid} ({name}): no event of the trace is attributed to it: its tgid "
            f"may be wrong, or it did not run (or was filtered out) while the trace was recorded{hint}",
        )
        for tgid, name, kind, n in rows
        if not n
    ]


def _threads_without_process(model: Model) -> list[AnalysisWarning]:
    pm = model.threads
    if pm is None or not (pm.unknown or pm.ambiguous):
        return []
    out = []
    if pm.unknown:
        kvm = sum(k for _c, k, _s in pm.unknown.values())
        skips = sum(s for _c, _k, s in pm.unknown.values())
        top = sorted(pm.unknown.items(), key=lambda kv: (-kv[1][1], -kv[1][2], kv[0]))[:5]
        shown = ", ".join(
            f"{p} ({c}): {k} KVM invalidations, {s} NUMA skips" for p, (c, k, s) in top
        )
        out.append(
            _warn(
                "threads-without-process",
                f"{len(pm.unknown)} thread(s) with NUMA-scan activity have no known process (the "
                f"trace has no tgid for them and nothing ties them to another thread): {kvm} KVM "
                f"invalidations, {skips} NUMA-scan VMA skips; each is counted as a process of its "
                f"own. {shown}. Record with record-tgid (`tracereplay record` does), list the "
                "threads as `tids` in the manifest, or give the VM's memslots so its threads are "
                "found by address",
            )
        )
    if pm.ambiguous:
        shown = ", ".join(
            f"{p} ({pm.comms.get(p, '?')}): {'/'.join(map(str, t))}"
            for p, t in sorted(pm.ambiguous.items())[:5]
        )
        out.append(
            _warn(
                "threads-without-process",
                f"{len(pm.ambiguous)} thread(s) touched the ranges of several manifest entries and "
                f"their comm names none of them: {shown}; list them as `tids` in the manifest",
            )
        )
    return out


def _nothing(
    con: duckdb.DuckDBPyConnection, counts: dict[str, int], missing: list[str]
) -> AnalysisWarning:
    kvm_threads = con.execute(
        "SELECT count(DISTINCT pid) FROM events WHERE name IN ('kvm_entry', 'kvm_exit')"
    ).fetchall()[0][0]
    ran = (
        f" KVM guests ran ({kvm_threads} threads with kvm_entry/kvm_exit), but"
        if kvm_threads
        else ""
    )
    if missing:
        why = (
            f"{ran} the trace has no {_names(missing)} events, which the analysis needs: "
            + "; ".join(f"{e}: {NEEDED[e][1]}" for e in missing)
            + ". "
            + RECORD_HINT.format(flags=_flags(missing))
        )
        if "sched_skip_vma_numa" not in missing:
            why += (
                ". The trace does show NUMA scans: a pinned non-VM process (GPU, RDMA buffers) is "
                "replayed once a manifest names it as a [[process]] with its regions and pinned ranges"
            )
    else:
        why = (
            f"{ran} the NUMA-balancing events are there but show no NUMA scan of a VM or of a "
            "manifest [[process]]: NUMA balancing may be off (sysctl kernel.numa_balancing=0), the "
            "scan delay may not have passed, or pinned non-VM processes need a [[process]] manifest "
            "entry with their regions"
        )
    return _warn("nothing-to-replay", f"nothing to replay:{why}")


def _vmstat(
    con: duckdb.DuckDBPyConnection, trace: TraceInfo, check: list[VmstatRow], model: Model
) -> list[AnalysisWarning]:
    rows = [
        (r, r.agreement)
        for r in check
        if r.metric in ("numa_pte_updates", "numa_hint_faults")
        and r.agreement is not None
        and not AGREEMENT_MIN <= r.agreement <= AGREEMENT_MAX
    ]
    if not rows:
        return []
    causes = _likely_causes(con, trace, model)
    text = "; ".join(
        f"{r.metric}: derived {r.derived:,} vs vmstat {r.kernel:,} ({agreement:.0%})"
        for r, agreement in rows
    )
    return [
        _warn(
            "vmstat-disagreement",
            f"the trace-derived baseline and the kernel's vmstat deltas disagree: {text}. Likely: "
            + ("; ".join(causes) if causes else "no cause found in the trace"),
        )
    ]


def _likely_causes(con: duckdb.DuckDBPyConnection, trace: TraceInfo, model: Model) -> list[str]:
    out = []
    replayed = [v.tgid for v in model.vms] + [p.tgid for p in model.processes]
    other = con.execute(
        "SELECT count(DISTINCT coalesce(tgid, pid)), count(*) FROM numa_vma_skips "
        "WHERE coalesce(tgid, pid) NOT IN (SELECT unnest(?::INTEGER[]))",
        [replayed],
    ).fetchall()[0]
    if other[0]:
        out.append(
            f"vmstat counts the whole host: {other[0]} other process(es) ran NUMA scans in the "
            f"trace ({other[1]} VMA skips), and the replay counts only the guest RAM / regions of "
            "the VMs and processes it replays"
        )
    outside = con.execute(
        """
        SELECT coalesce(sum(k.hva_end - k.hva_start), 0)::HUGEINT // 4096 FROM kvm_unmaps k
        WHERE k.cause = 'numa_scan' AND k.tgid IN (SELECT tgid FROM vms WHERE kind = 'vm')
        """
    ).fetchall()[0][0]
    guest = sum(int(v.chunks["guest_pages"].sum()) for v in model.vms if v.n_chunks)
    if outside and int(outside) > guest:
        out.append(
            f"NUMA scans of the VMs also covered {int(outside) - guest:,} pages outside guest RAM "
            "(heap, thread stacks, libraries), which vmstat counts and the per-VM figures do not"
        )
    if any(p.n_chunks for p in model.processes):
        out.append(
            "NUMA scans of the processes also covered memory outside their regions (heap, stacks, "
            "libraries), which vmstat counts and the per-process figures do not"
        )
    pm = model.threads
    if pm is not None and pm.unknown:
        out.append(
            f"{len(pm.unknown)} thread(s) of unknown process (see threads-without-process) are "
            "not counted with their VM or process"
        )
    if trace.lost_events:
        out.append(f"{trace.lost_events:,} events were lost while recording")
    if any(v.kvm_page_faults is None for v in model.vms) or any(
        p.user_faults is None for p in model.processes
    ):
        out.append("hint faults are assumed (no fault events in the trace)")
    return out


__all__ = ["AGREEMENT_MAX", "AGREEMENT_MIN", "NEEDED", "diagnose"]
