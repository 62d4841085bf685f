"""Counterfactual replay: every policy over every VM's reconstructed activity.

One loop drives the policies; each returns an :class:`~tracereplay.policies.Outcome`
(per-chunk quantities) and this module turns it into the contract's metrics
the same way for all, with the basis of each (observed / derived / assumed),
``<metric>_avoided`` for every non-baseline policy, and ``est_cpu_us``. Results
are written to ``replay_metrics``.

Counting rules common to every policy (each policy module states its own):

* ``numa_invalidations``: chunks whose notifier still fires; ``kvm_unmap_calls``,
  ``kvm_pages_zapped``, ``kvm_remote_flushes``: sums of the policy's per-chunk
  arrays. Per-VM counts cover guest RAM (memslots) only — what a trace plus
  manifest can attribute to the VM; the vmstat cross-check stays host-wide;
* ``numa_pte_updates`` (4 KiB units, a THP PMD counts 512) and
  ``numa_huge_pte_updates`` (PMDs): pages the policy makes PROT_NONE that were
  not PROT_NONE already; ``numa_hint_faults`` / ``spte_refaults``: from the
  page model (:mod:`tracereplay.reconstruct.pages`) — observed when the trace
  has ``kvm_page_fault`` events, else one per PTE update / zapped page (assumed);
* ``kvm_remote_flushes``: per policy module (baseline: max(1 per invalidation
  that zapped a present SPTE, the distinct KVM flush requests observed));
* ``tlb_shootdown_ipis``: baseline = observed host shootdown IPIs + KVM flush
  IPIs (per target CPU), attributed to the invalidation they follow
  (queries/_invalidation_pages.sql); a policy = for every host TLB flush it
  keeps, the observed IPIs of that change_prot_numa() call's flush, + its KVM
  flushes x the baseline's KVM IPIs per flush;
* ``migrations_attempted`` = NUMA (``numa_misplaced``) ``mm_migrate_pages``
  calls, ``migrations_failed`` = those with failed > 0 (the baseline's, kept
  only by policies that still protect pinned pages), ``pages_migrated`` = sum
  of succeeded; ``task_numa_placements``: sched move/swap/stick events; all
  zero for a policy that does not scan the VM.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from tracereplay.metric_info import weakest_basis
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
from tracereplay.policies.base import check_policy_names, check_policy_params
from tracereplay.progress import Task, current
from tracereplay.reconstruct.model import Model, VmActivity
from tracereplay.replay.cost import CostModel

HUGE_NOTE = (
    "guest RAM without `thp = true` in the manifest is taken as mapped with 4 KiB pages "
    "(a THP memslot counts 512 PTE updates and 1 huge PTE update per PMD)"
)
HINT_NOTE = (
    "no kvm_page_fault events: vCPU hint faults go through KVM's GUP and are not traced, so every "
    "guest page made PROT_NONE is assumed to be touched (one hint fault) before the next scan"
)
PRESENT_NOTE = (
    "no kvm_page_fault events: every guest page in a zapped range is assumed to have had a present "
    "SPTE and to be refaulted"
)
OBSERVED_PAGES_NOTE = (
    "SPTE presence, PROT_NONE and hint faults are replayed page by page from the kvm_page_fault "
    "events (trace start: nothing PROT_NONE; an SPTE present unless the page's first fault precedes "
    "every invalidation covering it, or the first NUMA invalidation covering it sent no KVM flush)"
)
PROCESS_NOTE = (
    "pinned non-VM processes ([[process]]) are replayed without KVM: every KVM metric is 0, "
    "their NUMA-scan coverage is reconstructed from sched_skip_vma_numa offsets "
    "(tracereplay.reconstruct.process_scan), PROT_NONE and hint faults from their not-present "
    "user page faults; a region page never faulted in the trace is taken as populated"
)
PROCESS_HINT_NOTE = (
    "no page_fault_user events: every region page a process's scan makes PROT_NONE is assumed "
    "to be touched (one hint fault) before the next scan"
)
FAILED_NOTE = (
    "failed NUMA migrations are assumed to be of pinned pages (pinned pages cannot migrate)"
)


@dataclass
class VmResult:
    vm: VmActivity
    policies: dict[str, dict[str, Metric]] = field(default_factory=dict)
    benefit_lost: dict[str, dict[str, int]] = field(default_factory=dict)
    mmtests_cost: dict[str, float] = field(default_factory=dict)
    # policy -> basis of mmtests_cost: the weakest of its three inputs
    mmtests_basis: dict[str, str] = field(default_factory=dict)
    # policy -> why its counts equal the baseline's for this VM (Policy.why_unchanged);
    # only policies that changed nothing are keys
    unchanged: dict[str, str] = field(default_factory=dict)
    # policy -> its per-chunk Outcome (time series and heat maps: tracereplay.replay.series)
    outcomes: dict[str, Outcome] = field(default_factory=dict)


@dataclass
class ReplayResult:
    vms: list[VmResult]
    assumptions: list[str]
    policies: list[str]
    cost: CostModel
    processes: list[VmResult] = field(default_factory=list)


KVM_METRICS = (
    "numa_invalidations",
    "kvm_unmap_calls",
    "kvm_pages_zapped",
    "kvm_remote_flushes",
    "spte_refaults",
)


def _process_ipis(vm: VmActivity, out: Outcome, base: Outcome | None) -> float:
    """A process's host shootdown IPIs: the observed ones of its task_numa_work calls, plus or
    minus the IPIs of the call's flushes per chunk flush the policy adds or drops."""
    host = float(vm.chunks["host_shootdown_ipis"].sum())
    if base is None:
        return host
    if not out.scans:
        return 0.0
    delta = np.asarray(out.host_flush, np.float64) - np.asarray(base.host_flush, np.float64)
    return max(0.0, host + float((delta * vm.ipis_per_flush).sum()))


