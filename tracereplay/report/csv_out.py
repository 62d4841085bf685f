"""``analyze --format csv``: every figure of the JSON object as one flat row.

Columns ``scope,tgid,name,metric,key,value,basis``; the README lists every kind
of row. Every row has a basis, facts too: the trace's metadata is observed, a
VM's source and sizes are observed from a manifest and assumed when inferred.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from tracereplay.pipeline.analysis import Analysis, ProcessAnalysis, TraceInfo, VmAnalysis

Row = list[Any]


def _value(v: Any) -> Any:
    """Booleans as JSON writes them (``true``), not as Python does (``True``)."""
    return str(v).lower() if isinstance(v, bool) else v


def _trace_rows(t: TraceInfo) -> list[Row]:
    rows: list[Row] = [
        ["trace", "", t.path, key, "", n, "observed"]
        for key, n in (
            ("events", t.events),
            ("lost_events", t.lost_events),
            ("lost_event_gaps", t.lost_event_gaps),
        )
    ]
    rows += [
        ["trace", "", t.path, "event_count", name, n, "observed"]
        for name, n in t.event_counts.items()
    ]
    meta = {
        "format": t.format,
        "kernel": t.kernel,
        "clock": t.clock,
        "cpus": t.cpus,
        "partial": t.partial,
        "manifest": t.manifest,
    }
    rows += [
        ["trace", "", t.path, k, "", _value(v), "observed"] for k, v in meta.items() if v is not None
    ]
    rows += [
        ["trace", "", t.path, "recorder_option", k, _value(v), "observed"]
        for k, v in t.recorder_options.items()
    ]
    rows += [["trace", "", t.path, "reader_warning", "", w, "observed"] for w in t.warnings]
    return rows


def _entry_rows(scope: str, p: VmAnalysis | ProcessAnalysis) -> list[Row]:
    label = p.label if isinstance(p, ProcessAnalysis) else p.name or ""

    def row(metric: str, key: Any, value: Any, basis: str, where: str = scope) -> Row:
        return [where, p.tgid, label, metric, key, value, basis]

    rows = [row(m, "", v.shown, v.basis) for m, v in p.observed.items()]
    detail = p.detail if isinstance(p, ProcessAnalysis) else None
    if detail is not None:
        for group, counts in (
            ("tlb_flushes_by_reason", detail.tlb_flushes_by_reason),
            ("ipi_targets_by_callback", detail.ipi_targets_by_callback),
            ("user_page_faults_by_region", detail.user_page_faults_by_region),
        ):
            rows += [row(group, key, n, "observed") for key, n in counts.items()]
        for cause, d in detail.kvm_invalidations_by_cause.items():
            for m, n in (
                ("invalidations", d.invalidations),
                ("bytes", d.bytes),
                ("guest_ram_bytes", d.guest_ram_bytes),
            ):
                rows.append(row(f"kvm_{m}_by_cause", cause, n, "observed"))
    for policy, metrics in p.policies.items():
        rows += [row(m, "", v.shown, v.basis, f"policy:{policy}") for m, v in metrics.items()]
    # the rows below came with issue 15; the ones above keep their order
    if detail is not None:
        rows += [
            row("ipis_by_callback", k, n, "observed") for k, n in detail.ipis_by_callback.items()
        ]
    if p.replay is None:
        return rows
    r = p.replay
    sizes_basis = "assumed" if r.source == "inferred" else "observed"
    rows.append(row("source", "", r.source, sizes_basis))
    if isinstance(p, VmAnalysis):
        rows.append(row("guest_ram_bytes", "", p.guest_ram_bytes, sizes_basis))
        rows += [
            row("numa_scan_invalidations_by_evidence", k, n, "observed")
            for k, n in p.invalidations_by_evidence.items()
        ]
        rows += [row("explanation", "", e, "derived") for e in p.explanations]
    else:
        rows.append(row("region_bytes", "", p.region_bytes, sizes_basis))
    rows.append(row("pinned_bytes", "", p.pinned_bytes, sizes_basis))
    for policy in p.policies:
        where = f"policy:{policy}"
        if policy in r.mmtests_autonuma_cost:
            basis = r.mmtests_autonuma_cost_basis.get(policy, "derived")
            cost = round(r.mmtests_autonuma_cost[policy], 6)
            rows.append(row("mmtests_autonuma_cost", "", cost, basis, where))
        for key, n in r.numa_benefit_lost.get(policy, {}).items():
            rows.append(row("numa_benefit_lost", key, n, "derived", where))
        if policy in r.unchanged:
            rows.append(row("unchanged", "", r.unchanged[policy], "derived", where))
    return rows


def to_csv(analysis: Analysis) -> str:
    """Flat rows: scope, tgid, name, metric, key, value, basis."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["scope", "tgid", "name", "metric", "key", "value", "basis"])
    for warning in analysis.warnings:
        # a diagnosis computed from the trace and the model: basis derived
        w.writerow(["warning", "", "", warning.code, "", warning.message, "derived"])
    w.writerows(_trace_rows(analysis.trace))
    for scope, entries in (("vm", analysis.vms), ("process", analysis.processes)):
        for entry in entries:
            w.writerows(_entry_rows(scope, entry))
    for r in analysis.vmstat_check or []:
        agreement = "" if r.agreement is None else round(r.agreement, 6)
        w.writerow(["vmstat_check", "", r.vmstat, r.metric, "derived", r.derived, "derived"])
        w.writerow(["vmstat_check", "", r.vmstat, r.metric, "vmstat_delta", r.kernel, "observed"])
        w.writerow(["vmstat_check", "", r.vmstat, r.metric, "agreement", agreement, "derived"])
    cost = analysis.cost
    w.writerows(
        ["cost_model", "", cost.source, "cost_us", key, us, "assumed"]
        for key, us in cost.costs_us.items()
    )
    w.writerows(["assumption", "", "", "assumption", "", a, "assumed"] for a in analysis.assumptions)
    return out.getvalue()


__all__ = ["to_csv"]
