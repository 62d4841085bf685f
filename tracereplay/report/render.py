"""Presentation of an :class:`~tracereplay.pipeline.Analysis`: terminal table, JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tracereplay.contract import METRICS
from tracereplay.pipeline.analysis import Analysis, Metric, ProcessAnalysis, VmAnalysis

# Column headers of the per-process table, in order: (metric, header).
_PROCESS_COLUMNS = [
    ("events", "events"),
    ("kvm_invalidations", "kvm_inval"),
    ("kvm_invalidated_bytes", "inval_MiB"),
    ("tlb_flushes", "tlb_flush"),
    ("ipi_targets", "ipi_tgts"),
    ("user_page_faults", "user_flt"),
    ("vma_skips", "vma_skip"),
    ("pages_migrated", "migrated"),
    ("task_numa_placements", "placed"),
]


def to_json(analysis: Analysis) -> str:
    return json.dumps(analysis.as_json(), indent=2, default=str) + "\n"


def to_csv(analysis: Analysis) -> str:
    """Flat rows: scope, tgid, name, metric, key, value, basis."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["scope", "tgid", "name", "metric", "key", "value", "basis"])
    trace = analysis.trace
    for warning in analysis.warnings:
        # a diagnosis computed from the trace and the model: basis derived
        w.writerow(["warning", "", "", warning.code, "", warning.message, "derived"])
    for key, n in (
        ("events", trace.events),
        ("lost_events", trace.lost_events),
        ("lost_event_gaps", trace.lost_event_gaps),
    ):
        w.writerow(["trace", "", trace.path, key, "", n, "observed"])
    for name, n in trace.event_counts.items():
        w.writerow(["trace", "", trace.path, "event_count", name, n, "observed"])
    entries: list[tuple[str, VmAnalysis | ProcessAnalysis]] = [
        *(("vm", v) for v in analysis.vms),
        *(("process", p) for p in analysis.processes),
    ]
    for scope, p in entries:
        label = p.label if isinstance(p, ProcessAnalysis) else p.name or ""
        for m, v in p.observed.items():
            w.writerow([scope, p.tgid, label, m, "", v.shown, v.basis])
        detail = p.detail if isinstance(p, ProcessAnalysis) else None
        if detail is not None:
            for group, counts in (
                ("tlb_flushes_by_reason", detail.tlb_flushes_by_reason),
                ("ipi_targets_by_callback", detail.ipi_targets_by_callback),
                ("user_page_faults_by_region", detail.user_page_faults_by_region),
            ):
                for key, n in counts.items():
                    w.writerow([scope, p.tgid, label, group, key, n, "observed"])
            for cause, d in detail.kvm_invalidations_by_cause.items():
                for m, n in (
                    ("invalidations", d.invalidations),
                    ("bytes", d.bytes),
                    ("guest_ram_bytes", d.guest_ram_bytes),
                ):
                    w.writerow(
                        [scope, p.tgid, label, f"kvm_{m}_by_cause", cause, n, "observed"]
                    )
        for policy, metrics in p.policies.items():
            for m, v in metrics.items():
                w.writerow([f"policy:{policy}", p.tgid, label, m, "", v.shown, v.basis])
    return out.getvalue()


