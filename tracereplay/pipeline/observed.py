"""The ``analyze`` result as one JSON-shaped dict (DESIGN §5), built from the store.

Every count is a ``{"value": ..., "basis": ...}`` pair, basis one of
``observed`` (counted from events), ``derived`` (computed from observed events
and the model) or ``assumed`` (depends on a fact the trace lacks).
Reconstruction and policy replay add ``vms[].policies``; this module fills
the trace summary, the observed per-process counts and the assumptions.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from tracereplay.store.queries import load_query

OBSERVED = "observed"
DERIVED = "derived"
ASSUMED = "assumed"


def metric(value: Any, basis: str = OBSERVED) -> dict[str, Any]:
    return {"value": value, "basis": basis}


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    cur = con.execute(load_query(query).sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _int(v: Any) -> int:
    return int(v) if v is not None else 0


def trace_section(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    info = con.execute(
        "SELECT source_path, format, kernel_release, clock, cpus, event_count, "
        "lost_event_count, lost_gaps, partial, warnings, recorder_options, manifest_path FROM trace_info"
    ).fetchone()
    if info is None:
        raise ValueError(
            "the database has no trace_info row: was it written by tracereplay ingest?"
        )
    counts = {r["name"]: _int(r["events"]) for r in _rows(con, "event_counts")}
    return {
        "path": info[0],
        "format": info[1],
        "kernel": info[2],
        "clock": info[3],
        "cpus": info[4],
        "events": _int(info[5]),
        "lost_events": _int(info[6]),
        "lost_event_gaps": _int(info[7]),
        "partial": bool(info[8]),
        "warnings": list(info[9] or []),
        "recorder_options": json.loads(info[10]) if info[10] else {},
        "manifest": info[11],
        "event_counts": counts,
    }


def process_section(
    con: duckdb.DuckDBPyConnection, limit: int | None = None
) -> list[dict[str, Any]]:
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
        entry: dict[str, Any] = {
            "tgid": tgid,
            "comm": row["comm"],
            "observed": {
                "events": metric(_int(row["events"])),
                "kvm_invalidations": metric(_int(row["kvm_invalidations"])),
                "kvm_invalidated_bytes": metric(_int(row["kvm_invalidated_bytes"])),
                "tlb_flushes": metric(_int(row["tlb_flushes"])),
                "ipis": metric(_int(row["ipis"])),
                "ipi_targets": metric(_int(row["ipi_targets"])),
                "user_page_faults": metric(_int(row["user_page_faults"])),
                "vma_skips": metric(_int(row["vma_skips"])),
                "pages_migrated": metric(_int(row["migrations_succeeded"])),
                "task_numa_placements": metric(_int(row["task_numa_placements"])),
            },
            "tlb_flushes_by_reason": by_reason.get(tgid, {}),
            "ipi_targets_by_callback": by_callback.get(tgid, {}),
            "ipis_by_callback": ipi_events.get(tgid, {}),
            "user_page_faults_by_region": faults.get(tgid, {}),
            "kvm_invalidations_by_cause": {
                r["cause"]: {
                    "invalidations": _int(r["invalidations"]),
                    "bytes": _int(r["bytes"]),
                    "guest_ram_bytes": _int(r["guest_ram_bytes"]),
                    "evidence": r["cause_evidence"],
                }
                for r in inv
            },
        }
        out.append(entry)
    return out


def _group(rows: list[dict[str, Any]], key: str, value: str) -> dict[Any, dict[str, int]]:
    out: dict[Any, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["tgid"], {})[str(r[key])] = _int(r[value])
    return out


def vm_section(
    con: duckdb.DuckDBPyConnection, processes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per VM the manifest names; ``policies`` is filled by the replay."""
    by_tgid = {p["tgid"]: p for p in processes}
    vms = con.execute("SELECT tgid, name, kind FROM vms WHERE kind = 'vm' ORDER BY tgid").fetchall()
    out = []
    for tgid, name, _kind in vms:
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
            {
                "tgid": tgid,
                "name": name,
                "guest_ram_bytes": _int(guest[0] if guest else 0),
                "pinned_bytes": _int(pinned[0] if pinned else 0),
                "observed": proc["observed"] if proc else {},
                "policies": {},
            }
        )
    return out


def assumptions_for(con: duckdb.DuckDBPyConnection, trace: dict[str, Any]) -> list[str]:
    """Every assumption the counts above rest on, in prose."""
    out = []
    missing_tgid = con.execute("SELECT count(*) FROM events WHERE tgid IS NULL").fetchone()
    if missing_tgid and missing_tgid[0]:
        out.append(
            f"{missing_tgid[0]} events have no known tgid (idle tasks, tasks the trace never saw "
            "created, or a trace recorded without record-tgid): they are grouped by thread id"
        )
    if not trace["manifest"]:
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
    if trace["clock"] == "counter":
        out.append("timestamps are raw counter units, not nanoseconds")
    return out


def build_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The whole ``analyze --format json`` object."""
    trace = trace_section(con)
    processes = process_section(con)
    return {
        "trace": trace,
        "vms": vm_section(con, processes),
        "processes": processes,
        "assumptions": assumptions_for(con, trace),
    }


__all__ = ["ASSUMED", "DERIVED", "OBSERVED", "build_summary", "metric"]
