"""Cost model: counts -> estimated CPU time (``est_cpu_us``), configurable from TOML.

Defaults are per-event CPU costs in microseconds. They are order-of-magnitude
figures, to rank policies, not to predict a host; calibrate them for yours with
``--costs FILE`` (a TOML file with a ``[costs]`` table using the same keys):

* ``numa_pte_update`` 0.007 and ``numa_hint_fault`` 5.0, ``page_migrated`` 0.019:
  mmtests' AutoNUMA cost weights (7, 5000 and 19 per 10^6, read as ns per PTE
  update, hint fault and migrated page, so their ratios are kept);
* ``kvm_unmap_call`` 0.5: entering KVM's mmu-notifier path, taking mmu_lock and
  walking the memslots for one range;
* ``kvm_page_zapped`` 0.02: clearing one 4 KiB TDP-MMU leaf SPTE;
* ``kvm_remote_flush`` 2.0: ``kvm_flush_remote_tlbs`` (request, wait for vCPUs);
* ``tlb_shootdown_ipi`` 1.5: one IPI and the target CPU's flush;
* ``spte_refault`` 1.5: an EPT violation exit and re-installing the SPTE.

mmtests' own AutoNUMA cost, (7 x numa_pte_updates + 5000 x numa_hint_faults +
19 x numa_pages_migrated) / 10^6, is reported beside ours as ``mmtests_autonuma_cost``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from tracereplay.errors import TraceReplayError
from tracereplay.params import Param, check_params

DEFAULT_COSTS_US: dict[str, float] = {
    "numa_pte_update": 0.007,
    "numa_hint_fault": 5.0,
    "page_migrated": 0.019,
    "kvm_unmap_call": 0.5,
    "kvm_page_zapped": 0.02,
    "kvm_remote_flush": 2.0,
    "tlb_shootdown_ipi": 1.5,
    "spte_refault": 1.5,
}

_COST_HELP = {
    "numa_pte_update": "one PTE made PROT_NONE (mmtests weight)",
    "numa_hint_fault": "one NUMA hint fault (mmtests weight)",
    "page_migrated": "one 4 KiB page migrated (mmtests weight)",
    "kvm_unmap_call": "one call into KVM's mmu-notifier unmap path",
    "kvm_page_zapped": "clearing one 4 KiB TDP-MMU leaf SPTE",
    "kvm_remote_flush": "one kvm_flush_remote_tlbs (request, wait for vCPUs)",
    "tlb_shootdown_ipi": "one IPI and the target CPU's flush",
    "spte_refault": "an EPT/NPT violation exit and re-installing the SPTE",
}
# the [costs] keys, checked like policy parameters (tracereplay.params)
COST_PARAMS = tuple(
    Param(k, float, v, f"µs per event: {_COST_HELP[k]}", min=0) for k, v in DEFAULT_COSTS_US.items()
)

# metric -> cost key
_METRIC_COST = {
    "numa_pte_updates": "numa_pte_update",
    "numa_hint_faults": "numa_hint_fault",
    "pages_migrated": "page_migrated",
    "kvm_unmap_calls": "kvm_unmap_call",
    "kvm_pages_zapped": "kvm_page_zapped",
    "kvm_remote_flushes": "kvm_remote_flush",
    "tlb_shootdown_ipis": "tlb_shootdown_ipi",
    "spte_refaults": "spte_refault",
}


@dataclass
class CostModel:
    costs_us: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_COSTS_US))
    source: str = "defaults"

    def cpu_us(self, metrics: dict[str, float]) -> float:
        return sum(metrics.get(m, 0.0) * self.costs_us[k] for m, k in _METRIC_COST.items())

    @staticmethod
    def mmtests_autonuma_cost(metrics: dict[str, float]) -> float:
        return (
            7 * metrics.get("numa_pte_updates", 0)
            + 5000 * metrics.get("numa_hint_faults", 0)
            + 19 * metrics.get("pages_migrated", 0)
        ) / 1e6


def load_costs(path: str) -> CostModel:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise TraceReplayError(f"{path}: no such cost file") from None
    except tomllib.TOMLDecodeError as e:
        raise TraceReplayError(f"{path}: not valid TOML: {e}") from None
    extra = sorted(set(data) - {"costs"})
    if extra:
        raise TraceReplayError(f"{path}: unknown table or key {', '.join(extra)} (known: [costs])")
    table = data.get("costs", {})
    if not isinstance(table, dict):
        raise TraceReplayError(f"{path}: costs must be a table ([costs])")
    costs = check_params("costs", COST_PARAMS, table, error=TraceReplayError, where=path)
    return CostModel(costs, source=path)


__all__ = ["COST_PARAMS", "DEFAULT_COSTS_US", "CostModel", "load_costs"]
