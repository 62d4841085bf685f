"""The simulated host: processes, threads, VMAs and 2 MiB blocks with per-policy state.

Memory is modelled in 2 MiB blocks (one PMD): every range the model uses (VMAs
that are scanned, guest RAM, pinned ranges, the working set) is 2 MiB aligned,
so every 4 KiB page of a block shares the block's state. A block is one huge
PMD when the process maps its RAM with THP, otherwise 512 PTEs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tracereplay.contract import CONTRACT_POLICIES, METRICS
from tracereplay.synth.scenario import BLOCK, ProcSpec, Scenario

POLICIES = CONTRACT_POLICIES
BASE, FLAG, PROTECT, MMOPT, VMAOPT = range(5)
(
    M_INV,
    M_UNMAP,
    M_ZAP,
    M_FLUSH,
    M_IPI,
    M_PTE,
    M_HUGE,
    M_HINT,
    M_REFAULT,
    M_MIG_ATT,
    M_MIG_FAIL,
    M_MIG_PAGES,
    M_PLACE,
) = range(len(METRICS))
PAGES_PER_BLOCK = BLOCK // 4096

# spte state per block
SPTE_NEVER, SPTE_PRESENT, SPTE_ZAPPED = 0, 1, 2

# address-space layout of every simulated process (separate mms may reuse addresses)
TEXT_BASE = 0x55D000000000
HEAP_BASE = 0x55D040000000
HEAP_SIZE = 32 << 20
RAM_BASE = 0x7E00C0200000  # 2 MiB aligned, deliberately not 1 GiB aligned
DEVICE_BASE = 0x7F3000000000
STACK_BASE = 0x7F4000000000
STACK_SIZE = 8 << 20
LIB_BASE = 0x7F8000000000


@dataclass
class Vma:
    start: int
    end: int
    skip: str | None  # sched_skip_vma_numa reason, or None when scanned
    first_block: int = -1  # index of its first block (scanned VMAs)


@dataclass
class Thread:
    pid: int
    comm: int  # index into the comm table
    cpu: int
    index: int  # vCPU id / worker index


@dataclass
class Proc:
    """One simulated process (VM or not) with its blocks and per-policy state."""

    spec: ProcSpec
    tgid: int
    comm: int
    threads: list[Thread]
    vmas: list[Vma]
    # per block (all scanned VMAs in address order)
    addr: np.ndarray  # uint64 hva of the block
    region: np.ndarray  # bool: guest RAM (memslot) or the process's main region
    pinned: np.ndarray
    hot: np.ndarray
    thp: np.ndarray
    owner: np.ndarray  # thread index touching the block
    write: np.ndarray
    touch: np.ndarray  # int64 ns of the first touch (boot), 0 when populated at start
    skip_pin: np.ndarray  # [policy, block] primary MMU skips it (pin rule of the policy)
    protnone: np.ndarray  # [policy, block]
    spte: np.ndarray  # [policy, block]
    node: np.ndarray  # [policy, block]
    metrics: np.ndarray = field(default_factory=lambda: np.zeros((5, len(METRICS)), np.int64))
    offset: int = 0
    seq: int = 0
    invocations: int = 0
    boot_end: int = 0  # ns: guest boot (first touches) ends; KVM zaps contend until then
    tally: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    vmstat: dict[str, int] = field(default_factory=dict)

    @property
    def is_vm(self) -> bool:
        return self.spec.kind == "vm"

    @property
    def ram_start(self) -> int:
        return RAM_BASE

    def block_of(self, hva: int) -> int:
        """Block index of an address inside a scanned VMA."""
        for v in self.vmas:
            if v.skip is None and v.start <= hva <= v.end:
                return v.first_block + (hva - v.start) // BLOCK
        raise ValueError(f"{hva:#x} is not in a scanned VMA")

    def pinned_ranges(self) -> list[tuple[int, int]]:
        return [(RAM_BASE + off, size) for off, size in self.spec.pinned]


def _layout(spec: ProcSpec) -> list[Vma]:
    vmas = [
        Vma(TEXT_BASE, TEXT_BASE + BLOCK, "shared_ro"),
        Vma(TEXT_BASE + BLOCK, TEXT_BASE + 2 * BLOCK, "shared_ro"),
        Vma(HEAP_BASE, HEAP_BASE + HEAP_SIZE, None),
        Vma(RAM_BASE, RAM_BASE + spec.ram, None),
        # VFIO BAR / GPU aperture: VM_PFNMAP|VM_IO is not migratable -> "unsuitable"
        Vma(DEVICE_BASE, DEVICE_BASE + (16 << 20), "unsuitable"),
    ]
    for i in range(spec.vcpus):
        s = STACK_BASE + i * 2 * STACK_SIZE
        vmas.append(Vma(s - 4096, s, "inaccessible"))  # pthread guard page
        vmas.append(Vma(s, s + STACK_SIZE, None))
    vmas.append(Vma(LIB_BASE, LIB_BASE + BLOCK, "shared_ro"))
    vmas.append(Vma(LIB_BASE + BLOCK, LIB_BASE + 2 * BLOCK, "shared_ro"))
    return vmas


def build_proc(
    spec: ProcSpec,
    index: int,
    scenario: Scenario,
    comms: list[str],
    cpu_of: list[int],
    pin_rule: str,
    t0: int,
    rng: np.random.Generator,
) -> Proc:
    """Lay out one process; ``cpu_of`` gives each thread's CPU; ``pin_rule`` is the kernel's.

    ``t0`` is when the guest starts booting (its first NUMA scan), for ``boot_seconds``.
    """
    tgid = 4242 + 1000 * index
    comms.append(spec.name)
    comm = len(comms) - 1
    threads = []
    for i in range(spec.vcpus):
        comms.append(f"CPU {i}/KVM" if spec.kind == "vm" else spec.name)
        threads.append(Thread(pid=tgid + 1 + i, comm=len(comms) - 1, cpu=cpu_of[i], index=i))
    vmas = _layout(spec)
    first = 0
    addr_parts, region_parts = [], []
    for v in vmas:
        if v.skip is None:
            v.first_block = first
            n = (v.end - v.start) // BLOCK
            addr_parts.append(v.start + np.arange(n, dtype=np.uint64) * np.uint64(BLOCK))
            region_parts.append(np.full(n, v.start == RAM_BASE))
            first += n
    addr = np.concatenate(addr_parts)
    region = np.concatenate(region_parts)
    nb = len(addr)
    ram0 = vmas[3].first_block
    nram = spec.ram // BLOCK
    pinned = np.zeros(nb, bool)
    for off, size in spec.pinned:
        pinned[ram0 + off // BLOCK : ram0 + (off + size) // BLOCK] = True
    hot = np.zeros(nb, bool)
    n_hot = round(spec.hot_fraction * nram)
    if spec.pattern == "sequential":
        hot[ram0 : ram0 + n_hot] = True
    else:
        hot[ram0 + rng.permutation(nram)[:n_hot]] = True
    thp = region & spec.thp
    owner = (np.arange(nb) % max(spec.vcpus, 1)).astype(np.int32)
    write = rng.random(nb) < spec.write_fraction
    touch = np.zeros(nb, np.int64)
    if spec.boot_seconds > 0:
        rank = np.arange(nram, dtype=np.float64) / nram
        touch[ram0 : ram0 + nram] = t0 + (rank * spec.boot_seconds * 1e9).astype(np.int64) + 1
    private = not spec.shared
    # primary-MMU pin skip of the traced kernel (see kernel.KernelModel.pin_skip)
    if pin_rule == "all":
        base_skip = pinned.copy()
    elif pin_rule == "cow":
        base_skip = pinned & private & ~thp
    else:
        base_skip = np.zeros(nb, bool)
    # both RFCs' patch 2: skip maybe-DMA-pinned anon-exclusive pages and huge PMDs
    rfc_skip = base_skip | (pinned & private)
    skip_pin = np.stack([base_skip, rfc_skip, rfc_skip, base_skip, base_skip])
    node0 = np.zeros(nb, np.int8)
    if spec.mem_node == "interleave":
        node0[:] = ((addr - np.uint64(RAM_BASE)) >> np.uint64(30)).astype(np.int64) % (
            scenario.host.nodes
        )
        node0[~region] = 0
    else:
        node0[:] = int(spec.mem_node)
    spte0 = np.where(region & (touch == 0), SPTE_PRESENT, SPTE_NEVER).astype(np.int8)
    if spec.kind != "vm":
        spte0[:] = SPTE_NEVER
    proc = Proc(
        spec=spec,
        tgid=tgid,
        comm=comm,
        threads=threads,
        vmas=vmas,
        addr=addr,
        region=region,
        pinned=pinned,
        hot=hot,
        thp=thp,
        owner=owner,
        write=write,
        touch=touch,
        skip_pin=skip_pin,
        protnone=np.zeros((5, nb), bool),
        spte=np.tile(spte0, (5, 1)),
        node=np.tile(node0, (5, 1)),
    )
    proc.boot_end = t0 + int(spec.boot_seconds * 1e9) if spec.boot_seconds > 0 else 0
    proc.tally = np.zeros((spec.vcpus, scenario.host.nodes), np.int64)
    return proc


__all__ = ["METRICS", "POLICIES", "Proc", "Thread", "Vma", "build_proc"]