def _n(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> list[str]:
    cells = [[str(h) for h in headers]] + [[_n(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        parts = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        lines.append(indent + "  ".join(parts).rstrip())
        if k == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return lines


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f}"


def to_table(analysis: Analysis, *, max_processes: int = 10, max_events: int = 25) -> str:
    t = analysis.trace
    lines = []
    kernel = f", kernel {t.kernel}" if t.kernel else ""
    cpus = f", {t.cpus} CPUs" if t.cpus else ""
    lines.append(f"Trace     {t.path}  ({t.format}{kernel}{cpus})")
    state = "PARTIAL: see warnings" if t.partial else "complete"
    lines.append(
        f"Events    {_n(t.events)} decoded, {_n(t.lost_events)} reported lost "
        f"in {t.lost_event_gaps} gap(s)  [{state}]"
    )
    if t.manifest:
        lines.append(f"Manifest  {t.manifest}")
    lines.append("")
    if analysis.warnings:
        lines.append("WARNINGS")
        lines += [f"  ! [{w.code}] {w.message}" for w in analysis.warnings]
        lines.append("")
    for vm in analysis.vms:
        lines += _vm_table(vm, analysis.policies)
        lines.append("")
    for proc in analysis.processes:
        if proc.policies:
            lines += _vm_table(proc, analysis.policies)
            lines.append("")
    if analysis.vmstat_check:
        lines.append(
            "vmstat cross-check (baseline derived from the trace vs the kernel's own counters, whole host)"
        )
        lines += _table(
            ["metric", "derived", "vmstat delta", "agreement"],
            [
                [r.metric, r.derived, r.kernel, "-" if r.agreement is None else f"{r.agreement:.1%}"]
                for r in analysis.vmstat_check
            ],
        )
        lines.append("")
    counts = list(t.event_counts.items())
    lines.append(f"Event counts (observed; {len(counts)} event types)")
    lines += _table(["event", "count"], [[k, v] for k, v in counts[:max_events]])
    if len(counts) > max_events:
        lines.append(f"  ... {len(counts) - max_events} more (tracereplay query DB event_counts)")
    lines.append("")

    procs = analysis.processes
    shown = procs[:max_processes]
    lines.append(
        f"Processes (observed; {len(shown)} of {len(procs)}, most NUMA-relevant activity first; "
        "inval_MiB = host address space KVM invalidated)"
    )
    rows = []
    for p in shown:
        row: list[Any] = [f"{p.tgid} {p.comm or ''}".strip()]
        for metric_name, _h in _PROCESS_COLUMNS:
            m = p.observed.get(metric_name)
            if m is None:  # a replayed process without events of its own
                row.append("-")
            else:
                v = m.shown
                row.append(_mib(v) if metric_name == "kvm_invalidated_bytes" else v)
        rows.append(row)
    lines += _table(["tgid comm"] + [h for _m, h in _PROCESS_COLUMNS], rows)
    lines.append("")
    for p in shown:
        detail = _process_detail(p)
        if detail:
            lines.append(f"Process {p.tgid} ({p.comm}), observed")
            lines += detail
            lines.append("")

    if analysis.assumptions:
        lines.append("Assumptions")
        lines += [f"  - {a}" for a in analysis.assumptions]
        lines.append("")
    if t.warnings:
        lines.append("Warnings")
        lines += [f"  - {w}" for w in t.warnings]
        lines.append("")
    return "\n".join(lines)


_LETTER = {"observed": "o", "derived": "d", "assumed": "a"}
_VM_METRICS = [*METRICS, "est_cpu_us"]


def _cell(metrics: dict[str, Metric], name: str, base: dict[str, Metric] | None) -> str:
    m = metrics.get(name)
    if m is None:
        return "-"
    value = m.shown
    text = f"{value:,.0f}"
    if base is not None and name in base:
        b = base[name].shown
        if b and value / b >= 10:
            text += f" (x{value / b:,.0f})"
        elif b:
            text += f" ({(value - b) / b:+.0%})"
        elif value:
            text += " (new)"
    return f"{text} {_LETTER.get(m.basis, '?')}"


_KVM_ROWS = {
    "numa_invalidations",
    "kvm_unmap_calls",
    "kvm_pages_zapped",
    "kvm_remote_flushes",
    "spte_refaults",
}


def _vm_table(vm: VmAnalysis | ProcessAnalysis, order: list[str]) -> list[str]:
    process = isinstance(vm, ProcessAnalysis)
    source = vm.replay.source if vm.replay else "manifest"
    if isinstance(vm, ProcessAnalysis):
        head = (
            f"Process {vm.tgid} ({vm.name}): regions {_mib(vm.region_bytes)} MiB, "
            f"pinned {_mib(vm.pinned_bytes)} MiB ({source}; no KVM: "
            "KVM metrics are 0)"
        )
    else:
        head = (
            f"VM {vm.tgid} ({vm.name}): guest RAM {_mib(vm.guest_ram_bytes)} MiB, "
            f"pinned {_mib(vm.pinned_bytes)} MiB ({source})"
        )
    policies = vm.policies
    if not policies or vm.replay is None:
        return [head, "  no NUMA-scan invalidations to replay"]
    names = [p for p in order if p in policies] or list(policies)
    base = policies.get("baseline")
    rows = []
    for metric in _VM_METRICS:
        if process and metric in _KVM_ROWS:
            continue
        rows.append(
            [metric]
            + [_cell(policies[p], metric, None if p == "baseline" else base) for p in names]
        )
    mm = {p: round(c, 6) for p, c in vm.replay.mmtests_autonuma_cost.items()}
    rows.append(["mmtests AutoNUMA cost"] + [f"{mm.get(p, 0):.4f}" for p in names])
    out = [head, "  o observed, d derived, a assumed; (+x%) or (xN) change against baseline"]
    out += _table(["metric", *names], rows)
    lost = vm.replay.numa_benefit_lost
    losses = [
        f"{p}: {d['pages_migrated']:,} pages not migrated, {d['task_numa_placements']:,} task placements"
        for p, d in lost.items()
        if d["pages_migrated"] or d["task_numa_placements"]
    ]
    explanations = vm.explanations if isinstance(vm, VmAnalysis) else []
    out += [f"  {line}" for line in explanations]
    out.append(
        "  NUMA-balancing benefit lost: "
        + ("; ".join(losses) if losses else "none (nothing migrated or placed in the baseline)")
    )
    return out


def _process_detail(p: ProcessAnalysis) -> list[str]:
    out: list[str] = []
    d = p.detail
    if d is None:
        return out

    def join(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {_n(v)}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))

    if d.tlb_flushes_by_reason:
        out.append(f"  TLB flushes by reason:        {join(d.tlb_flushes_by_reason)}")
    if d.ipi_targets_by_callback:
        out.append(f"  IPI targets by callback:      {join(d.ipi_targets_by_callback)}")
    if d.user_page_faults_by_region:
        out.append(f"  user page faults by region:   {join(d.user_page_faults_by_region)}")
    for cause, c in d.kvm_invalidations_by_cause.items():
        out.append(
            f"  KVM invalidations ({cause}, evidence {c.evidence}): {_n(c.invalidations)}, "
            f"{_mib(c.bytes)} MiB of address space, {_mib(c.guest_ram_bytes)} MiB of guest RAM"
        )
    return out


__all__ = ["to_csv", "to_json", "to_table"]
