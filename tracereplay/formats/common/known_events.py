"""Print formats of the tracepoints tracereplay understands, for text inputs.

Text traces show each event through its ``print fmt``; this module maps that
text back to the event's *fields* (format-file names), normalized as described
in :mod:`tracereplay.schema`, so a text trace and a binary trace of the same
recording give the same ``args``. Formats were read from the 6.18 kernel's
``/sys/kernel/tracing/events/*/format``; older spellings are listed where they
differ (each cites the kernel version that changed it).

The templates are compiled to flat arrays by :mod:`tracereplay.formats.text.templates`
and applied by :mod:`tracereplay.formats.text.args` (no regex, no Python loop per
line); the binary readers use the field kinds to render the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

# Field converters (how the printed text maps to the field's value).
U = "u"  # unsigned integer: 0x-hex or decimal; a printed negative wraps to u64 ("pages:-1")
I = "i"  # noqa: E741 - signed integer, 0x-hex or decimal
X = "x"  # unsigned hex printed without 0x (%lX, %llx)
SYM = "sym"  # code pointer printed with %pS: bare symbol name ("flush_tlb_func")
S = "s"  # string as printed
B = "b"  # bool printed as true/false
XL = "xl"  # list of unsigned hex values without 0x, ", "-separated (raw_syscalls args)


@dataclass(frozen=True)
class EventFormat:
    """How to read one tracepoint's text payload back into fields.

    ``templates`` mirror the kernel's print fmt with ``{field}`` in place of
    each conversion: ``{f}`` for decimal (``%d``, ``%lu``) or text, ``{f:x}`` for
    hex without prefix (``%lx``), ``{f:#x}`` for ``%#lx`` (``0x`` prefix, absent
    for zero) and ``%p``-style user addresses. They are tried in order, newest
    kernel first. Parsing a template is a chain
    of literal splits, which is what keeps text ingest fast.
    """

    system: str
    templates: tuple[str, ...]
    fields: dict[str, str]


def _numa_pair_fields() -> dict[str, str]:
    return {
        f"{side}_{f}": I for side in ("src", "dst") for f in ("pid", "tgid", "ngid", "cpu", "nid")
    }


_NUMA_PAIR_T = (
    "src_pid={src_pid} src_tgid={src_tgid} src_ngid={src_ngid} src_cpu={src_cpu} src_nid={src_nid}"
    " dst_pid={dst_pid} dst_tgid={dst_tgid} dst_ngid={dst_ngid} dst_cpu={dst_cpu} dst_nid={dst_nid}"
)

KNOWN_EVENTS: dict[str, EventFormat] = {
    "kvm_unmap_hva_range": EventFormat(
        "kvm", ("mmu notifier unmap range: {start:#x} -- {end:#x}",), {"start": U, "end": U}
    ),
    "kvm_age_hva": EventFormat(
        "kvm", ("mmu notifier age hva: {start:#x} -- {end:#x}",), {"start": U, "end": U}
    ),
    "kvm_test_age_hva": EventFormat("kvm", ("mmu notifier test age hva: {hva:#x}",), {"hva": U}),
    "kvm_set_spte_hva": EventFormat("kvm", ("mmu notifier set pte hva: {hva:#x}",), {"hva": U}),
    "kvm_page_fault": EventFormat(
        "kvm",
        (
            # 6.1+ prints the vCPU and guest RIP too
            "vcpu {vcpu_id} rip 0x{guest_rip:x} address 0x{fault_address:x} error_code 0x{error_code:x}",
            # before 6.1: "address %lx error_code %x", hex without 0x
            "address {fault_address:x} error_code {error_code:x}",
        ),
        {"vcpu_id": U, "guest_rip": U, "fault_address": U, "error_code": U},
    ),
    # the symbolic reason is printed before its numeric value: keep the number
    "tlb_flush": EventFormat(
        "tlb",
        (
            "pages:{pages} reason:{_reason_name} ({reason})",
            # trace-cmd report (libtraceevent) spelling
            "pages={pages} reason={_reason_name} ({reason})",
        ),
        {"reason": I, "pages": U},
    ),
    "ipi_send_cpu": EventFormat(
        "ipi",
        ("cpu={cpu} callsite={callsite} callback={callback}",),
        {"cpu": U, "callsite": SYM, "callback": SYM},
    ),
    "ipi_send_cpumask": EventFormat(
        "ipi",
        ("cpumask={cpumask} callsite={callsite} callback={callback}",),
        {"cpumask": S, "callsite": SYM, "callback": SYM},
    ),
    # On a 2-CPU host a TLB shootdown has a single target and goes through
    # smp_call_function_single: only csd_queue_cpu names flush_tlb_func then.
    "csd_queue_cpu": EventFormat(
        "csd",
        ("cpu={cpu} callsite={callsite} func={func} csd={csd}",),
        {"cpu": U, "callsite": SYM, "func": SYM, "csd": S},
    ),
    "sched_skip_vma_numa": EventFormat(
        "sched",
        (
            "numa_scan_offset={numa_scan_offset} vm_start={vm_start} vm_end={vm_end} reason={reason}",
        ),
        {"numa_scan_offset": X, "vm_start": X, "vm_end": X, "reason": S},
    ),
    "sched_move_numa": EventFormat(
        "sched",
        (
            "pid={pid} tgid={tgid} ngid={ngid} src_cpu={src_cpu} src_nid={src_nid} dst_cpu={dst_cpu} dst_nid={dst_nid}",
        ),
        {f: I for f in ("pid", "tgid", "ngid", "src_cpu", "src_nid", "dst_cpu", "dst_nid")},
    ),
    "sched_swap_numa": EventFormat("sched", (_NUMA_PAIR_T,), _numa_pair_fields()),
    "sched_stick_numa": EventFormat(
        "sched",
        (
            _NUMA_PAIR_T,
            # before 5.9 sched_stick_numa described one task
            "pid={pid} tgid={tgid} ngid={ngid} src_cpu={src_cpu} src_nid={src_nid} dst_cpu={dst_cpu} dst_nid={dst_nid}",
        ),
        {**_numa_pair_fields(), **{f: I for f in ("pid", "tgid", "ngid")}},
    ),
    "page_fault_user": EventFormat(
        "exceptions",
        ("address={address:#x} ip={ip:#x} error_code=0x{error_code:x}",),
        {"address": U, "ip": U, "error_code": U},
    ),
    "page_fault_kernel": EventFormat(
        "exceptions",
        ("address={address:#x} ip={ip} error_code=0x{error_code:x}",),
        {"address": U, "ip": SYM, "error_code": U},
    ),
    "mm_migrate_pages": EventFormat(
        "migrate",
        (
            # nr_split (large_folio_split) since 6.9
            "nr_succeeded={succeeded} nr_failed={failed} nr_thp_succeeded={thp_succeeded} nr_thp_failed={thp_failed}"
            " nr_thp_split={thp_split} nr_split={large_folio_split} mode={mode} reason={reason}",
            # nr_thp_split since 5.12
            "nr_succeeded={succeeded} nr_failed={failed} nr_thp_succeeded={thp_succeeded} nr_thp_failed={thp_failed}"
            " nr_thp_split={thp_split} mode={mode} reason={reason}",
            "nr_succeeded={succeeded} nr_failed={failed} nr_thp_succeeded={thp_succeeded} nr_thp_failed={thp_failed}"
            " mode={mode} reason={reason}",
            "nr_succeeded={succeeded} nr_failed={failed} mode={mode} reason={reason}",
        ),
        {
            "succeeded": U,
            "failed": U,
            "thp_succeeded": U,
            "thp_failed": U,
            "thp_split": U,
            "large_folio_split": U,
            "mode": S,
            "reason": S,
        },
    ),
    "sched_switch": EventFormat(
        "sched",
        (
            "prev_comm={prev_comm} prev_pid={prev_pid} prev_prio={prev_prio} prev_state={prev_state}"
            " ==> next_comm={next_comm} next_pid={next_pid} next_prio={next_prio}",
        ),
        {
            "prev_comm": S,
            "prev_pid": I,
            "prev_prio": I,
            "prev_state": S,
            "next_comm": S,
            "next_pid": I,
            "next_prio": I,
        },
    ),
    "sched_process_fork": EventFormat(
        "sched",
        ("comm={parent_comm} pid={parent_pid} child_comm={child_comm} child_pid={child_pid}",),
        {"parent_comm": S, "parent_pid": I, "child_comm": S, "child_pid": I},
    ),
    "sched_process_exec": EventFormat(
        "sched",
        ("filename={filename} pid={pid} old_pid={old_pid}",),
        {"filename": S, "pid": I, "old_pid": I},
    ),
    "sched_process_exit": EventFormat(
        "sched",
        (
            # group_dead since 6.16
            "comm={comm} pid={pid} prio={prio} group_dead={group_dead}",
            "comm={comm} pid={pid} prio={prio}",
        ),
        {"comm": S, "pid": I, "prio": I, "group_dead": B},
    ),
    "task_newtask": EventFormat(
        "task",
        ("pid={pid} comm={comm} clone_flags={clone_flags:x} oom_score_adj={oom_score_adj}",),
        {"pid": I, "comm": S, "clone_flags": X, "oom_score_adj": I},
    ),
    "task_rename": EventFormat(
        "task",
        ("pid={pid} oldcomm={oldcomm} newcomm={newcomm} oom_score_adj={oom_score_adj}",),
        {"pid": I, "oldcomm": S, "newcomm": S, "oom_score_adj": I},
    ),
    "kvm_tdp_mmu_spte_changed": EventFormat(
        "kvmmmu",
        ("as id {as_id} gfn {gfn:x} level {level} old_spte {old_spte:x} new_spte {new_spte:x}",),
        {"gfn": X, "old_spte": X, "new_spte": X, "level": U, "as_id": U},
    ),
    "kvm_mmu_set_spte": EventFormat(
        "kvmmmu",
        ("gfn {gfn:x} spte {spte:x} ({_perm}) level {level} at {sptep:x}",),
        {"gfn": X, "spte": X, "sptep": X, "level": U},
    ),
}

# Events read through a template in text only: the binary readers already decode them
# from their format files (fixed arrays as JSON lists), so they need no normalization.
TEXT_ONLY_EVENTS: dict[str, EventFormat] = {
    # print fmt "NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)": id, unsigned long args[6]
    "sys_enter": EventFormat("raw_syscalls", ("NR {id} ({args})",), {"id": I, "args": XL}),
    # print fmt "NR %ld = %ld"
    "sys_exit": EventFormat("raw_syscalls", ("NR {id} = {ret}",), {"id": I, "ret": I}),
}

TEXT_EVENTS: dict[str, EventFormat] = {**KNOWN_EVENTS, **TEXT_ONLY_EVENTS}

# Subsystems of common events whose text payload we keep generic.
_EXTRA_SYSTEMS = {
    "kvm_exit": "kvm",
    "kvm_entry": "kvm",
    "kvm_mmio": "kvm",
    "kvm_pv_tlb_flush": "kvm",
    "kvm_fpu": "kvm",
    "kvm_userspace_exit": "kvm",
    "kvm_vcpu_wakeup": "kvm",
    "sched_wakeup": "sched",
    "sched_wakeup_new": "sched",
    "sched_waking": "sched",
    "sched_migrate_task": "sched",
    "sched_process_free": "sched",
    "sched_process_wait": "sched",
    "mm_numa_migrate_ratelimit": "migrate",
    "mm_migrate_pages_start": "migrate",
    "irq_handler_entry": "irq",
    "irq_handler_exit": "irq",
    "softirq_entry": "irq",
    "softirq_exit": "irq",
    "softirq_raise": "irq",
    "ipi_entry": "ipi",
    "ipi_exit": "ipi",
    "ipi_raise": "ipi",
    "kernel_stack": "ftrace",
    "user_stack": "ftrace",
    "print": "ftrace",
    "bprint": "ftrace",
    "function": "ftrace",
}

SYSTEM_OF: dict[str, str] = {**_EXTRA_SYSTEMS, **{n: f.system for n, f in TEXT_EVENTS.items()}}

# Syscall events are named per syscall (sys_enter_madvise, sys_exit_madvise): their
# system is known from the prefix (kernel/trace/trace_syscalls.c).
SYSCALL_SYSTEM = "syscalls"
SYSCALL_PREFIXES = ("sys_enter_", "sys_exit_")


__all__ = [
    "KNOWN_EVENTS",
    "SYSCALL_PREFIXES",
    "SYSCALL_SYSTEM",
    "SYSTEM_OF",
    "TEXT_EVENTS",
    "TEXT_ONLY_EVENTS",
    "EventFormat",
]