def _metrics(vm: VmActivity, out: Outcome, base: Outcome | None) -> dict[str, float]:
    """Metric values of one outcome; ``base`` is the baseline outcome (None: this is it)."""
    c = vm.chunks
    host = c["host_shootdown_ipis"]
    kvm_ipis = int(c["kvm_flush_ipis"].sum())
    flushes = float(out.flushes.sum())
    if vm.kind == "process":
        ipis = _process_ipis(vm, out, base)
    elif base is None:
        ipis = float(host.sum() + kvm_ipis)
    else:
        base_flushes = float(base.flushes.sum())
        per_flush = kvm_ipis / base_flushes if base_flushes else 0.0
        # host flushes a policy keeps, each with the IPIs of its call's observed flush
        call_host = np.bincount(vm.inv_call, weights=host)[vm.inv_call] if len(host) else host
        ipis = float((call_host * out.host_flush).sum()) + flushes * per_flush
    zapped = float(out.zapped.sum())
    refaults = float(out.refaults) if out.refaults is not None else zapped
    pte = float(out.pte_updates.sum())
    huge = float(out.huge_updates.sum()) if out.huge_updates is not None else 0.0
    hints = float(out.hint_faults) if out.hint_faults is not None else pte
    # migrations are mm_migrate_pages calls (decision 2): a policy that never
    # protects pinned pages loses exactly the calls that failed (pinned pages)
    failed = vm.migrations_failed if (out.scans and (base is None or out.protects_pinned)) else 0
    ok_calls = vm.migrations_attempted - vm.migrations_failed if out.scans else 0
    migrated = vm.pages_migrated if out.scans else 0
    if base is not None and out.migrations is not None and vm.pages is not None:
        # observed mode: the calls triggered by this policy's own hint faults, plus
        # those the trace cannot tie to a guest-RAM fault (by the rule above)
        ok_p, failed_p, pages_p = out.migrations
        at_ok, at_failed, at_pages = (int(x) for x in vm.pages.mig_attributed)
        un_failed = vm.migrations_failed - at_failed
        un_ok = vm.migrations_attempted - vm.migrations_failed - at_ok
        un_pages = vm.pages_migrated - at_pages
        ok_calls = ok_p + un_ok
        failed = failed_p + (un_failed if out.protects_pinned else 0)
        migrated = pages_p + un_pages
    values = {
        "numa_invalidations": float(np.asarray(out.invalidates, np.int64).sum()),
        "kvm_unmap_calls": float(out.unmap_calls.sum()),
        "kvm_pages_zapped": zapped,
        "kvm_remote_flushes": flushes,
        "tlb_shootdown_ipis": ipis,
        "numa_pte_updates": pte,
        "numa_huge_pte_updates": huge,
        "numa_hint_faults": hints,
        "spte_refaults": refaults,
        "migrations_attempted": float(ok_calls + failed),
        "migrations_failed": float(failed),
        "pages_migrated": float(migrated),
        "task_numa_placements": float(vm.task_numa_placements if out.scans else 0),
    }
    if vm.kind == "process":  # no secondary MMU: nothing reaches KVM
        values.update(dict.fromkeys(KVM_METRICS, 0.0))
    return values


