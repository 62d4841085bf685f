"""The typed result of the analysis pipeline: :class:`Analysis`.

Every count is a :class:`Metric`: a value, its basis and its unit. The basis
says how much to trust it: ``observed`` (counted from events), ``derived``
(computed from observed events and the model) or ``assumed`` (depends on a
fact the trace lacks). ``Analysis.as_json()`` is the ``analyze --format json``
object; the renderers of :mod:`tracereplay.report.render` read the dataclasses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tracereplay.contract import BASES, WARNING_CODES
from tracereplay.replay.cost import CostModel

OBSERVED = "observed"
DERIVED = "derived"
ASSUMED = "assumed"

# unit of each metric that is not a plain count; ``<metric>_avoided`` has its metric's unit
UNITS = {
    "kvm_invalidated_bytes": "bytes",
    "kvm_pages_zapped": "pages",  # 4 KiB guest pages
    "numa_pte_updates": "pages",  # 4 KiB, a THP PMD counts 512
    "numa_huge_pte_updates": "PMDs",
    "pages_migrated": "pages",
    "est_cpu_us": "us",
}


def unit_of(metric: str) -> str:
    """The unit of ``metric``: ``count`` unless :data:`UNITS` says otherwise."""
    return UNITS.get(metric.removesuffix("_avoided"), "count")


def _json_number(value: float) -> int | float:
    """Integers as ``int``, the rest rounded to 3 decimals (as every JSON figure is)."""
    return int(value) if float(value).is_integer() else round(float(value), 3)


@dataclass(frozen=True)
class Metric:
    value: int | float
    basis: str  # one of contract.BASES
    unit: str = "count"

    def __post_init__(self) -> None:
        if self.basis not in BASES:
            raise ValueError(f"basis {self.basis!r} is not one of {BASES}")

    @classmethod
    def of(cls, name: str, value: int | float, basis: str = OBSERVED) -> Metric:
        """The metric ``name`` with its unit from :func:`unit_of`."""
        return cls(value, basis, unit_of(name))

    @property
    def shown(self) -> int | float:
        """The value as reported (JSON, CSV, tables)."""
        return _json_number(self.value)

    def as_json(self) -> dict[str, Any]:
        return {"value": self.shown, "basis": self.basis}


def _metrics_json(metrics: dict[str, Metric]) -> dict[str, Any]:
    return {name: m.as_json() for name, m in metrics.items()}


@dataclass
class TraceInfo:
    """The trace as ingested: source, format, kernel, event and loss counts."""

    path: str
    format: str
    kernel: str | None
    clock: str | None
    cpus: int | None
    events: int
    lost_events: int
    lost_event_gaps: int
    partial: bool  # part of the input could not be decoded (see ``warnings``)
    warnings: list[str]  # the readers' warnings
    recorder_options: dict[str, Any]
    manifest: str | None
    event_counts: dict[str, int]  # per event name, the busiest first
    # first to last event, ns (0 for one event); None without events. The rates of
    # ``tracereplay compare`` divide by it
    duration_ns: int | None = None

    @property
    def duration_s(self) -> float | None:
        return self.duration_ns / 1e9 if self.duration_ns is not None else None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InvalidationCause:
    """A process's KVM invalidations of one cause (numa_scan, other, unknown, ...)."""

    invalidations: int
    bytes: int  # host address space invalidated
    guest_ram_bytes: int  # the part of it that is guest RAM
    evidence: str | None  # stack | inferred

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProcessDetail:
    """A process's observed counts broken down by reason, callback, region and cause."""

    tlb_flushes_by_reason: dict[str, int]
    ipi_targets_by_callback: dict[str, int]
    ipis_by_callback: dict[str, int]
    user_page_faults_by_region: dict[str, int]
    kvm_invalidations_by_cause: dict[str, InvalidationCause]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Replayed:
    """One VM's or process's replay: every policy's metrics and what it gives up."""

    source: str  # manifest | inferred
    policies: dict[str, dict[str, Metric]]  # policy -> metric -> value
    # policy -> pages_migrated / task_numa_placements the baseline had and the policy has not
    numa_benefit_lost: dict[str, dict[str, int]]
    mmtests_autonuma_cost: dict[str, float]  # policy -> mmtests' own AutoNUMA cost
    # policy -> basis of its mmtests cost: the weakest of the three metrics it sums
    mmtests_autonuma_cost_basis: dict[str, str] = field(default_factory=dict)
    # policy -> why its counts equal the baseline's here; only policies that changed nothing
    unchanged: dict[str, str] = field(default_factory=dict)

    def tail_json(self) -> dict[str, Any]:
        return {
            "numa_benefit_lost": self.numa_benefit_lost,
            "mmtests_autonuma_cost": {p: round(c, 6) for p, c in self.mmtests_autonuma_cost.items()},
        }

    def basis_json(self) -> dict[str, Any]:
        """Keys added after the first JSON shape (issue 15), so they come last."""
        return {
            "mmtests_autonuma_cost_basis": self.mmtests_autonuma_cost_basis,
            "unchanged": self.unchanged,
        }


