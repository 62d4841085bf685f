"""Turn NUMA balancing on for a recording and put every setting back afterwards.

The switch and the scan tunables are files of :mod:`tracereplay.numa_tunables`
(procfs before 5.13, debugfs since). Shortening
``scan_delay_ms`` / ``scan_period_min_ms`` makes a few-second run get scanned
several times. On some machines debugfs is not mounted, or mounted but
locked down (reads and writes fail with EPERM); the tunables are then reported
as unavailable and the defaults (1000 ms delay / 1000 ms min period) apply.

Example::

    with numa_balancing(scan_delay_ms=100, scan_period_min_ms=100) as state:
        run_workload(...)
    print(state.applied)   # what was actually set, for the manifest
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from .shared import numa_tunables

DEBUGFS, SYSCTL, TUNABLES = numa_tunables.DEBUGFS, numa_tunables.SYSCTL, numa_tunables.TUNABLES
tunable_path = numa_tunables.tunable_path

__all__ = ["TUNABLES", "NumaState", "numa_balancing", "numa_scan_seq"]


_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class NumaState:
    """Settings in effect inside the context (``None`` = could not be read)."""

    numa_balancing: str = ""
    tunables: dict[str, int | None] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def _mount_debugfs() -> bool:
    """Mount debugfs at /sys/kernel/debug if it is not; True if we mounted it."""
    if os.path.isdir(f"{DEBUGFS}/sched") or not os.path.isdir(DEBUGFS):
        return False
    with open("/proc/filesystems", encoding="ascii") as f:
        if "debugfs" not in f.read():
            return False
    return bool(_libc.mount(b"debugfs", DEBUGFS.encode(), b"debugfs", 0, None) == 0)


@contextlib.contextmanager
def numa_balancing(
    mode: int = 1,
    *,
    scan_delay_ms: int | None = None,
    scan_period_min_ms: int | None = None,
    scan_period_max_ms: int | None = None,
    scan_size_mb: int | None = None,
    mount_debugfs: bool = True,
) -> Iterator[NumaState]:
    """Enable NUMA balancing (``mode``: 1 normal, 2 tiering, 3 both) for the block.

    Every value changed is restored on exit, also on exceptions and Ctrl-C;
    a debugfs mount made here is unmounted again.
    """
    wanted = {
        "scan_delay_ms": scan_delay_ms,
        "scan_period_min_ms": scan_period_min_ms,
        "scan_period_max_ms": scan_period_max_ms,
        "scan_size_mb": scan_size_mb,
    }
    state = NumaState()
    saved: list[tuple[str, str]] = []  # (path, old value), restored in reverse order
    mounted = False
    try:
        old = _read(SYSCTL)
        saved.append((SYSCTL, old))
        _write(SYSCTL, str(mode))
        state.numa_balancing = _read(SYSCTL)

        if mount_debugfs and any(v is not None for v in wanted.values()):
            mounted = _mount_debugfs()
        for name in TUNABLES:
            path = tunable_path(name)
            try:
                cur = _read(path)
            except OSError as e:
                state.tunables[name] = None
                if wanted[name] is not None:
                    state.notes.append(f"{name}: cannot read {path}: {e.strerror}")
                continue
            value = wanted[name]
            if value is not None and str(value) != cur:
                try:
                    _write(path, str(value))
                except OSError as e:
                    state.notes.append(f"{name}: cannot write {path}: {e.strerror}")
                else:
                    saved.append((path, cur))
                    state.applied[name] = value
                    cur = _read(path)
            state.tunables[name] = int(cur)
        yield state
    finally:
        errors: list[str] = []
        for path, old_value in reversed(saved):
            try:
                _write(path, old_value)
            except OSError as e:
                errors.append(f"{path}: {e}")
        if mounted and _libc.umount2(DEBUGFS.encode(), 0) != 0:
            errors.append(f"umount {DEBUGFS}: errno {ctypes.get_errno()}")
        if errors:
            raise RuntimeError("could not restore NUMA balancing settings: " + "; ".join(errors))


def numa_scan_seq(pid: int | str = "self") -> int | None:
    """``mm->numa_scan_seq`` of a process, read from ``/proc/<pid>/sched``.

    The scanner bumps it each time it wraps around the address space
    (``reset_ptenuma_scan``); ``None`` if the line is absent.
    """
    try:
        with open(f"/proc/{pid}/sched", encoding="ascii") as f:
            for line in f:
                if line.startswith("mm->numa_scan_seq"):
                    return int(line.split(":")[1])
    except OSError:
        return None
    return None
