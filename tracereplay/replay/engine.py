"""Counterfactual replay: every policy over every VM's reconstructed activity (DESIGN §5).

One loop drives the policies; each returns an :class:`~tracereplay.policies.Outcome`
(per-chunk quantities) and this module turns it into the contract's metrics
the same way for all, with the basis of each (observed / derived / assumed),
``<metric>_avoided`` for every non-baseline policy, and ``est_cpu_us``. Results
are written to ``replay_metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from tracereplay.policies import (
    ASSUMED,
    DEFAULT_POLICIES,
    DERIVED,
    METRICS,
    OBSERVED,
    REGISTRY,
    Metric,
    Outcome,
    ReplayContext,
)
from tracereplay.reconstruct.model import Model, VmActivity
from tracereplay.replay.cost import CostModel

HUGE_NOTE = (
    "guest RAM is assumed mapped with 4 KiB pages (numa_huge_pte_updates = 0; THP would count PMDs)"
)
HINT_NOTE = (
    "vCPU hint faults go through KVM's GUP and are not traced: every guest page made PROT_NONE is "
    "assumed to be touched (one hint fault) before the next scan"
)
PRESENT_NOTE = "every guest page in a zapped range is assumed to have had a present SPTE (no SPTE events in the trace)"
FAILED_NOTE = (
    "failed NUMA migrations are assumed to be of pinned pages (pinned pages cannot migrate)"
)


@dataclass
class VmResult:
    vm: VmActivity
    policies: dict[str, dict[str, Metric]] = field(default_factory=dict)
    benefit_lost: dict[str, dict[str, int]] = field(default_factory=dict)
    mmtests_cost: dict[str, float] = field(default_factory=dict)


@dataclass
class ReplayResult:
    vms: list[VmResult]
    assumptions: list[str]
    policies: list[str]
    cost: CostModel


def _metrics(vm: VmActivity, out: Outcome, base: Outcome | None) -> dict[str, float]:
    """Metric values of one outcome; ``base`` is the baseline outcome (None: this is it)."""
    c = vm.chunks
    host = c["host_shootdown_ipis"]
    kvm_ipis = int(c["kvm_flush_ipis"].sum())
    flushes = float(out.flushes.sum())
    if base is None:
        ipis = float(host.sum() + kvm_ipis)
    else:
        base_flushes = float(base.flushes.sum())
        per_flush = kvm_ipis / base_flushes if base_flushes else 0.0
        ipis = float(host[out.host_flush].sum()) + flushes * per_flush
    zapped = float(out.zapped.sum())
    if vm.kvm_page_faults is None:
        refaults = zapped
    elif base is None:
        refaults = float(vm.kvm_page_faults)
    else:
        base_zapped = float(base.zapped.sum())
        refaults = vm.kvm_page_faults * (zapped / base_zapped) if base_zapped else 0.0
    pte = float(out.pte_updates.sum())
    failed = vm.migrations_failed if (out.scans and (base is None or out.protects_pinned)) else 0
    migrated = vm.pages_migrated if out.scans else 0
    return {
        "numa_invalidations": float(np.count_nonzero(out.invalidates)),
        "kvm_unmap_calls": float(out.unmap_calls.sum()),
        "kvm_pages_zapped": zapped,
        "kvm_remote_flushes": flushes,
        "tlb_shootdown_ipis": ipis,
        "numa_pte_updates": pte,
        "numa_huge_pte_updates": 0.0,
        "numa_hint_faults": pte,
        "spte_refaults": refaults,
        "migrations_attempted": float(migrated + failed),
        "migrations_failed": float(failed),
        "pages_migrated": float(migrated),
        "task_numa_placements": float(vm.task_numa_placements if out.scans else 0),
    }


def _bases(vm: VmActivity, baseline: bool) -> dict[str, str]:
    guest = ASSUMED if vm.source != "manifest" else DERIVED
    cause = OBSERVED if set(vm.evidence) <= {"stack"} else DERIVED
    observed = OBSERVED if baseline else DERIVED
    return {
        "numa_invalidations": cause if baseline else DERIVED,
        "kvm_unmap_calls": guest,
        "kvm_pages_zapped": guest if vm.kvm_page_faults is not None else ASSUMED,
        "kvm_remote_flushes": guest,
        "tlb_shootdown_ipis": observed,
        "numa_pte_updates": guest,
        "numa_huge_pte_updates": ASSUMED,
        "numa_hint_faults": ASSUMED,
        "spte_refaults": observed if vm.kvm_page_faults is not None else ASSUMED,
        "migrations_attempted": observed,
        "migrations_failed": observed if baseline else ASSUMED,
        "pages_migrated": observed,
        "task_numa_placements": observed,
        "est_cpu_us": DERIVED,
    }


def replay(
    model: Model,
    *,
    policies: tuple[str, ...] = DEFAULT_POLICIES,
    params: dict[str, dict[str, Any]] | None = None,
    cost: CostModel | None = None,
) -> ReplayResult:
    """Replay ``policies`` (baseline first) over every VM of ``model``."""
    cost = cost or CostModel()
    names = ["baseline", *[p for p in policies if p != "baseline"]]
    engines = {n: REGISTRY[n](**(params or {}).get(n, {})) for n in names}
    ctx = ReplayContext(kernel=model.kernel)
    results = []
    notes = [HUGE_NOTE, HINT_NOTE, FAILED_NOTE]
    if any(vm.kvm_page_faults is None for vm in model.vms):
        notes.append(PRESENT_NOTE)
    for vm in model.vms:
        res = VmResult(vm)
        base_out = engines["baseline"].outcome(vm, ctx)
        base_values = _metrics(vm, base_out, None)
        for name, engine in engines.items():
            out = base_out if name == "baseline" else engine.outcome(vm, ctx)
            values = base_values if name == "baseline" else _metrics(vm, out, base_out)
            values = dict(values, est_cpu_us=cost.cpu_us(values))
            bases = _bases(vm, name == "baseline")
            metrics = {m: Metric(v, bases[m]) for m, v in values.items()}
            if name != "baseline":
                for m in (*METRICS, "est_cpu_us"):
                    basis = bases[m] if bases[m] == ASSUMED else DERIVED
                    metrics[f"{m}_avoided"] = Metric(
                        base_values_with_cost(base_values, cost)[m] - values[m], basis
                    )
                res.benefit_lost[name] = {
                    "pages_migrated": int(base_values["pages_migrated"] - values["pages_migrated"]),
                    "task_numa_placements": int(
                        base_values["task_numa_placements"] - values["task_numa_placements"]
                    ),
                }
            res.policies[name] = metrics
            res.mmtests_cost[name] = CostModel.mmtests_autonuma_cost(values)
        results.append(res)
    return ReplayResult(results, notes, names, cost)


def base_values_with_cost(values: dict[str, float], cost: CostModel) -> dict[str, float]:
    return dict(values, est_cpu_us=cost.cpu_us(values))


def write_metrics(con: duckdb.DuckDBPyConnection, result: ReplayResult) -> None:
    con.execute("DELETE FROM replay_metrics")
    rows = [
        (policy, r.vm.tgid, metric, float(m.value), m.basis)
        for r in result.vms
        for policy, metrics in r.policies.items()
        for metric, m in metrics.items()
    ]
    if rows:
        con.executemany("INSERT INTO replay_metrics VALUES (?, ?, ?, ?, ?)", rows)


__all__ = ["ReplayResult", "VmResult", "replay", "write_metrics"]
