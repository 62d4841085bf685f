"""The observed part of the analysis, read from the store: trace, processes, VMs, assumptions.

Every count here is ``observed`` (counted from events); reconstruction and the
policy replay add the rest (:mod:`tracereplay.pipeline.steps`).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from tracereplay.pipeline.analysis import (
    InvalidationCause,
    Metric,
    ProcessAnalysis,
    ProcessDetail,
    TraceInfo,
    VmAnalysis,
)
from tracereplay.store.queries import load_query


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    cur = con.execute(load_query(query).sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _int(v: Any) -> int:
    return int(v) if v is not None else 0


def trace_info(con: duckdb.DuckDBPyConnection) -> TraceInfo:
    info = con.execute(
        "SELECT source_path, format, kernel_release, clock, cpus, event_count, "
        "lost_event_count, lost_gaps, partial, warnings, recorder_options, manifest_path FROM trace_info"
    ).fetchone()
    if info is None:
        raise ValueError(
            "the database has no trace_info row: was it written by tracereplay ingest?"
        )
    counts = {r["name"]: _int(r["events"]) for r in _rows(con, "event_counts")}
    span = con.execute("SELECT max(ts) - min(ts) FROM events").fetchone()
    return TraceInfo(
        path=info[0],
        format=info[1],
        kernel=info[2],
        clock=info[3],
        cpus=info[4],
        events=_int(info[5]),
        lost_events=_int(info[6]),
        lost_event_gaps=_int(info[7]),
        partial=bool(info[8]),
        warnings=list(info[9] or []),
        recorder_options=json.loads(info[10]) if info[10] else {},
        manifest=info[11],
        event_counts=counts,
        duration_ns=_int(span[0]) if span and span[0] is not None else None,
    )


# process_activity column -> observed metric, in report order
_OBSERVED_COLUMNS = {
    "events": "events",
    "kvm_invalidations": "kvm_invalidations",
    "kvm_invalidated_bytes": "kvm_invalidated_bytes",
    "tlb_flushes": "tlb_flushes",
    "ipis": "ipis",
    "ipi_targets": "ipi_targets",
    "user_page_faults": "user_page_faults",
    "vma_skips": "vma_skips",
    "pages_migrated": "migrations_succeeded",
    "task_numa_placements": "task_numa_placements",
}


def processes(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> list[ProcessAnalysis]:
    """Observed counts per process, the busiest (by NUMA-relevant activity) first."""
    activity = _rows(con, "process_activity")
    if limit is not None:
        activity = activity[:limit]
    by_reason = _group(_rows(con, "tlb_flushes_by_reason"), "reason", "flushes")
    by_callback = _group(_rows(con, "ipis_by_callback"), "callback", "targets")
    ipi_events = _group(_rows(con, "ipis_by_callback"), "callback", "ipis")
    faults = _group(_rows(con, "page_faults_by_process"), "region", "faults")
    invalidations = _rows(con, "kvm_invalidations")
    out = []
    for row in activity:
        tgid = row["tgid"]
        inv = [r for r in invalidations if r["tgid"] == tgid]
        detail = ProcessDetail(
            tlb_flushes_by_reason=by_reason.get(tgid, {}),
            ipi_targets_by_callback=by_callback.get(tgid, {}),
            ipis_by_callback=ipi_events.get(tgid, {}),
            user_page_faults_by_region=faults.get(tgid, {}),
            kvm_invalidations_by_cause={
                r["cause"]: InvalidationCause(
                    invalidations=_int(r["invalidations"]),
                    bytes=_int(r["bytes"]),
                    guest_ram_bytes=_int(r["guest_ram_bytes"]),
                    evidence=r["cause_evidence"],
                )
                for r in inv
            },
        )
        observed = {m: Metric.of(m, _int(row[col])) for m, col in _OBSERVED_COLUMNS.items()}
        out.append(ProcessAnalysis(tgid=tgid, comm=row["comm"], observed=observed, detail=detail))
    return out


def _group(rows: list[dict[str, Any]], key: str, value: str) -> dict[Any, dict[str, int]]:
    out: dict[Any, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["tgid"], {})[str(r[key])] = _int(r[value])
    return out


def vms(con: duckdb.DuckDBPyConnection, procs: list[ProcessAnalysis]) -> list[VmAnalysis]:
    """One entry per VM of the store's ``vms`` table; the replay is added later."""
    by_tgid = {p.tgid: p for p in procs}
    rows = con.execute("SELECT tgid, name, kind FROM vms WHERE kind = 'vm' ORDER BY tgid").fetchall()
    out = []
    for tgid, name, _kind in rows:
        guest = con.execute(
            "SELECT coalesce(sum(hva_end - hva_start), 0)::HUGEINT FROM memslots WHERE tgid = ?",
            [tgid],
        ).fetchone()
        pinned = con.execute(
            "SELECT coalesce(sum(hva_end - hva_start), 0)::HUGEINT FROM pinned_ranges WHERE tgid = ?",
            [tgid],
        ).fetchone()
        proc = by_tgid.get(tgid)
        out.append(
            VmAnalysis(
                tgid=tgid,
                name=name,
                guest_ram_bytes=_int(guest[0] if guest else 0),
                pinned_bytes=_int(pinned[0] if pinned else 0),
                observed=proc.observed if proc else {},
            )
        )
    return out


def assumptions_for(con: duckdb.DuckDBPyConnection, trace: TraceInfo) -> list[str]:
    """Every assumption the observed counts rest on, in prose."""
    out = []
    missing_tgid = con.execute("SELECT count(*) FROM events WHERE tgid IS NULL").fetchone()
    if missing_tgid and missing_tgid[0]:
        out.append(
            f"{missing_tgid[0]} events have no known tgid (idle tasks, tasks the trace never saw "
            "created, or a trace recorded without record-tgid): they are grouped by thread id"
        )
    if not trace.manifest:
        out.append(
            "no manifest: guest RAM and pinned ranges are unknown, so guest_ram_bytes is 0 "
            "and every user page fault counts as region 'other'"
        )
    unknown = con.execute("SELECT count(*) FROM kvm_unmaps WHERE cause = 'unknown'").fetchone()
    if unknown and unknown[0]:
        out.append(
            f"{unknown[0]} KVM invalidations have no stack trace: their cause is unknown here "
            "(record with a stacktrace trigger on kvm_unmap_hva_range for exact causes)"
        )
    if trace.clock == "counter":
        out.append("timestamps are raw counter units, not nanoseconds")
    return out


__all__ = ["assumptions_for", "processes", "trace_info", "vms"]
