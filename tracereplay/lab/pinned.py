"""Anonymous memory with a long-term pin, in pure Python.

VFIO pins guest RAM with ``pin_user_pages(FOLL_LONGTERM)``; so does io_uring
when user buffers are registered (``IORING_REGISTER_BUFFERS``). After that,
``folio_maybe_dma_pinned()`` is true for those pages, which is exactly what the
NUMA-balancing skip rules test (``change_pte_range``, 6.10+ for COW mappings;
5.17..6.9 test the page refcount, which the pin raises by GUP_PIN_COUNTING_BIAS).
io_uring therefore gives us a VFIO-like pin without a device.

Example::

    with AnonRegion(64 << 20) as region, IoUringPin(region.addr, 16 << 20):
        ...  # first 16 MiB are long-term pinned, the rest is not

Both pieces are one VMA: pinning does not split it, so the pinned and
unpinned parts are scanned by the same ``change_prot_numa`` pass.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import resource
from types import TracebackType

from .shared import units

__all__ = [
    "MAX_REGISTERED_BUFFER",
    "PAGE_SIZE",
    "AnonRegion",
    "IoUringPin",
    "parse_size",
    "pinned_vm_kib",
]

PAGE_SIZE = mmap.PAGESIZE
# io_uring refuses registered buffers larger than 1 GiB (io_buffer_validate).
MAX_REGISTERED_BUFFER = 1 << 30

_NR_IO_URING_SETUP = 425  # x86-64 and the generic table agree on these
_NR_IO_URING_REGISTER = 427
_IORING_REGISTER_BUFFERS = 0
_IORING_UNREGISTER_BUFFERS = 1
_IO_URING_PARAMS_SIZE = 120  # sizeof(struct io_uring_params)

_MAP_FAILED = ctypes.c_void_p(-1).value
_MADV_HUGEPAGE = 14
_MADV_NOHUGEPAGE = 15
_MADV_POPULATE_WRITE = 23  # 5.14+: fault pages in without user page faults

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
_libc.syscall.restype = ctypes.c_long


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


parse_size = units.parse_size  # tracereplay.units: the one size parser


class AnonRegion:
    """A private anonymous read/write mapping at a fixed address.

    Mapped with libc ``mmap`` (not the :mod:`mmap` module) so that the address
    is stable and nothing in Python holds a buffer export that would block
    ``munmap``. ``thp=False`` (default) asks for 4 KiB pages with
    MADV_NOHUGEPAGE: 6.18 does not test pins on huge PMDs, so THP would blur
    the pinned/unpinned contrast the fixtures are meant to show.
    """

    def __init__(self, size: int, *, thp: bool = False) -> None:
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"size must be a positive multiple of {PAGE_SIZE}")
        addr = _libc.mmap(
            None,
            size,
            mmap.PROT_READ | mmap.PROT_WRITE,
            mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
            -1,
            0,
        )
        if addr in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            raise OSError(err, f"mmap({size}): {os.strerror(err)}")
        self.addr: int = addr
        self.size = size
        self.thp = thp
        _check(_libc.madvise(addr, size, _MADV_HUGEPAGE if thp else _MADV_NOHUGEPAGE), "madvise")

    def populate(self) -> None:
        """Make every page present and writable before pinning/scanning.

        MADV_POPULATE_WRITE faults the pages in inside the kernel, so a trace
        is not flooded with one ``page_fault_user`` per page of first touch;
        older kernels fall back to touching each page from user space.
        """
        if _libc.madvise(self.addr, self.size, _MADV_POPULATE_WRITE) == 0:
            return
        for off in range(0, self.size, PAGE_SIZE):
            ctypes.memset(self.addr + off, 1, 1)

    def close(self) -> None:
        if self.addr:
            _check(_libc.munmap(self.addr, self.size), "munmap")
            self.addr = 0

    def __enter__(self) -> AnonRegion:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _raise_memlock(nbytes: int) -> None:
    """Make sure RLIMIT_MEMLOCK allows ``nbytes`` more (root may raise the hard limit).

    io_uring only charges the limit without CAP_IPC_LOCK, but being generous
    here costs nothing and keeps the helper usable by non-root callers whose
    limit is already high enough.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY or soft >= nbytes * 2:
        return
    try:
        resource.setrlimit(
            resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )
    except (ValueError, OSError):
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))


class IoUringPin:
    """Long-term pin ``[addr, addr+size)`` by registering it as io_uring buffers.

    The range is split into <= 1 GiB iovecs. The pin lasts until :meth:`close`,
    which unregisters the buffers (synchronous unpin) and closes the ring.
    """

    def __init__(self, addr: int, size: int) -> None:
        if addr % PAGE_SIZE or size <= 0 or size % PAGE_SIZE:
            raise ValueError("pinned range must be page aligned and non-empty")
        self.addr = addr
        self.size = size
        self.fd = -1
        _raise_memlock(size)
        params = (ctypes.c_uint8 * _IO_URING_PARAMS_SIZE)()
        self.fd = _check(
            _libc.syscall(_NR_IO_URING_SETUP, ctypes.c_uint(1), ctypes.byref(params)),
            "io_uring_setup",
        )
        chunks = [
            (addr + off, min(MAX_REGISTERED_BUFFER, size - off))
            for off in range(0, size, MAX_REGISTERED_BUFFER)
        ]
        iovecs = (_IoVec * len(chunks))(*(_IoVec(base, length) for base, length in chunks))
        try:
            _check(
                _libc.syscall(
                    _NR_IO_URING_REGISTER,
                    ctypes.c_int(self.fd),
                    ctypes.c_uint(_IORING_REGISTER_BUFFERS),
                    iovecs,
                    ctypes.c_uint(len(chunks)),
                ),
                "io_uring_register(IORING_REGISTER_BUFFERS)",
            )
        except OSError:
            os.close(self.fd)
            self.fd = -1
            raise

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            _check(
                _libc.syscall(
                    _NR_IO_URING_REGISTER,
                    ctypes.c_int(self.fd),
                    ctypes.c_uint(_IORING_UNREGISTER_BUFFERS),
                    None,
                    ctypes.c_uint(0),
                ),
                "io_uring_register(IORING_UNREGISTER_BUFFERS)",
            )
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> IoUringPin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def pinned_vm_kib(pid: int | str = "self") -> int:
    """``VmPin`` of a process in KiB (io_uring charges its pins to mm->pinned_vm)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmPin:"):
                return int(line.split()[1])
    return 0
