"""The content of the human-readable reports, independent of their layout.

:mod:`tracereplay.report.table` lays these out for a terminal and
:mod:`tracereplay.report.markdown` as pipe tables: both show the same figures,
written by :mod:`tracereplay.report.cells`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracereplay.contract import METRICS
from tracereplay.metric_info import metric_info, weakest_basis
from tracereplay.pipeline.analysis import (
    Analysis,
    Metric,
    ProcessAnalysis,
    VmAnalysis,
    VmstatRow,
)
from tracereplay.policies.base import REGISTRY
from tracereplay.report.cells import (
    BASIS_LETTER,
    callback_label,
    change,
    cost,
    count,
    human_bytes,
    mib,
)
from tracereplay.report.grid import Grid

# Column headers of the per-process table, in order: (metric, header).
PROCESS_COLUMNS = [
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
PROCESS_TITLE = (
    "most NUMA-relevant activity first; inval_MiB = host address space KVM invalidated"
)


def process_grid(procs: list[ProcessAnalysis]) -> Grid:
    rows = []
    for p in procs:
        row = [str(p.tgid), p.comm or ""]
        for metric_name, _h in PROCESS_COLUMNS:
            m = p.observed.get(metric_name)
            if m is None:  # a replayed process without events of its own
                row.append("-")
            elif metric_name == "kvm_invalidated_bytes":
                row.append(mib(m.shown))
            else:
                row.append(count(m.shown))
        rows.append(row)
    return Grid(["tgid", "comm"] + [h for _m, h in PROCESS_COLUMNS], rows, frozenset({1}))


def process_details(p: ProcessAnalysis) -> list[tuple[str, str]]:
    """A process's observed breakdowns: (label, text) pairs."""
    d = p.detail
    if d is None:
        return []

    def join(counts: dict[str, int], label: Any = str) -> str:
        ordered = sorted(counts.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{label(k)} {count(v)}" for k, v in ordered)

    out = []
    if d.tlb_flushes_by_reason:
        out.append(("TLB flushes by reason", join(d.tlb_flushes_by_reason)))
    if d.ipi_targets_by_callback:
        out.append(("IPI targets by callback", join(d.ipi_targets_by_callback, callback_label)))
    if d.user_page_faults_by_region:
        out.append(("user page faults by region", join(d.user_page_faults_by_region)))
    for cause, c in d.kvm_invalidations_by_cause.items():
        out.append(
            (
                f"KVM invalidations ({cause}, evidence {c.evidence})",
                f"{count(c.invalidations)}, {human_bytes(c.bytes)} of address space, "
                f"{human_bytes(c.guest_ram_bytes)} of guest RAM",
            )
        )
    return out


def vmstat_grid(rows: list[VmstatRow]) -> Grid:
    return Grid(
        ["metric", "derived", "vmstat delta", "agreement"],
        [
            [
                r.metric,
                count(r.derived),
                count(r.kernel),
                "-" if r.agreement is None else f"{r.agreement:.1%}",
            ]
            for r in rows
        ],
    )


VMSTAT_TITLE = (
    "vmstat cross-check (baseline derived from the trace vs the kernel's own counters, whole host)"
)


def event_grid(counts: list[tuple[str, int]]) -> Grid:
    return Grid(["event", "count"], [[k, count(v)] for k, v in counts])


# --- the per-VM (and per replayed process) comparison -------------------------------------

_VM_METRICS = [*METRICS, "est_cpu_us"]
_KVM_ROWS = {
    "numa_invalidations",
    "kvm_unmap_calls",
    "kvm_pages_zapped",
    "kvm_remote_flushes",
    "spte_refaults",
}
MMTESTS = "mmtests_autonuma_cost"


@dataclass
class Comparison:
    """One VM's or replayed process's figures: policies as columns, then the notes."""

    title: str
    grid: Grid | None  # None: nothing to replay
    notes: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)  # the columns, in order


def _metric_cell(m: Metric | None, base: Metric | None) -> str:
    if m is None:
        return "-"
    value = m.shown
    text = f"{value:,.0f}" + change(value, None if base is None else base.shown)
    return f"{text} {BASIS_LETTER.get(m.basis, '?')}"


