"""Memory churn beside NUMA scans: invalidations of known, non-NUMA causes.

A ``tr-churn`` thread of the lab VMM (:mod:`.kvm_vmm`, ``--churn``) loops over
the chosen activities, one per ``period`` seconds, so that a recording holds
KVM invalidations whose cause is known by construction next to the NUMA-scan
ones. Every activity is one the cause inference must tell apart from a scan:

* ``madvise``  -- madvise(MADV_DONTNEED) of consecutive 4 MiB ranges walking
  the last ``tail`` bytes of guest RAM (the unpinned end), each lap shifted by
  2 MiB: each zaps guest pages, like a balloon or virtio-mem freeing RAM.
  Consecutive ranges tile the tail, as the chunks of a NUMA scan pass tile the
  address space, and a scan chunk ends on a 2 MiB boundary, where a lap of
  4 MiB ranges may start;
* ``munmap``   -- mmap + touch + munmap of an 8 MiB scratch mapping (no memslot);
* ``mprotect`` -- mprotect(PROT_READ) then back to read/write of a touched
  8 MiB scratch mapping;
* ``cow``      -- fork() a child that waits on a pipe, write one byte in every
  page of a 256 KiB scratch mapping (copy-on-write faults: one 4 KiB
  invalidation each, raised by ``wp_page_copy``), then let the child exit.
  Guest RAM is MADV_DONTFORK, as QEMU does, so fork does not make it COW.

The thread makes syscalls all the time, so task_numa_work often runs in it
(on its return to user space, right after a madvise): its
``sched_skip_vma_numa`` events then come microseconds after a madvise
invalidation, which is what misleads the stack-less seed rule.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading

from .pinned import PAGE_SIZE

__all__ = ["ACTIVITIES", "Churn", "dontfork"]

ACTIVITIES = ("madvise", "munmap", "mprotect", "cow")
MADV_DONTNEED = 4
MADV_DONTFORK = 10
STEP = 4 << 20
SCRATCH = 8 << 20
COW_SIZE = 256 << 10

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_RW = mmap.PROT_READ | mmap.PROT_WRITE


def _ok(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _map(size: int) -> int:
    addr = _libc.mmap(None, size, _RW, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        err = ctypes.get_errno()
        raise OSError(err, f"mmap({size}): {os.strerror(err)}")
    return int(addr)


def _touch(addr: int, size: int) -> None:
    for off in range(0, size, PAGE_SIZE):
        ctypes.memset(addr + off, 1, 1)


def dontfork(addr: int, size: int) -> None:
    """MADV_DONTFORK: a fork() leaves this range out of the child (no COW of guest RAM)."""
    _ok(_libc.madvise(addr, size, MADV_DONTFORK), "madvise(DONTFORK)")


class Churn:
    """The churn thread; counts what it did per activity (``done``)."""

    def __init__(
        self, activities: list[str], tail_start: int, tail_size: int, period: float
    ) -> None:
        bad = sorted(set(activities) - set(ACTIVITIES))
        if bad:
            raise ValueError(f"unknown churn activity {bad[0]!r} (choose from {ACTIVITIES})")
        self.activities = activities
        self.tail_start, self.tail_size = tail_start, tail_size - tail_size % STEP
        self.period = period
        self.done = dict.fromkeys(activities, 0)
        self._next_tail = 0
        self._lap = 0
        self._protect_buf = _map(SCRATCH) if "mprotect" in activities else 0
        self._cow_buf = _map(COW_SIZE) if "cow" in activities else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        if self.activities:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for addr, size in ((self._protect_buf, SCRATCH), (self._cow_buf, COW_SIZE)):
            if addr:
                _libc.munmap(addr, size)
        self._protect_buf = self._cow_buf = 0

    def _run(self) -> None:
        from .workload import set_comm

        set_comm("tr-churn")
        i = 0
        try:
            while not self._stop.wait(self.period):
                what = self.activities[i % len(self.activities)]
                getattr(self, f"_{what}")()
                self.done[what] += 1
                i += 1
        except OSError as e:  # reported by the VMM when it stops
            self.error = e

    def _madvise(self) -> None:
        if self.tail_size < STEP:
            return
        addr = self.tail_start + self._next_tail
        self._next_tail += STEP
        if self._next_tail + STEP > self.tail_size:  # next lap, shifted by 2 MiB
            self._lap += 1
            self._next_tail = (STEP // 2) * (self._lap % 2)
        _ok(_libc.madvise(addr, STEP, MADV_DONTNEED), "madvise(DONTNEED)")

    def _munmap(self) -> None:
        addr = _map(SCRATCH)
        _touch(addr, SCRATCH)
        _ok(_libc.munmap(addr, SCRATCH), "munmap")

    def _mprotect(self) -> None:
        _touch(self._protect_buf, SCRATCH)
        _ok(_libc.mprotect(self._protect_buf, SCRATCH, mmap.PROT_READ), "mprotect(READ)")
        _ok(_libc.mprotect(self._protect_buf, SCRATCH, _RW), "mprotect(READ|WRITE)")

    def _cow(self) -> None:
        _touch(self._cow_buf, COW_SIZE)  # present and exclusive before the fork
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: hold the pages shared until the parent is done
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        os.close(r)
        try:
            _touch(self._cow_buf, COW_SIZE)  # one COW fault per page
        finally:
            os.close(w)
            os.waitpid(pid, 0)