@dataclass
class VmAnalysis:
    """One VM: its guest RAM, observed counts and, when it had NUMA scans, its replay."""

    tgid: int
    name: str
    guest_ram_bytes: int
    pinned_bytes: int
    observed: dict[str, Metric]
    replay: Replayed | None = None
    # NUMA-scan invalidations by the evidence of their cause (stack | inferred)
    invalidations_by_evidence: dict[str, int] = field(default_factory=dict)
    explanations: list[str] = field(default_factory=list)  # why the figures move as they do

    @property
    def policies(self) -> dict[str, dict[str, Metric]]:
        return self.replay.policies if self.replay else {}

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tgid": self.tgid,
            "name": self.name,
            "guest_ram_bytes": self.guest_ram_bytes,
            "pinned_bytes": self.pinned_bytes,
            "observed": _metrics_json(self.observed),
            "policies": {p: _metrics_json(ms) for p, ms in self.policies.items()},
        }
        if self.replay is not None:
            out["source"] = self.replay.source
            out["numa_scan_invalidations_by_evidence"] = self.invalidations_by_evidence
            out.update(self.replay.tail_json())
            out["explanations"] = self.explanations
            out.update(self.replay.basis_json())
        return out


@dataclass
class ProcessAnalysis:
    """One process: observed counts; the pinned processes of the manifest also a replay.

    ``detail`` is None for a replayed process without NUMA-relevant events of its own.
    """

    tgid: int
    comm: str | None
    observed: dict[str, Metric]
    detail: ProcessDetail | None = None
    replay: Replayed | None = None
    # replayed processes only: the manifest name, the regions and their pinned part
    name: str | None = None
    region_bytes: int = 0
    pinned_bytes: int = 0

    @property
    def policies(self) -> dict[str, dict[str, Metric]]:
        return self.replay.policies if self.replay else {}

    @property
    def label(self) -> str:
        return self.comm or self.name or ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tgid": self.tgid,
            "comm": self.comm,
            "observed": _metrics_json(self.observed),
        }
        if self.detail is not None:
            out.update(self.detail.as_json())
        if self.replay is not None:
            out.update(
                name=self.name,
                kind="process",
                source=self.replay.source,
                region_bytes=self.region_bytes,
                pinned_bytes=self.pinned_bytes,
                policies={p: _metrics_json(ms) for p, ms in self.policies.items()},
            )
            out.update(self.replay.tail_json())
            out.update(self.replay.basis_json())
        return out


@dataclass(frozen=True)
class VmstatRow:
    """The trace-derived baseline of one metric against the kernel's vmstat delta (whole host)."""

    metric: str
    vmstat: str  # the /proc/vmstat counter
    derived: int
    kernel: int
    agreement: float | None  # derived / kernel; None when the kernel counted 0 and we did not

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AnalysisWarning:
    """A diagnosis the user must not miss; ``code`` is one of contract.WARNING_CODES."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if self.code not in WARNING_CODES:
            raise ValueError(f"warning code {self.code!r} is not one of {WARNING_CODES}")

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Analysis:
    """What ``analyze`` found: the trace, per VM and per process, and how far to trust it."""

    trace: TraceInfo
    vms: list[VmAnalysis]
    processes: list[ProcessAnalysis]  # the busiest first; replayed ones lead
    assumptions: list[str]  # every assumption the figures rest on, in prose
    policies: list[str]  # replayed, in report order (baseline first)
    cost: CostModel
    # None: no vmstat deltas in the manifest, or nothing replayed
    vmstat_check: list[VmstatRow] | None
    warnings: list[AnalysisWarning]

    @property
    def partial(self) -> bool:
        """Part of the trace could not be decoded: the figures are lower bounds."""
        return self.trace.partial

    def as_json(self) -> dict[str, Any]:
        """The ``analyze --format json`` object."""
        out: dict[str, Any] = {
            "trace": self.trace.as_json(),
            "vms": [v.as_json() for v in self.vms],
            "processes": [p.as_json() for p in self.processes],
            "assumptions": self.assumptions,
            "policies": self.policies,
            "cost_model": {"source": self.cost.source, "costs_us": self.cost.costs_us},
        }
        if self.vmstat_check is not None:
            out["vmstat_check"] = [r.as_json() for r in self.vmstat_check]
        out["warnings"] = [w.as_json() for w in self.warnings]
        return out


__all__ = [
    "ASSUMED",
    "DERIVED",
    "OBSERVED",
    "UNITS",
    "Analysis",
    "AnalysisWarning",
    "InvalidationCause",
    "Metric",
    "ProcessAnalysis",
    "ProcessDetail",
    "Replayed",
    "TraceInfo",
    "VmAnalysis",
    "VmstatRow",
    "unit_of",
]
