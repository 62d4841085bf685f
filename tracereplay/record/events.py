"""Event sets the recorder enables (those the reconstruction reads), as named presets.

``--events`` takes a comma-separated list of preset names and single events;
``-system:event`` removes one::

    numa                      the default: everything the analysis uses
    minimal                   for busy production hosts: no per-fault events
    causes                    numa plus the syscall windows that attribute
                              invalidations without stacks (reconstruct/causes.py)
    minimal,syscalls          the same windows on top of minimal
    numa,kvmmmu:kvm_mmu_set_spte,-exceptions:page_fault_user

Events the kernel does not have are skipped and reported, never fatal (most
kernels lack one or two, e.g. ``csd:csd_queue_cpu`` before 6.3).
"""

from __future__ import annotations

import re

from tracereplay.reconstruct.causes import CAUSE_SYSCALLS
from tracereplay.record.tracefs import RecordError

__all__ = ["PRESETS", "STACK_EVENT", "resolve_events"]

STACK_EVENT = "kvm:kvm_unmap_hva_range"

# fork/exec/exit/rename give the analysis its process model (comm, tgid changes)
_PROCESS = [
    "sched:sched_process_fork",
    "sched:sched_process_exec",
    "sched:sched_process_exit",
    "task:task_newtask",
    "task:task_rename",
]
_NUMA = [
    "kvm:kvm_unmap_hva_range",
    "tlb:tlb_flush",
    "ipi:ipi_send_cpu",
    "ipi:ipi_send_cpumask",
    "sched:sched_skip_vma_numa",
    "sched:sched_move_numa",
    "sched:sched_swap_numa",
    "sched:sched_stick_numa",
    "migrate:mm_migrate_pages",
]
PRESETS: dict[str, list[str]] = {
    "minimal": _NUMA + _PROCESS,
    "numa": [
        _NUMA[0],
        "kvm:kvm_age_hva",
        "kvm:kvm_page_fault",
        *_NUMA[1:],
        "exceptions:page_fault_user",
        *_PROCESS,
        # With one target CPU a TLB shootdown is an ipi_send_cpu whose callback is
        # generic_smp_call_function_single_interrupt; only csd_queue_cpu names the
        # function it delivers (flush_tlb_func).
        "csd:csd_queue_cpu",
    ],
}
# Syscalls whose window (enter .. exit of the same task) explains the KVM
# invalidations raised inside it (tracereplay.reconstruct.causes, rule "syscall").
# Enabling any syscalls:* event makes every syscall of every task take the traced
# slow path (SYSCALL_WORK_SYSCALL_TRACEPOINT), but only these write events:
# docs/RECORDING.md measures the cost.
PRESETS["syscalls"] = [
    f"syscalls:sys_{side}_{name}" for name in CAUSE_SYSCALLS for side in ("enter", "exit")
]
# mm_migrate_pages_start opens the window of rule "migration" (one event per migrate_pages call)
PRESETS["causes"] = [*PRESETS["numa"], "migrate:mm_migrate_pages_start", *PRESETS["syscalls"]]
# SPTE-level events: exact zaps and refaults where KVM emits them (TDP MMU);
# high volume, so not in the default.
PRESETS["full"] = [
    *PRESETS["numa"],
    "kvmmmu:kvm_tdp_mmu_spte_changed",
    "kvmmmu:kvm_mmu_set_spte",
    "kvmmmu:kvm_mmu_spte_requested",
    "migrate:mm_migrate_pages_start",
]

_EVENT = re.compile(r"^[A-Za-z0-9_]+:[A-Za-z0-9_]+$")


def resolve_events(spec: str, available: set[str]) -> tuple[list[str], list[str]]:
    """``(events to enable, requested but unavailable)`` for an ``--events`` spec.

    >>> resolve_events("minimal,-task:task_rename", {"tlb:tlb_flush", "task:task_rename"})[0]
    ['tlb:tlb_flush']
    """
    wanted: list[str] = []
    explicit: set[str] = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item in PRESETS:
            wanted += [e for e in PRESETS[item] if e not in wanted]
        elif item.startswith("-") and _EVENT.match(item[1:]):
            wanted = [e for e in wanted if e != item[1:]]
        elif _EVENT.match(item):
            if item not in wanted:
                wanted.append(item)
            explicit.add(item)
        else:
            names = ", ".join(sorted(PRESETS))
            raise RecordError(f"--events: {item!r} is neither a preset ({names}) nor system:event")
    if not wanted:
        raise RecordError("--events selects no event")
    missing = [e for e in wanted if e not in available]
    # preset members that are missing are normal; only an explicit one is an error
    bad = [e for e in missing if e in explicit]
    if bad:
        raise RecordError(f"event(s) not available on this kernel: {', '.join(bad)}")
    return [e for e in wanted if e in available], missing
