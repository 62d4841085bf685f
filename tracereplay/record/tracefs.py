"""tracefs access for the recorder: find or mount it, change files, put them back.

Every change goes through :class:`TraceDir`, which remembers the first value
of each file it writes and restores them all in :meth:`TraceDir.restore`
(tracing_on last, so nothing is traced while the rest is put back). By
default the recorder works in its own tracefs *instance*
(``instances/tracereplay-PID``): a private ring buffer, event enables, pid
filter and triggers, so it neither disturbs nor is disturbed by other tracing
on the host (including a second recorder), and the top-level files are never
written at all.

Example::

    root, mounted = find_tracefs()
    tdir = TraceDir.create_instance(root, "tracereplay-42")
    try:
        tdir.write("events/tlb/tlb_flush/enable", "1")
    finally:
        tdir.restore()
        tdir.remove()
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import time
from pathlib import Path

from tracereplay.errors import TraceReplayError

__all__ = ["TRACEFS_PATHS", "RecordError", "TraceDir", "find_tracefs", "unmount_tracefs"]

TRACEFS_PATHS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

_libc = ctypes.CDLL(None, use_errno=True)


class RecordError(TraceReplayError):
    """A recording cannot start or finish; the message says what is missing."""


def find_tracefs(*, mount: bool = True) -> tuple[Path, bool]:
    """Return ``(tracefs root, mounted_here)``; mount it at /sys/kernel/tracing if needed."""
    for path in TRACEFS_PATHS:
        if (path / "available_events").exists():
            return path, False
    target = TRACEFS_PATHS[0]
    if not mount:
        raise RecordError(f"tracefs is not mounted at {target}")
    if os.geteuid() != 0:
        raise RecordError(f"tracefs is not mounted at {target} and mounting it needs root")
    with open("/proc/filesystems", encoding="ascii") as f:
        if "tracefs" not in f.read():
            raise RecordError("this kernel has no tracefs (built without CONFIG_TRACING?)")
    if not target.is_dir():
        raise RecordError(f"{target} does not exist (is sysfs mounted?)")
    if _libc.mount(b"nodev", str(target).encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise RecordError(f"cannot mount tracefs at {target}: {os.strerror(err)}")
    if not (target / "available_events").exists():
        raise RecordError(f"mounted tracefs at {target} but it has no available_events")
    return target, True


def unmount_tracefs(path: Path) -> str | None:
    """Undo :func:`find_tracefs`'s mount; returns an error message or None."""
    if _libc.umount2(str(path).encode(), 0) != 0:
        return f"umount {path}: {os.strerror(ctypes.get_errno())}"
    return None


