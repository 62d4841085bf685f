"""NUMA balancing around a recording: warn when it is off, switch it on and back.

With ``kernel.numa_balancing = 0`` (the default on many hosts, including this
development machine) the kernel runs no ``task_numa_work`` at all: the trace
then holds no NUMA-scan invalidations and nothing to replay. ``record``
says so, and ``--numa-balancing on`` enables it for the recording only.

NUMA balancing is a global switch: two runs restoring it in crossed order
would leave it changed, so every change happens under a host-wide lock
(:func:`numa_lock`, shared with ``lab run``).

Example::

    with numa_balancing_on() as state:   # takes numa_lock()
        ...                              # record; restored on exit, Ctrl-C or SIGTERM
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from tracereplay.lab.numa import NumaState, numa_balancing
from tracereplay.record.tracefs import RecordError

__all__ = ["LOCK_PATH", "OFF_WARNING", "numa_balancing_on", "numa_lock"]

LOCK_PATH = Path("/run/lock" if os.path.isdir("/run/lock") else "/tmp") / "tracereplay-lab.lock"

OFF_WARNING = (
    "kernel.numa_balancing is 0: the kernel does no NUMA scanning, so this recording will hold "
    "no NUMA-scan invalidations, hint faults or migrations (nothing to replay); add "
    "--numa-balancing on to enable it for the recording only (it is restored afterwards)"
)


@contextlib.contextmanager
def numa_lock(timeout: float = 120.0, path: Path = LOCK_PATH) -> Iterator[None]:
    """Hold the host-wide NUMA-settings lock (flock), waiting up to ``timeout`` seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RecordError(
                        f"another recording or lab run holds {path} (waited {timeout:.0f} s)"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing drops the lock


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a setting is changed or restored.

    A second Ctrl-C must not cut a restore in half; the signal is delivered
    (and handled as usual) as soon as the block ends.
    """
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def numa_balancing_on(lock_timeout: float = 120.0) -> Iterator[NumaState]:
    """``kernel.numa_balancing = 1`` inside the block, the previous value after it.

    Restored on normal exit, exceptions, Ctrl-C and SIGTERM (which the recorder
    turns into KeyboardInterrupt); only SIGKILL can leave it switched on.
    """
    with numa_lock(lock_timeout):
        cm = numa_balancing(1)
        with _signals_deferred():
            state = cm.__enter__()
        try:
            yield state
        except BaseException as e:
            with _signals_deferred():
                if not cm.__exit__(type(e), e, e.__traceback__):
                    raise
        else:
            with _signals_deferred():
                cm.__exit__(None, None, None)
