"""Per-chunk time series of a replay: what each policy does at each NUMA-scan invalidation.

The replay keeps every policy's :class:`~tracereplay.policies.Outcome` (one
entry per NUMA-scan invalidation of a VM, or per scanned chunk of a pinned
process) on its :class:`~tracereplay.replay.engine.VmResult`; the
invalidation's timestamp is ``vm.inv_ts``. :func:`chunk_series` turns them
into one value per chunk and metric, computed with the engine's counting rules
(:mod:`tracereplay.replay.engine`), so that a series summed over the chunks
gives the policy's metric:

* ``numa_invalidations``, ``kvm_unmap_calls``, ``kvm_pages_zapped``,
  ``kvm_remote_flushes``, ``numa_pte_updates``, ``numa_huge_pte_updates``:
  the outcome's per-chunk arrays;
* ``tlb_shootdown_ipis``: the baseline's observed host shootdown and KVM flush
  IPIs attributed to each invalidation; a policy's, per chunk, the host IPIs of
  the flushes it keeps plus its KVM flushes times the baseline's KVM IPIs per
  flush (a pinned process: its call's IPIs plus or minus those of the flushes
  it adds or drops; the engine clamps a negative *total* to 0, a series does not);
* ``numa_hint_faults`` and ``spte_refaults``: the page replay counts these per
  VM, not per chunk. A series apportions the total over the chunks in
  proportion to the pages each chunk made PROT_NONE (hint faults) or zapped
  (refaults): it is dated by the scan that caused the fault, not by the fault.

Metrics of no chunk (migrations, task placements, ``est_cpu_us``) have no series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tracereplay.contract import METRICS
from tracereplay.policies import Outcome
from tracereplay.reconstruct.model import VmActivity
from tracereplay.replay.engine import VmResult

SERIES_METRICS = METRICS[: METRICS.index("spte_refaults") + 1]  # the chunk-level ones


@dataclass
class ChunkSeries:
    """One VM's (or pinned process's) per-chunk values: ``values[policy][metric][chunk]``."""

    tgid: int
    name: str
    kind: str  # vm | process
    ts: np.ndarray  # ns, one per chunk, ascending
    values: dict[str, dict[str, np.ndarray]]

    def frame(self) -> pl.DataFrame:
        """Long form: ``tgid, name, kind, policy, metric, ts, value`` (one row per chunk)."""
        parts = [
            pl.DataFrame(
                {"ts": self.ts, "value": np.asarray(v, np.float64)},
                schema={"ts": pl.Int64, "value": pl.Float64},
            ).with_columns(policy=pl.lit(policy), metric=pl.lit(metric))
            for policy, metrics in self.values.items()
            for metric, v in metrics.items()
        ]
        if not parts:
            return empty_series_frame()
        return (
            pl.concat(parts)
            .with_columns(
                tgid=pl.lit(self.tgid, pl.Int64),
                name=pl.lit(self.name),
                kind=pl.lit(self.kind),
            )
            .select("tgid", "name", "kind", "policy", "metric", "ts", "value")
        )


def empty_series_frame() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "tgid": pl.Int64,
            "name": pl.String,
            "kind": pl.String,
            "policy": pl.String,
            "metric": pl.String,
            "ts": pl.Int64,
            "value": pl.Float64,
        }
    )


def _apportion(total: int | None, weights: np.ndarray) -> np.ndarray:
    """``total`` spread over the chunks in proportion to ``weights`` (None: the weights)."""
    w = np.asarray(weights, np.float64)
    if total is None:
        return w
    s = float(w.sum())
    if s <= 0:
        return np.zeros(len(w))
    return w * (float(total) / s)


def _ipis(vm: VmActivity, out: Outcome, base: Outcome, is_base: bool) -> np.ndarray:
    """Per-chunk shootdown IPIs (see the module docstring)."""
    c = vm.chunks
    host = np.asarray(c["host_shootdown_ipis"], np.float64)
    if vm.kind == "process":
        if is_base:
            return host
        if not out.scans:
            return np.zeros(len(host))
        delta = np.asarray(out.host_flush, np.float64) - np.asarray(base.host_flush, np.float64)
        return host + delta * vm.ipis_per_flush
    kvm = np.asarray(c["kvm_flush_ipis"], np.float64)
    if is_base:
        return host + kvm
    base_flushes = float(base.flushes.sum())
    per_flush = float(kvm.sum()) / base_flushes if base_flushes else 0.0
    call_host = np.bincount(vm.inv_call, weights=host)[vm.inv_call] if len(host) else host
    return call_host * np.asarray(out.host_flush, np.float64) + out.flushes * per_flush


def chunk_series(result: VmResult) -> ChunkSeries:
    """Every replayed policy's per-chunk series for one VM or pinned process."""
    vm = result.vm
    base = result.outcomes.get("baseline")
    values: dict[str, dict[str, np.ndarray]] = {}
    if base is None:  # a VmResult built without outcomes
        return ChunkSeries(vm.tgid, vm.name, vm.kind, vm.inv_ts, values)
    kvm = vm.kind != "process"
    for policy, out in result.outcomes.items():
        n = vm.n_chunks
        zero = np.zeros(n)
        pte = np.asarray(out.pte_updates, np.float64)
        zapped = np.asarray(out.zapped, np.float64) if kvm else zero
        values[policy] = {
            "numa_invalidations": np.asarray(out.invalidates, np.float64) if kvm else zero,
            "kvm_unmap_calls": np.asarray(out.unmap_calls, np.float64) if kvm else zero,
            "kvm_pages_zapped": zapped,
            "kvm_remote_flushes": np.asarray(out.flushes, np.float64) if kvm else zero,
            "tlb_shootdown_ipis": _ipis(vm, out, base, policy == "baseline"),
            "numa_pte_updates": pte,
            "numa_huge_pte_updates": (
                np.asarray(out.huge_updates, np.float64) if out.huge_updates is not None else zero
            ),
            "numa_hint_faults": _apportion(out.hint_faults, pte),
            "spte_refaults": _apportion(out.refaults, zapped) if kvm else zero,
        }
    return ChunkSeries(vm.tgid, vm.name, vm.kind, np.asarray(vm.inv_ts, np.int64), values)


__all__ = ["SERIES_METRICS", "ChunkSeries", "chunk_series", "empty_series_frame"]