class TraceDir:
    """The top-level tracefs directory or one instance, with exact restore."""

    def __init__(self, root: Path, *, instance: str | None = None) -> None:
        self.root = root
        self.instance = instance  # name under instances/, None for the top level
        self.created = False
        self.touched: list[str] = []  # files written, relative to root, in order
        self._saved: dict[str, str] = {}
        self._triggers_added: list[tuple[str, str]] = []
        self._pids_saved: str | None = None
        self._cleared = False  # the buffer was cleared here: what it holds is ours

    @staticmethod
    def remove_stale_instances(tracefs: Path, prefix: str = "tracereplay-") -> list[str]:
        """Remove our instances whose recorder process is gone (killed with SIGKILL).

        A recorder always removes its own instance, but a process killed with
        SIGKILL cannot; its ring buffer would otherwise stay allocated.
        """
        removed = []
        for path in sorted((tracefs / "instances").glob(f"{prefix}*")):
            pid = path.name[len(prefix) :]
            if not pid.isdigit() or Path(f"/proc/{pid}").exists():
                continue
            try:
                path.rmdir()
                removed.append(path.name)
            except OSError:
                continue
        return removed

    @classmethod
    def create_instance(cls, tracefs: Path, name: str) -> TraceDir:
        TraceDir.remove_stale_instances(tracefs)
        path = tracefs / "instances" / name
        try:
            path.mkdir()
        except FileExistsError:
            raise RecordError(f"tracefs instance {path} already exists") from None
        except OSError as e:
            raise RecordError(f"cannot create tracefs instance {path}: {e.strerror}") from None
        tdir = cls(path, instance=name)
        tdir.created = True
        return tdir

    # -- reading ---------------------------------------------------------

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text().strip()

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def cpus(self) -> list[int]:
        return sorted(
            int(p.name[3:]) for p in (self.root / "per_cpu").iterdir() if p.name[3:].isdigit()
        )

    def _stats_per_cpu(self, keys: tuple[str, ...]) -> dict[int, int]:
        """Sum of ``keys`` in each CPU's ``per_cpu/cpuN/stats``."""
        out: dict[int, int] = {}
        for cpu in self.cpus():
            try:
                stats = self.read(f"per_cpu/cpu{cpu}/stats")
            except OSError:
                continue
            n = 0
            for key in keys:
                m = re.search(rf"^{key}:\s*(\d+)", stats, re.M)
                n += int(m.group(1)) if m else 0
            out[cpu] = n
        return out

    def lost_per_cpu(self) -> dict[int, int]:
        """Events lost per CPU: ``overrun`` (overwritten) + ``dropped events`` (buffer full)."""
        return self._stats_per_cpu(("overrun", "dropped events"))

    def entries_per_cpu(self) -> dict[int, int]:
        """Events in the buffer per CPU (``entries``; stack-trace records count as events).

        Read after tracing stops and before ``trace-cmd extract``, which consumes them.
        """
        return self._stats_per_cpu(("entries",))

    def clock(self) -> str:
        m = re.search(r"\[(\S+)\]", self.read("trace_clock"))
        return m.group(1) if m else "unknown"

    # -- changing ----------------------------------------------------------

    def _remember(self, rel: str) -> None:
        if rel in self._saved:
            return
        old = self.read(rel)
        if rel == "buffer_size_kb":
            # "7 (expanded: 1408)": not allocated yet; writing 7 back would
            # shrink it for good, so restore the size it would expand to.
            m = re.search(r"expanded:\s*(\d+)", old)
            old = m.group(1) if m else old.split()[0]
        self._saved[rel] = old.rstrip("*")  # "1*" = soft-enabled by a trigger
        self.touched.append(rel)

    def write(self, rel: str, value: str) -> None:
        self._remember(rel)
        try:
            (self.root / rel).write_text(value)
        except OSError as e:
            raise RecordError(f"cannot write {value!r} to {self.root / rel}: {e.strerror}") from e

    def add_trigger(self, event: str, trigger: str) -> bool:
        """Add ``trigger`` to ``system:event``; False if it was already there (not ours)."""
        rel = f"events/{event.replace(':', '/')}/trigger"
        current = [ln for ln in self.read(rel).splitlines() if not ln.startswith("#")]
        if any(ln.split(":")[0] == trigger for ln in current):
            return False
        self.touched.append(rel)
        try:
            (self.root / rel).write_text(trigger)
        except OSError as e:
            raise RecordError(f"cannot add trigger {trigger!r} to {event}: {e.strerror}") from e
        self._triggers_added.append((rel, trigger))
        return True

    def set_pids(self, pids: list[int]) -> None:
        """Replace ``set_event_pid`` (opening it with O_TRUNC replaces the list)."""
        if self._pids_saved is None:
            self._pids_saved = " ".join(self.read("set_event_pid").split())
            self.touched.append("set_event_pid")
        with open(self.root / "set_event_pid", "w") as f:
            f.write(" ".join(map(str, pids)))

    def clear_buffer(self) -> None:
        with open(self.root / "trace", "w"):  # O_TRUNC on `trace` clears every CPU's buffer
            pass
        self._cleared = True

    def restore(self) -> list[str]:
        """Put back everything changed; returns what could not be restored."""
        if not self.root.exists():  # `trace-cmd extract -B` removes the instance itself
            return []
        errors: list[str] = []

        def attempt(rel: str, value: str) -> None:
            try:
                with open(self.root / rel, "w") as f:
                    f.write(value)
            except OSError as e:
                errors.append(f"{rel}: {e.strerror}")

        if "tracing_on" in self._saved:
            attempt("tracing_on", "0")
        if self._cleared and self.instance is None:
            # the shared top-level buffer holds only our events (it was cleared when we
            # started): drop them, or the next `trace-cmd extract` on the host takes them
            attempt("trace", "")
            self._cleared = False
        for rel, trigger in reversed(self._triggers_added):
            attempt(rel, f"!{trigger}")
        self._triggers_added = []
        if self._pids_saved is not None:
            attempt("set_event_pid", self._pids_saved)
            self._pids_saved = None
        for rel in sorted(self._saved, key=lambda r: r == "tracing_on"):
            attempt(rel, self._saved[rel])
        self._saved = {}
        return errors

    def remove(self) -> str | None:
        """rmdir an instance created here (retrying while a reader still holds it)."""
        if not (self.created and self.root.exists()):
            return None
        for _ in range(50):
            try:
                self.root.rmdir()
                return None
            except FileNotFoundError:
                return None
            except OSError as e:
                if e.errno != errno.EBUSY:
                    return f"rmdir {self.root}: {e.strerror}"
                time.sleep(0.1)
        return f"rmdir {self.root}: still busy"
