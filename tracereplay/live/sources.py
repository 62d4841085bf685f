"""Where ``top``'s raw pages come from: the live per-CPU ``trace_pipe_raw``, or a trace.dat.

Both give :class:`Interval` s of whole ring-buffer pages per CPU and an
:class:`~tracereplay.formats.tracefs.event_decoder.EventDecoder` that knows
the event formats, so the analysis cannot tell them apart:

* :class:`TracefsSource` configures a private tracefs instance (through
  :class:`~tracereplay.record.tracefs.TraceDir`, which restores and removes
  it) and drains every CPU's ``per_cpu/cpuN/trace_pipe_raw`` without
  blocking; events lost are the per-CPU ``overrun`` + ``dropped events``
  growth of the interval.
* :class:`DatPageSource` replays a recorded trace.dat: its per-CPU pages cut
  into intervals by page timestamp (the tests' ring buffer without root).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tracereplay.formats.tracefs.event_decoder import EventDecoder
from tracereplay.formats.tracefs.format_file import parse_header_page
from tracereplay.live.pages import RingPagesReader, page_timestamps
from tracereplay.readers.trace_dat import TraceDatReader
from tracereplay.record.tracefs import RecordError, TraceDir

__all__ = ["DatPageSource", "Interval", "TracefsSource"]


@dataclass
class Interval:
    """One interval's raw pages per CPU and the events the kernel lost in it."""

    pages: dict[int, bytes]
    lost: int = 0
    lost_per_cpu: dict[int, int] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.pages.values())


class DatPageSource:
    """The pages of a trace.dat's busiest buffer, cut into ``count`` intervals of trace time."""

    def __init__(self, path: str, count: int = 1) -> None:
        self.dat = TraceDatReader(path)
        self.dat.parse()
        if not self.dat.buffers:
            raise RecordError(f"{path}: no ring-buffer data")
        self.decoder = self.dat.decoder
        buf = max(self.dat.buffers, key=lambda b: sum(c.size for c in b.cpus))
        self.page_size = buf.page_size
        self.clock = buf.clock or self.dat.meta.clock
        self.kernel_release = self.dat.meta.kernel_release
        per_cpu: dict[int, np.ndarray] = {}
        for c in buf.cpus:
            parts = [p.copy() for p, _at in self.dat.cpu_pages(buf, c, 1024)]
            if parts:
                per_cpu[c.cpu] = np.concatenate(parts)
        stamps = {cpu: page_timestamps(p, self.page_size) for cpu, p in per_cpu.items()}
        nonempty = [s[s > 0] for s in stamps.values() if len(s)]
        lo = min((int(s.min()) for s in nonempty if len(s)), default=0)
        hi = max((int(s.max()) for s in nonempty if len(s)), default=0)
        edges = np.linspace(lo, hi + 1, count + 1).astype(np.uint64)
        self.intervals: list[Interval] = []
        for k in range(count):
            pages: dict[int, bytes] = {}
            for cpu, data in per_cpu.items():
                s = stamps[cpu]
                sel = np.flatnonzero((s >= edges[k]) & (s < edges[k + 1]))
                rows = data[: len(s) * self.page_size].reshape(len(s), self.page_size)
                pages[cpu] = rows[sel].tobytes()
            self.intervals.append(Interval(pages))

    def reader(self, interval: Interval) -> RingPagesReader:
        return RingPagesReader(
            self.decoder,
            interval.pages,
            page_size=self.page_size,
            path=self.dat.path,
            clock=self.clock,
            kernel_release=self.kernel_release,
            tsc2nsec=self.dat.tsc2nsec,
            ts_offset=self.dat.ts_offset,
        )

    def __iter__(self) -> Iterator[Interval]:
        return iter(self.intervals)


