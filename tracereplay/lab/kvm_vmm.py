"""A minimal KVM VMM in pure Python (ctypes ioctls), with partly pinned guest RAM.

It creates a VM with one memory slot of anonymous private memory, long-term
pins a prefix of it with io_uring (what VFIO does to guest RAM), and runs N
vCPU threads. Each vCPU runs 23 bytes of 32-bit protected-mode code (flat
segments, no paging) that writes the last byte of every 4 KiB guest
page in a loop and does ``out %al, $0x10`` every few passes; the VMM counts
the exit and re-enters. KVM_RUN goes through libc ``ioctl`` via ctypes,
which releases the GIL, so the vCPUs really run in parallel.

Because the vCPU threads share the VMM's mm (mm_users > 1) and the guest
keeps touching its memory, NUMA balancing scans the slot: every scan chunk
reaches KVM as ``kvm:kvm_unmap_hva_range`` (mmu-notifier invalidation of the
VMM's mm), KVM zaps its shadow/TDP entries, and the vCPUs fault them back in
through KVM's GUP (``hva_to_pfn``), which is where the NUMA hint fault is
taken -- so guest accesses do *not* show up as ``exceptions:page_fault_user``.

Found by trying on this machine (6.18, nested, PVM-flavoured KVM ``kvm_pvm``
with ``pvm_native=Y``, ``tdp_mmu=N``): KVM_CREATE_VM type 0, one
KVM_SET_USER_MEMORY_REGION slot and 32-bit protected mode set up with
KVM_SET_SREGS run as on VMX; no KVM_SET_TSS_ADDR, CPUID or MSR setup is
needed for this guest.

Command line (same shape as :mod:`.workload`)::

    python -m tracereplay.lab.kvm_vmm --mem 256M --pinned 192M --threads 2 --seconds 8

prints one JSON line when the VM is built and before the vCPUs start (and a
second one with exits, pages touched and ``numa_scan_seq`` when done)::

    {"pid": ..., "comm": "tr-kvm-vmm", "memslots": [{"slot": 0, "hva_start": ...,
     "size": ..., "gpa_start": 0}], "pinned": {"hva_start": ..., "size": ...}, ...}
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import FrameType, TracebackType

from .churn import Churn, dontfork
from .layout import PIN_HOW, publish_layout
from .numa import numa_scan_seq
from .pinned import PAGE_SIZE, AnonRegion, IoUringPin, parse_size
from .workload import set_comm

__all__ = ["GUEST_CODE", "KvmVm", "VmInfo", "main", "run_vm"]

# ioctl numbers from include/uapi/linux/kvm.h (KVMIO = 0xAE)
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_SET_USER_MEMORY_REGION = 0x4020AE46
KVM_RUN = 0xAE80
KVM_GET_REGS = 0x8090AE81
KVM_SET_REGS = 0x4090AE82
KVM_GET_SREGS = 0x8138AE83
KVM_SET_SREGS = 0x4138AE84

KVM_EXIT_IO = 2
KVM_EXIT_HLT = 5
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTERNAL_ERROR = 17
EXIT_PORT = 0x10

# 32-bit guest; registers: ebx = first byte to touch (page start + 0xfff, so the
# code in page 0 is never overwritten), ecx = end of RAM, ebp = passes per exit,
# edi = passes left, esi = current pointer, al = vCPU index + 1 (the byte
# written, never 0). Entry point is `inner`.
#   0: mov %ebx,%esi        2: mov %al,(%esi)       4: add $0x1000,%esi
#   a: cmp %ecx,%esi        c: jb 2                 e: dec %edi
#   f: jne 0               11: mov %ebp,%edi       13: out %al,$0x10
#  15: jmp 0
GUEST_CODE = bytes.fromhex("89de880681c60010000039ce72f44f75ef89efe610ebe9")
GUEST_ENTRY = 0x2
CODE_GPA = 0x0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc.ioctl.restype = ctypes.c_int


_REG_NAMES = "rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags"


class KvmRegs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in _REG_NAMES.split()]


class KvmSegment(ctypes.Structure):
    _fields_ = [
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint32),
        ("selector", ctypes.c_uint16),
    ] + [
        (n, ctypes.c_uint8)
        for n in ["type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable", "padding"]
    ]


class KvmDtable(ctypes.Structure):
    _fields_ = [
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint16),
        ("padding", ctypes.c_uint16 * 3),
    ]


class KvmSregs(ctypes.Structure):
    _fields_ = (
        [(n, KvmSegment) for n in ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"]]
        + [("gdt", KvmDtable), ("idt", KvmDtable)]
        + [(n, ctypes.c_uint64) for n in ["cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"]]
        + [("interrupt_bitmap", ctypes.c_uint64 * 4)]
    )


class KvmUserspaceMemoryRegion(ctypes.Structure):
    _fields_ = [
        ("slot", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("guest_phys_addr", ctypes.c_uint64),
        ("memory_size", ctypes.c_uint64),
        ("userspace_addr", ctypes.c_uint64),
    ]


assert ctypes.sizeof(KvmSregs) == 0x138 and ctypes.sizeof(KvmRegs) == 0x90


def _ioctl(fd: int, request: int, arg: object = None) -> int:
    ret: int = _libc.ioctl(fd, request, arg)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ioctl({request:#x}): {os.strerror(err)}")
    return ret


@dataclass
class VmInfo:
    """Manifest facts about the running VM: memslots, pinned range, threads."""

    pid: int
    comm: str
    memslots: list[dict[str, int]]
    pinned: dict[str, int]
    region: dict[str, int]
    threads: int
    seconds: float
    exits: list[int] = field(default_factory=list)  # per vCPU, filled in when done
    pages_touched: int = 0  # guest pages whose last byte the guest wrote (proof it ran)
    numa_scan_seq: int | None = None  # mm->numa_scan_seq at the end (/proc/self/sched)
    churn: dict[str, int] = field(default_factory=dict)  # churn activities done (--churn)


class KvmVm:
    """One VM, one memslot at GPA 0 backed by ``region``, ``nr_vcpus`` vCPUs."""

    def __init__(self, region: AnonRegion, nr_vcpus: int, passes_per_exit: int = 4) -> None:
        if region.size > 1 << 32:
            raise ValueError("the 32-bit guest can address at most 4 GiB")
        self.region = region
        self.kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        self.vm = -1
        self.vcpus: list[int] = []
        self.runs: list[mmap.mmap] = []
        try:
            if _ioctl(self.kvm, KVM_GET_API_VERSION) != 12:
                raise OSError("unexpected KVM API version")
            self.vm = _ioctl(self.kvm, KVM_CREATE_VM, 0)
            slot = KvmUserspaceMemoryRegion(0, 0, 0, region.size, region.addr)
            _ioctl(self.vm, KVM_SET_USER_MEMORY_REGION, ctypes.byref(slot))
            ctypes.memmove(region.addr + CODE_GPA, GUEST_CODE, len(GUEST_CODE))
            run_size = _ioctl(self.kvm, KVM_GET_VCPU_MMAP_SIZE)
            for index in range(nr_vcpus):
                fd = _ioctl(self.vm, KVM_CREATE_VCPU, index)
                self.vcpus.append(fd)
                self.runs.append(
                    mmap.mmap(fd, run_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                )
                self._setup_vcpu(fd, index, nr_vcpus, passes_per_exit)
        except BaseException:
            self.close()
            raise

    def _setup_vcpu(self, fd: int, index: int, nr_vcpus: int, passes_per_exit: int) -> None:
        sregs = KvmSregs()
        _ioctl(fd, KVM_GET_SREGS, ctypes.byref(sregs))
        for name in ("cs", "ds", "es", "fs", "gs", "ss"):
            seg: KvmSegment = getattr(sregs, name)
            seg.base, seg.limit, seg.g, seg.present, seg.s, seg.dpl, seg.db, seg.l = (
                0,
                0xFFFFFFFF,
                1,
                1,
                1,
                0,
                1,
                0,
            )
            seg.type, seg.selector = (11, 0x8) if name == "cs" else (3, 0x10)  # code r/x, data r/w
        sregs.cr0 |= 1  # PE, no paging
        _ioctl(fd, KVM_SET_SREGS, ctypes.byref(sregs))
        pages = self.region.size // PAGE_SIZE
        regs = KvmRegs()
        regs.rflags = 0x2
        regs.rip = CODE_GPA + GUEST_ENTRY
        regs.rbx = PAGE_SIZE - 1
        regs.rcx = self.region.size
        # stagger the vCPUs so they do not take faults on the same page together
        regs.rsi = (pages * index // nr_vcpus) * PAGE_SIZE + PAGE_SIZE - 1
        regs.rbp = regs.rdi = passes_per_exit
        regs.rax = index + 1
        _ioctl(fd, KVM_SET_REGS, ctypes.byref(regs))

    def run_vcpu(self, index: int, stop: threading.Event, exits: list[int]) -> None:
        """KVM_RUN loop of one vCPU until ``stop`` is set (and the vCPU kicked)."""
        set_comm(f"tr-vcpu-{index}")
        fd, run = self.vcpus[index], self.runs[index]
        while not stop.is_set():
            ret = _libc.ioctl(fd, KVM_RUN, None)
            if ret < 0:
                err = ctypes.get_errno()
                if err == 4:  # EINTR: kicked by a signal, or immediate_exit
                    continue
                raise OSError(err, f"KVM_RUN: {os.strerror(err)}")
            reason = int.from_bytes(run[8:12], "little")
            if (
                reason == KVM_EXIT_IO and int.from_bytes(run[34:36], "little") == EXIT_PORT
            ) or reason == KVM_EXIT_HLT:
                exits[index] += 1
            else:
                raise RuntimeError(f"vCPU {index}: unexpected exit {reason}: {run[32:64].hex()}")

    def kick(self, thread_ids: list[int]) -> None:
        """Make every vCPU leave KVM_RUN: immediate_exit covers the not-yet-entered case."""
        for run in self.runs:
            run[1] = 1
        for tid in thread_ids:
            signal.pthread_kill(tid, signal.SIGUSR1)

    def close(self) -> None:
        for run in self.runs:
            run.close()
        for fd in [*self.vcpus, self.vm, self.kvm]:
            if fd >= 0:
                os.close(fd)
        self.runs, self.vcpus, self.vm, self.kvm = [], [], -1, -1

    def __enter__(self) -> KvmVm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    """SIGUSR1 only exists to interrupt KVM_RUN (EINTR)."""


def run_vm(
    mem: int,
    pinned: int,
    vcpus: int = 2,
    seconds: float = 8.0,
    *,
    passes_per_exit: int = 4,
    comm: str = "tr-kvm-vmm",
    churn: list[str] | None = None,
    churn_period: float = 0.02,
    churn_tail: int = 64 << 20,
    on_ready: Callable[[VmInfo], None] | None = None,
) -> VmInfo:
    """Build the VM, pin the first ``pinned`` bytes of guest RAM, run ``vcpus`` vCPUs.

    ``churn``: activities of :mod:`.churn` run by a thread beside the vCPUs, one
    every ``churn_period`` seconds (madvise walks the last ``churn_tail`` bytes of
    the unpinned guest RAM). ``on_ready(info)`` is called before the vCPUs start.
    Must run in the main thread (it installs a SIGUSR1 handler used to kick the vCPUs).
    """
    if vcpus < 1 or not 0 <= pinned <= mem:
        raise ValueError("need >= 1 vCPU and pinned within mem")
    set_comm(comm)
    previous = signal.signal(signal.SIGUSR1, _ignore_signal)
    try:
        with AnonRegion(mem) as region:
            region.populate()
            pin = IoUringPin(region.addr, pinned) if pinned else None
            try:
                with KvmVm(region, vcpus, passes_per_exit) as vm:
                    info = VmInfo(
                        pid=os.getpid(),
                        comm=comm,
                        memslots=[
                            {"slot": 0, "hva_start": region.addr, "size": mem, "gpa_start": 0}
                        ],
                        pinned={"hva_start": region.addr, "size": pinned},
                        region={"hva_start": region.addr, "size": mem},
                        threads=vcpus,
                        seconds=seconds,
                        exits=[0] * vcpus,
                    )
                    layout = publish_layout(_layout(info))
                    if churn and "cow" in churn:
                        dontfork(region.addr, mem)  # as QEMU does: fork must not COW guest RAM
                    tail = min(churn_tail, mem - pinned)
                    mover = Churn(churn or [], region.addr + mem - tail, tail, churn_period)
                    try:
                        if on_ready is not None:
                            on_ready(info)
                        _run_vcpus(vm, info, seconds, mover)
                    finally:
                        mover.stop()
                        os.close(layout)
                    if mover.error is not None:
                        raise mover.error
                    info.churn = dict(mover.done)
                    info.numa_scan_seq = numa_scan_seq()
                    info.pages_touched = sum(
                        1
                        for off in range(PAGE_SIZE - 1, mem, PAGE_SIZE)
                        if ctypes.c_uint8.from_address(region.addr + off).value
                    )
            finally:
                if pin is not None:
                    pin.close()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    return info


def _layout(info: VmInfo) -> dict[str, object]:
    """What :func:`~.layout.publish_layout` tells a recorder about this VM."""
    pinned = [dict(info.pinned, how=PIN_HOW)] if info.pinned["size"] else []
    return {
        "kind": "vm",
        "comm": info.comm,
        "vcpus": info.threads,
        "memslots": info.memslots,
        "pinned": pinned,
    }


def _run_vcpus(vm: KvmVm, info: VmInfo, seconds: float, churn: Churn) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            vm.run_vcpu(index, stop, info.exits)
        except (OSError, RuntimeError) as e:
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(info.threads)]
    try:
        for t in threads:
            t.start()
        churn.start()
        stop.wait(seconds)
    finally:
        # also on Ctrl-C: the vCPUs must be out of KVM_RUN before the fds close
        stop.set()
        while any(t.is_alive() for t in threads):
            vm.kick([t.ident for t in threads if t.ident is not None and t.is_alive()])
            for t in threads:
                t.join(0.05)
    if errors:
        raise errors[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tracereplay.lab.kvm_vmm", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--mem", default="256M", help="guest RAM (one memslot at GPA 0)")
    ap.add_argument("--pinned", default="64M", help="long-term pinned prefix of guest RAM")
    ap.add_argument("--threads", type=int, default=2, help="vCPUs")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--passes-per-exit", type=int, default=4, help="guest passes between I/O exits")
    ap.add_argument("--comm", default="tr-kvm-vmm")
    ap.add_argument(
        "--churn", default="", help="comma-separated: madvise,munmap,mprotect,cow (see churn.py)"
    )
    ap.add_argument("--churn-ms", type=float, default=20.0, help="one activity every N ms")
    ap.add_argument("--churn-tail", default="64M", help="madvise walks this much of the RAM end")
    args = ap.parse_args(argv)

    def ready(info: VmInfo) -> None:
        d = asdict(info)
        del d["exits"], d["pages_touched"], d["numa_scan_seq"], d["churn"]
        print(json.dumps(d), flush=True)

    info = run_vm(
        parse_size(args.mem),
        parse_size(args.pinned),
        args.threads,
        args.seconds,
        passes_per_exit=args.passes_per_exit,
        comm=args.comm,
        churn=[a for a in args.churn.split(",") if a],
        churn_period=args.churn_ms / 1000,
        churn_tail=parse_size(args.churn_tail),
        on_ready=ready,
    )
    print(
        json.dumps(
            {
                "pid": info.pid,
                "exits": info.exits,
                "pages_touched": info.pages_touched,
                "numa_scan_seq": info.numa_scan_seq,
                "churn": info.churn,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