def _mmtests_basis(entry: VmAnalysis | ProcessAnalysis, policy: str) -> str:
    assert entry.replay is not None
    known = entry.replay.mmtests_autonuma_cost_basis.get(policy)
    if known:
        return known
    ms = entry.policies.get(policy, {})
    inputs = ("numa_pte_updates", "numa_hint_faults", "pages_migrated")
    return weakest_basis(*(ms[m].basis for m in inputs if m in ms))


def _title(entry: VmAnalysis | ProcessAnalysis) -> str:
    source = entry.replay.source if entry.replay else "manifest"
    if isinstance(entry, ProcessAnalysis):
        return (
            f"Process {entry.tgid} ({entry.name}): regions {human_bytes(entry.region_bytes)}, "
            f"pinned {human_bytes(entry.pinned_bytes)} ({source}; no KVM: KVM metrics are 0)"
        )
    return (
        f"VM {entry.tgid} ({entry.name}): guest RAM {human_bytes(entry.guest_ram_bytes)}, "
        f"pinned {human_bytes(entry.pinned_bytes)} ({source})"
    )


def comparison(entry: VmAnalysis | ProcessAnalysis, order: list[str]) -> Comparison:
    title = _title(entry)
    policies = entry.policies
    if not policies or entry.replay is None:
        return Comparison(title, None, ["no NUMA-scan invalidations to replay"])
    names = [p for p in order if p in policies] or list(policies)
    base = policies.get("baseline")
    rows = []
    for metric in _VM_METRICS:
        if isinstance(entry, ProcessAnalysis) and metric in _KVM_ROWS:
            continue
        rows.append(
            [metric]
            + [
                _metric_cell(
                    policies[p].get(metric),
                    None if p == "baseline" or base is None else base.get(metric),
                )
                for p in names
            ]
        )
    mm = entry.replay.mmtests_autonuma_cost
    base_cost = mm.get("baseline")
    rows.append(
        [MMTESTS]
        + [
            cost(mm.get(p, 0.0))
            + change(mm.get(p, 0.0), None if p == "baseline" else base_cost)
            + f" {BASIS_LETTER.get(_mmtests_basis(entry, p), '?')}"
            for p in names
        ]
    )
    info = metric_info(MMTESTS)
    formula = info.meaning.partition(": ")[2] or info.meaning
    notes = [f"{MMTESTS} = {formula}, in {info.unit}"]
    notes += [
        f"{p} changed nothing here: {entry.replay.unchanged[p]}"
        for p in names
        if p in entry.replay.unchanged
    ]
    if isinstance(entry, VmAnalysis):
        notes += entry.explanations
    notes.append(_benefit_lost(entry))
    return Comparison(title, Grid(["metric", *names], rows), notes, names)


def _benefit_lost(entry: VmAnalysis | ProcessAnalysis) -> str:
    assert entry.replay is not None
    losses = [
        f"{p}: {count(d['pages_migrated'])} pages not migrated, "
        f"{count(d['task_numa_placements'])} task placements"
        for p, d in entry.replay.numa_benefit_lost.items()
        if d["pages_migrated"] or d["task_numa_placements"]
    ]
    return "NUMA-balancing benefit lost: " + (
        "; ".join(losses) if losses else "none (nothing migrated or placed in the baseline)"
    )


def comparisons(analysis: Analysis) -> list[Comparison]:
    """Every VM, then every replayed process."""
    out = [comparison(vm, analysis.policies) for vm in analysis.vms]
    out += [comparison(p, analysis.policies) for p in analysis.processes if p.policies]
    return out


def legend(policies: list[str]) -> list[str]:
    """One line per policy: what it models (``tracereplay policies`` says more)."""
    out = []
    for name in policies:
        cls = REGISTRY.get(name)
        text = (cls.legend or cls.summary()) if cls is not None else ""
        if not text.startswith(f"{name}:"):
            text = f"{name}: {text or 'a plugin policy without a legend'}"
        out.append(text)
    return out


def shown_policies(comps: list[Comparison]) -> list[str]:
    """The policies of every comparison table, in their column order."""
    seen: dict[str, None] = {}
    for c in comps:
        seen.update(dict.fromkeys(c.policies))
    return list(seen)


__all__ = [
    "MMTESTS",
    "PROCESS_COLUMNS",
    "PROCESS_TITLE",
    "VMSTAT_TITLE",
    "Comparison",
    "comparison",
    "comparisons",
    "event_grid",
    "legend",
    "process_details",
    "process_grid",
    "shown_policies",
    "vmstat_grid",
]
