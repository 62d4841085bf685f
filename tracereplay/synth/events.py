"""Columnar event buffers of the generator: numpy columns, no Python object per event.

Events whose payload varies per page (``kvm_page_fault``, ``page_fault_user``,
``mm_migrate_pages``, migration ``kvm_unmap_hva_range`` and stack entries) keep
their fields in the numeric columns ``a``..``d`` and are formatted vectorized
by the writers; the few events per scan chunk (VMA skips, TLB flushes, IPIs,
task placements) carry a pre-formatted payload in ``strings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# event name ids (the order is part of the on-disk nothing: ids are internal)
UNMAP, STACK, KVM_PF, PF_USER, MIGRATE = 0, 1, 2, 3, 4
SKIP, TLB, CSD, IPI_CPU, IPI_MASK, MOVE, SWAP, STICK = 5, 6, 7, 8, 9, 10, 11, 12
NAMES = (
    "kvm_unmap_hva_range",
    "kernel_stack",
    "kvm_page_fault",
    "page_fault_user",
    "mm_migrate_pages",
    "sched_skip_vma_numa",
    "tlb_flush",
    "csd_queue_cpu",
    "ipi_send_cpu",
    "ipi_send_cpumask",
    "sched_move_numa",
    "sched_swap_numa",
    "sched_stick_numa",
)
# irq-info column as the 6.18 fixtures show it for each kind of context
FLAGS = (".....", "...1.", "...2.", "d..2.", "d.h..", "d....", "d..1.")
F_NONE, F_P1, F_P2, F_D2, F_IRQ, F_D, F_D1 = range(7)

_NUMA_VCPU_TAIL = (
    "task_work_run",
    "xfer_to_guest_mode_handle_work",
    "kvm_arch_vcpu_ioctl_run",
    "kvm_vcpu_ioctl",
    "__x64_sys_ioctl",
    "do_syscall_64",
    "entry_SYSCALL_64_after_hwframe",
)
_NOTIFIER_HEAD = (
    "trace_event_raw_event_kvm_unmap_hva_range",
    "kvm_mmu_notifier_invalidate_range_start",
    "__mmu_notifier_invalidate_range_start",
)
# Stacks of the stacktrace trigger on kvm_unmap_hva_range, as recorded on 6.18
STACKS: tuple[tuple[str, ...], ...] = (
    # 0: NUMA scan run by a vCPU thread on its way back into the guest
    (*_NOTIFIER_HEAD, "change_protection", "change_prot_numa", "task_numa_work", *_NUMA_VCPU_TAIL),
    # 1: NUMA migration of a page faulted through KVM's GUP (hva_to_pfn)
    (
        *_NOTIFIER_HEAD,
        "try_to_migrate_one",
        "rmap_walk_anon",
        "try_to_migrate",
        "migrate_pages_batch",
        "migrate_pages",
        "migrate_misplaced_folio",
        "do_numa_page",
        "__handle_mm_fault",
        "handle_mm_fault",
        "__get_user_pages",
        "get_user_pages_unlocked",
        "hva_to_pfn",
        "kvm_follow_pfn",
        "__kvm_faultin_pfn",
        "kvm_mmu_faultin_pfn",
        "kvm_tdp_page_fault",
        "kvm_mmu_do_page_fault",
        "kvm_mmu_page_fault",
        "vmx_handle_exit",
        "vcpu_enter_guest",
        "vcpu_run",
        "kvm_arch_vcpu_ioctl_run",
        "kvm_vcpu_ioctl",
        "__x64_sys_ioctl",
        "do_syscall_64",
        "entry_SYSCALL_64_after_hwframe",
    ),
)
ST_NUMA, ST_MIGRATE = 0, 1

COLUMNS = ("ts", "cpu", "pid", "tgid", "comm", "flags", "name", "a", "b", "c", "d", "sid")
_DTYPES = {
    "ts": np.int64,
    "cpu": np.int32,
    "pid": np.int32,
    "tgid": np.int32,
    "comm": np.int32,
    "flags": np.int8,
    "name": np.int8,
    "a": np.uint64,
    "b": np.uint64,
    "c": np.uint64,
    "d": np.int64,
    "sid": np.int64,
}


@dataclass
class Events:
    """A set of events as numpy columns; ``sid`` indexes ``strings`` (-1: vector payload)."""

    cols: dict[str, np.ndarray]
    strings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cols["ts"])

    @staticmethod
    def empty() -> Events:
        return Events({k: np.empty(0, dtype=t) for k, t in _DTYPES.items()}, [])

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Events.empty()
        if len(parts) == 1:
            return parts[0]
        strings: list[str] = []
        sids = []
        for p in parts:
            sid = p.cols["sid"]
            sids.append(np.where(sid >= 0, sid + len(strings), -1))
            strings.extend(p.strings)
        cols = {k: np.concatenate([p.cols[k] for p in parts]) for k in COLUMNS if k != "sid"}
        cols["sid"] = np.concatenate(sids)
        return Events(cols, strings)

    def take(self, idx: np.ndarray) -> Events:
        """Rows ``idx`` (strings are shared, not compacted)."""
        return Events({k: v[idx] for k, v in self.cols.items()}, self.strings)

    def sorted(self) -> Events:
        """Merged like tracefs merges its per-CPU buffers: by time, then CPU, then order."""
        order = np.lexsort((np.arange(len(self)), self.cols["cpu"], self.cols["ts"]))
        return self.take(order)


class EventBuilder:
    """Collects events in emission order; :meth:`finish` returns :class:`Events`."""

    def __init__(self) -> None:
        self._parts: list[dict[str, np.ndarray]] = []
        self._rows: list[tuple[int, ...]] = []
        self.strings: list[str] = []

    def add(
        self,
        ts: int,
        cpu: int,
        pid: int,
        tgid: int,
        comm: int,
        flags: int,
        name: int,
        text: str | None = None,
        a: int = 0,
        b: int = 0,
        c: int = 0,
        d: int = 0,
    ) -> None:
        sid = -1
        if text is not None:
            sid = len(self.strings)
            self.strings.append(text)
        self._rows.append((ts, cpu, pid, tgid, comm, flags, name, a, b, c, d, sid))

    def _flush_rows(self) -> None:
        if not self._rows:
            return
        cols = list(zip(*self._rows, strict=True))
        self._parts.append(
            {k: np.asarray(cols[i], dtype=_DTYPES[k]) for i, k in enumerate(COLUMNS)}
        )
        self._rows = []

    def add_vec(self, n: int, **values: np.ndarray | int) -> None:
        """``n`` events; each column is an array of length ``n`` or a scalar."""
        if n == 0:
            return
        self._flush_rows()
        part = {}
        for k in COLUMNS:
            v = values.get(k, -1 if k == "sid" else 0)
            arr = np.asarray(v)
            part[k] = np.full(n, v, dtype=_DTYPES[k]) if arr.ndim == 0 else arr.astype(_DTYPES[k])
        self._parts.append(part)

    def finish(self) -> Events:
        self._flush_rows()
        if not self._parts:
            return Events.empty()
        cols = {k: np.concatenate([p[k] for p in self._parts]) for k in COLUMNS}
        return Events(cols, self.strings)


__all__ = [
    "COLUMNS",
    "FLAGS",
    "NAMES",
    "STACKS",
    "EventBuilder",
    "Events",
]