def _bases(vm: VmActivity, baseline: bool) -> dict[str, str]:
    guest = ASSUMED if vm.source != "manifest" else DERIVED
    cause = OBSERVED if set(vm.evidence) <= {"stack"} else DERIVED
    observed = OBSERVED if baseline else DERIVED
    pages = guest if vm.kvm_page_faults is not None else ASSUMED
    if vm.kind == "process":
        guest = ASSUMED if vm.coverage_assumed else guest
        pages = guest if vm.user_faults is not None else ASSUMED
        out = dict.fromkeys(KVM_METRICS, DERIVED)
        out.update(
            numa_pte_updates=guest,
            numa_huge_pte_updates=guest,
            numa_hint_faults=pages,
            tlb_shootdown_ipis=observed if baseline else guest,
            migrations_attempted=observed,
            migrations_failed=observed if baseline else ASSUMED,
            pages_migrated=observed,
            task_numa_placements=observed,
            est_cpu_us=DERIVED,
        )
        return out
    return {
        "numa_invalidations": cause if baseline else DERIVED,
        "kvm_unmap_calls": guest,
        "kvm_pages_zapped": pages,
        "kvm_remote_flushes": guest,
        "tlb_shootdown_ipis": observed,
        "numa_pte_updates": guest,
        "numa_huge_pte_updates": guest,
        "numa_hint_faults": pages,
        "spte_refaults": pages,
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
    """Replay ``policies`` (baseline first) over every VM and pinned process of ``model``."""
    cost = cost or CostModel()
    names = ["baseline", *[p for p in policies if p != "baseline"]]
    check_policy_names(names)
    checked = check_policy_params(params or {})  # ParamError (exit 2) naming the valid list
    engines = {n: REGISTRY[n](**checked.get(n, {})) for n in names}
    ctx = ReplayContext(kernel=model.kernel)
    notes = [HUGE_NOTE, FAILED_NOTE]
    if any(vm.kvm_page_faults is None for vm in model.vms):
        notes += [HINT_NOTE, PRESENT_NOTE]
    if any(vm.kvm_page_faults is not None for vm in model.vms):
        notes.append(OBSERVED_PAGES_NOTE)
    if model.processes:
        notes.append(PROCESS_NOTE)
    if any(p.user_faults is None for p in model.processes):
        notes.append(PROCESS_HINT_NOTE)
    every = [*model.vms, *model.processes]
    with contextlib.ExitStack() as stack:
        bars = {
            n: stack.enter_context(
                current().task(f"replaying {n}", total=len(every), unit="VMs/procs")
            )
            for n in names
        }
        results = [_replay_one(vm, engines, ctx, cost, bars) for vm in every]
    vms, procs = results[: len(model.vms)], results[len(model.vms) :]
    return ReplayResult(vms, notes, names, cost, procs)


def _replay_one(
    vm: VmActivity,
    engines: dict[str, Any],
    ctx: ReplayContext,
    cost: CostModel,
    bars: dict[str, Task],
) -> VmResult:
    """Every policy over one VM or process; the baseline first."""
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
            if all(values[m] == base_values[m] for m in METRICS):
                res.unchanged[name] = engine.why_unchanged(vm, ctx)
        res.policies[name] = metrics
        res.outcomes[name] = out
        bars[name].advance()
        res.mmtests_cost[name] = CostModel.mmtests_autonuma_cost(values)
        res.mmtests_basis[name] = weakest_basis(
            *(bases[m] for m in ("numa_pte_updates", "numa_hint_faults", "pages_migrated"))
        )
    return res


def base_values_with_cost(values: dict[str, float], cost: CostModel) -> dict[str, float]:
    return dict(values, est_cpu_us=cost.cpu_us(values))


def write_metrics(con: duckdb.DuckDBPyConnection, result: ReplayResult) -> None:
    """``replay_metrics`` rows of every VM (scope ``vm``) and replayed process (``process``)."""
    con.execute("DELETE FROM replay_metrics")
    rows = [
        (policy, r.vm.tgid, metric, float(m.value), m.basis, scope)
        for scope, results in (("vm", result.vms), ("process", result.processes))
        for r in results
        for policy, metrics in r.policies.items()
        for metric, m in metrics.items()
    ]
    if rows:
        con.executemany(
            "INSERT INTO replay_metrics (policy, tgid, metric, value, basis, scope) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


__all__ = ["ReplayResult", "VmResult", "replay", "write_metrics"]
