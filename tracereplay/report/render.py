"""Presentation of the ``analyze`` summary: terminal table, JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tracereplay.contract import METRICS

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


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, default=str) + "\n"


def to_csv(summary: dict[str, Any]) -> str:
    """Flat rows: scope, tgid, name, metric, key, value, basis."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["scope", "tgid", "name", "metric", "key", "value", "basis"])
    trace = summary["trace"]
    for warning in summary.get("warnings", []):
        # a diagnosis computed from the trace and the model: basis derived
        w.writerow(["warning", "", "", warning["code"], "", warning["message"], "derived"])
    for key in ("events", "lost_events", "lost_event_gaps"):
        w.writerow(["trace", "", trace["path"], key, "", trace[key], "observed"])
    for name, n in trace["event_counts"].items():
        w.writerow(["trace", "", trace["path"], "event_count", name, n, "observed"])
    for scope in ("vms", "processes"):
        for p in summary[scope]:
            label = p.get("comm") or p.get("name") or ""
            for m, v in p.get("observed", {}).items():
                w.writerow([scope[:-1], p["tgid"], label, m, "", v["value"], v["basis"]])
            for group in (
                "tlb_flushes_by_reason",
                "ipi_targets_by_callback",
                "user_page_faults_by_region",
            ):
                for key, n in p.get(group, {}).items():
                    w.writerow([scope[:-1], p["tgid"], label, group, key, n, "observed"])
            for cause, d in p.get("kvm_invalidations_by_cause", {}).items():
                for m in ("invalidations", "bytes", "guest_ram_bytes"):
                    w.writerow(
                        [scope[:-1], p["tgid"], label, f"kvm_{m}_by_cause", cause, d[m], "observed"]
                    )
            for policy, metrics in p.get("policies", {}).items():
                for m, v in metrics.items():
                    w.writerow(
                        [f"policy:{policy}", p["tgid"], label, m, "", v["value"], v["basis"]]
                    )
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


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f}"


def to_table(summary: dict[str, Any], *, max_processes: int = 10, max_events: int = 25) -> str:
    t = summary["trace"]
    lines = []
    kernel = f", kernel {t['kernel']}" if t.get("kernel") else ""
    cpus = f", {t['cpus']} CPUs" if t.get("cpus") else ""
    lines.append(f"Trace     {t['path']}  ({t['format']}{kernel}{cpus})")
    state = "PARTIAL: see warnings" if t["partial"] else "complete"
    lines.append(
        f"Events    {_n(t['events'])} decoded, {_n(t['lost_events'])} reported lost "
        f"in {t['lost_event_gaps']} gap(s)  [{state}]"
    )
    if t.get("manifest"):
        lines.append(f"Manifest  {t['manifest']}")
    lines.append("")
    if summary.get("warnings"):
        lines.append("WARNINGS")
        lines += [f"  ! [{w['code']}] {w['message']}" for w in summary["warnings"]]
        lines.append("")
    for vm in summary["vms"]:
        lines += _vm_table(vm, summary.get("policies", []))
        lines.append("")
    for proc in summary["processes"]:
        if proc.get("policies"):
            lines += _vm_table(proc, summary.get("policies", []))
            lines.append("")
    if summary.get("vmstat_check"):
        lines.append(
            "vmstat cross-check (baseline derived from the trace vs the kernel's own counters, whole host)"
        )
        lines += _table(
            ["metric", "derived", "vmstat delta", "agreement"],
            [
                [
                    r["metric"],
                    r["derived"],
                    r["kernel"],
                    "-" if r["agreement"] is None else f"{r['agreement']:.1%}",
                ]
                for r in summary["vmstat_check"]
            ],
        )
        lines.append("")
    counts = list(t["event_counts"].items())
    lines.append(f"Event counts (observed; {len(counts)} event types)")
    lines += _table(["event", "count"], [[k, v] for k, v in counts[:max_events]])
    if len(counts) > max_events:
        lines.append(f"  ... {len(counts) - max_events} more (tracereplay query DB event_counts)")
    lines.append("")

    procs = summary["processes"]
    shown = procs[:max_processes]
    lines.append(
        f"Processes (observed; {len(shown)} of {len(procs)}, most NUMA-relevant activity first; "
        "inval_MiB = host address space KVM invalidated)"
    )
    rows = []
    for p in shown:
        o = p["observed"]
        row: list[Any] = [f"{p['tgid']} {p['comm'] or ''}".strip()]
        for metric_name, _h in _PROCESS_COLUMNS:
            v = o[metric_name]["value"]
            row.append(_mib(v) if metric_name == "kvm_invalidated_bytes" else v)
        rows.append(row)
    lines += _table(["tgid comm"] + [h for _m, h in _PROCESS_COLUMNS], rows)
    lines.append("")
    for p in shown:
        detail = _process_detail(p)
        if detail:
            lines.append(f"Process {p['tgid']} ({p['comm']}), observed")
            lines += detail
            lines.append("")

    if summary["assumptions"]:
        lines.append("Assumptions")
        lines += [f"  - {a}" for a in summary["assumptions"]]
        lines.append("")
    if t["warnings"]:
        lines.append("Warnings")
        lines += [f"  - {w}" for w in t["warnings"]]
        lines.append("")
    return "\n".join(lines)


