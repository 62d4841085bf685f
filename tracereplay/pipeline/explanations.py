"""Prose beside a VM's figures: why a policy moves them the way it does here."""

from __future__ import annotations

from tracereplay.pipeline.analysis import Metric


def explain(policies: dict[str, dict[str, Metric]]) -> list[str]:
    """Why numa-protect moves KVM unmap calls and remote flushes the way it does here.

    numa-protect (RFC v2) flushes once per protected page whose SPTE was present;
    the baseline flushes once per zapping invalidation plus once per mmu_lock
    yield under contention. Flushes therefore fall (the RFC's own measurement:
    ~8 600 -> ~4 600 while unmap calls rose ~35 -> ~10 000) only when the
    baseline shows such flush storms, and rise otherwise.
    """
    base, protect = policies.get("baseline"), policies.get("numa-protect")
    if not base or not protect:
        return []
    calls_b = base["kvm_unmap_calls"].shown
    flush_b = base["kvm_remote_flushes"].shown
    calls_p = protect["kvm_unmap_calls"].shown
    flush_p = protect["kvm_remote_flushes"].shown
    if not calls_b:
        return []
    storms = flush_b > calls_b
    head = (
        f"numa-protect: KVM unmap calls {calls_b:,} -> {calls_p:,} (one per protected page instead of one "
        f"per invalidation); remote flushes {flush_b:,} -> {flush_p:,}"
    )
    if storms and flush_p < flush_b:
        why = (
            f"they fall because the baseline shows flush storms ({flush_b:,} flushes for {calls_b:,} unmap "
            "calls: KVM yields mmu_lock under contention and flushes at each yield), the direction of the "
            "RFC v2 measurements"
        )
    elif storms:
        why = (
            f"they rise although the baseline shows flush storms ({flush_b:,} flushes for {calls_b:,} unmap "
            "calls): more protected pages had a present SPTE than the storms flushed"
        )
    elif flush_p > flush_b:
        why = (
            "they rise because the baseline flushed about once per unmap call (no mmu_lock contention "
            "storms), the opposite of the RFC v2 measurements"
        )
    else:
        why = "they fall because few protected pages had a present SPTE"
    return [f"{head}: {why}."]


__all__ = ["explain"]