class TracefsSource:
    """A private tracefs instance whose per-CPU raw pipes are drained each interval."""

    def __init__(
        self,
        root: Path,
        events: list[str],
        *,
        buffer_kb: int = 8192,
        pids: list[int] | None = None,
        name: str | None = None,
    ) -> None:
        self.root = root
        self.events = events
        self.tdir = TraceDir.create_instance(root, name or f"tracereplay-{os.getpid()}")
        self._fds: dict[int, int] = {}
        try:
            self._configure(buffer_kb, pids)
            self.decoder = self._decoder()
            self.page_size = self._page_size()
            self.clock = self.tdir.clock()
            self._lost_seen = self.tdir.lost_per_cpu()
            for cpu in self.tdir.cpus():
                path = self.tdir.root / f"per_cpu/cpu{cpu}/trace_pipe_raw"
                self._fds[cpu] = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            self.tdir.write("tracing_on", "1")
        except BaseException:
            self.close()
            raise

    def _configure(self, buffer_kb: int, pids: list[int] | None) -> None:
        t = self.tdir
        t.write("tracing_on", "0")
        t.write("buffer_size_kb", str(buffer_kb))
        t.write("options/record-tgid", "1")
        if pids:
            t.write("options/event-fork", "1")
            tids = [int(x) for p in pids for x in _tasks(p)]
            t.set_pids([*dict.fromkeys(tids), 0])  # idle takes shootdown IPIs in lazy TLB mode
        for ev in self.events:
            t.write(f"events/{ev.replace(':', '/')}/enable", "1")
        t.clear_buffer()

    def _decoder(self) -> EventDecoder:
        dec = EventDecoder(str(self.tdir.root))
        dec.data_offset, dec.commit_size = parse_header_page(
            (self.root / "events/header_page").read_text()
        )
        for ev in [*self.events, "ftrace:kernel_stack"]:
            system, name = ev.split(":")
            fmt = self.root / "events" / system / name / "format"
            if fmt.exists():
                dec.add_format(fmt.read_text(), system)
        dec.finish_formats()
        # symbol fields (IPI callbacks) need the real addresses: root sees them
        with contextlib.suppress(OSError):
            dec.set_kallsyms(Path("/proc/kallsyms").read_text())
        self.refresh_tasks(dec)
        return dec

    def refresh_tasks(self, dec: EventDecoder | None = None) -> None:
        """Comms and tgids of recent tasks (``saved_cmdlines``/``saved_tgids``: bounded tables)."""
        dec = dec or self.decoder
        for rel, load in (("saved_cmdlines", dec.load_cmdlines), ("saved_tgids", dec.load_tgids)):
            try:
                load((self.root / rel).read_text())
            except OSError:
                continue

    def _page_size(self) -> int:
        if self.tdir.exists("buffer_subbuf_size_kb"):  # 6.8+: sub-buffers may be larger
            return int(self.tdir.read("buffer_subbuf_size_kb")) * 1024
        return os.sysconf("SC_PAGE_SIZE")

    def read(self) -> Interval:
        """Every page the kernel has for us now, per CPU, and the events lost since the last call."""
        pages: dict[int, bytes] = {}
        for cpu, fd in self._fds.items():
            chunks: list[bytes] = []
            while True:
                try:
                    data = os.read(fd, self.page_size)
                except OSError as e:
                    if e.errno in (errno.EAGAIN, errno.EINTR):
                        break
                    raise RecordError(f"reading CPU {cpu}'s trace_pipe_raw: {e.strerror}") from e
                if not data:
                    break
                if len(data) == self.page_size:
                    chunks.append(data)
            pages[cpu] = b"".join(chunks)
        lost_now = self.tdir.lost_per_cpu()
        per_cpu = {c: lost_now.get(c, 0) - self._lost_seen.get(c, 0) for c in lost_now}
        self._lost_seen = lost_now
        self.refresh_tasks()
        return Interval(pages, sum(per_cpu.values()), per_cpu)

    def reader(self, interval: Interval) -> RingPagesReader:
        return RingPagesReader(
            self.decoder,
            interval.pages,
            page_size=self.page_size,
            path=f"tracefs instance {self.tdir.instance}",
            clock=self.clock,
            kernel_release=os.uname().release,
            recorder_options={"events": self.events, "record_tgid": True},
        )

    def close(self) -> list[str]:
        """Close the pipes, restore every file written and remove the instance."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}
        errors = self.tdir.restore()
        if (err := self.tdir.remove()) is not None:
            errors.append(err)
        return errors


def _tasks(pid: int) -> list[str]:
    try:
        return sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except OSError:
        return [str(pid)]