_LETTER = {"observed": "o", "derived": "d", "assumed": "a"}
_VM_METRICS = [*METRICS, "est_cpu_us"]


def _cell(metrics: dict[str, Any], name: str, base: dict[str, Any] | None) -> str:
    m = metrics.get(name)
    if m is None:
        return "-"
    value = m["value"]
    text = f"{value:,.0f}" if isinstance(value, int | float) else str(value)
    if base is not None and name in base:
        b = base[name]["value"]
        if b and value / b >= 10:
            text += f" (x{value / b:,.0f})"
        elif b:
            text += f" ({(value - b) / b:+.0%})"
        elif value:
            text += " (new)"
    return f"{text} {_LETTER.get(m['basis'], '?')}"


_KVM_ROWS = {
    "numa_invalidations",
    "kvm_unmap_calls",
    "kvm_pages_zapped",
    "kvm_remote_flushes",
    "spte_refaults",
}


def _vm_table(vm: dict[str, Any], order: list[str]) -> list[str]:
    process = vm.get("kind") == "process"
    if process:
        head = (
            f"Process {vm['tgid']} ({vm['name']}): regions {_mib(vm['region_bytes'])} MiB, "
            f"pinned {_mib(vm['pinned_bytes'])} MiB ({vm.get('source', 'manifest')}; no KVM: "
            "KVM metrics are 0)"
        )
    else:
        head = (
            f"VM {vm['tgid']} ({vm['name']}): guest RAM {_mib(vm['guest_ram_bytes'])} MiB, "
            f"pinned {_mib(vm['pinned_bytes'])} MiB ({vm.get('source', 'manifest')})"
        )
    policies = vm.get("policies") or {}
    if not policies:
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
    mm = vm.get("mmtests_autonuma_cost", {})
    rows.append(["mmtests AutoNUMA cost"] + [f"{mm.get(p, 0):.4f}" for p in names])
    out = [head, "  o observed, d derived, a assumed; (+x%) or (xN) change against baseline"]
    out += _table(["metric", *names], rows)
    lost = vm.get("numa_benefit_lost", {})
    losses = [
        f"{p}: {d['pages_migrated']:,} pages not migrated, {d['task_numa_placements']:,} task placements"
        for p, d in lost.items()
        if d["pages_migrated"] or d["task_numa_placements"]
    ]
    out += [f"  {line}" for line in vm.get("explanations", [])]
    out.append(
        "  NUMA-balancing benefit lost: "
        + ("; ".join(losses) if losses else "none (nothing migrated or placed in the baseline)")
    )
    return out


def _process_detail(p: dict[str, Any]) -> list[str]:
    out = []

    def join(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {_n(v)}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))

    if p["tlb_flushes_by_reason"]:
        out.append(f"  TLB flushes by reason:        {join(p['tlb_flushes_by_reason'])}")
    if p["ipi_targets_by_callback"]:
        out.append(f"  IPI targets by callback:      {join(p['ipi_targets_by_callback'])}")
    if p["user_page_faults_by_region"]:
        out.append(f"  user page faults by region:   {join(p['user_page_faults_by_region'])}")
    for cause, d in p["kvm_invalidations_by_cause"].items():
        out.append(
            f"  KVM invalidations ({cause}, evidence {d['evidence']}): {_n(d['invalidations'])}, "
            f"{_mib(d['bytes'])} MiB of address space, {_mib(d['guest_ram_bytes'])} MiB of guest RAM"
        )
    return out


__all__ = ["to_csv", "to_json", "to_table"]
