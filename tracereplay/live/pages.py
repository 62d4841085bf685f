"""One interval's raw ring-buffer pages -> canonical event batches, with the trace.dat decoder.

``trace_pipe_raw`` hands out the same sub-buffer pages trace-cmd stores in a
trace.dat flyrecord section (kernel/trace/trace.c, ``tracing_buffers_read``:
a whole page, its header's commit field giving the data size and the
missed-events flags). So an interval's pages go through exactly the code a
trace.dat goes through: :class:`RingPagesReader` is a
:class:`~tracereplay.readers.trace_dat.TraceDatReader` whose "file" is the
pages read in memory (its per-CPU merge, tgid tracking, stack attachment and
batch building are reused unchanged, rather than copied).

Example::

    reader = RingPagesReader(decoder, {0: cpu0_pages, 1: cpu1_pages}, page_size=4096)
    for batch in reader.batches():
        ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tracereplay.formats.tracefs.event_decoder import EventDecoder
from tracereplay.readers.trace_dat import Buffer, CpuData, TraceDatReader
from tracereplay.tracemeta import TraceMeta

__all__ = ["LIVE_FORMAT", "RingPagesReader", "page_timestamps"]

LIVE_FORMAT = "tracefs-raw"  # trace_info.format of a live interval


def page_timestamps(pages: bytes | np.ndarray, page_size: int) -> np.ndarray:
    """The raw base timestamp (first u64) of every whole page in ``pages``."""
    arr = np.frombuffer(pages, np.uint8) if isinstance(pages, bytes) else pages
    n = len(arr) // page_size
    return arr[: n * page_size].reshape(n, page_size)[:, :8].copy().view("<u8").reshape(n)


class RingPagesReader(TraceDatReader):
    """A Reader over per-CPU raw pages held in memory (one live interval).

    ``decoder`` is shared across intervals (event formats are compiled once,
    saved cmdlines and tgids kept up to date by the caller); each interval gets
    its own :class:`TraceMeta`.
    """

    format_name = LIVE_FORMAT

    def __init__(
        self,
        decoder: EventDecoder,
        pages: Mapping[int, bytes | np.ndarray],
        *,
        page_size: int,
        path: str = "<live>",
        clock: str | None = None,
        kernel_release: str | None = None,
        tsc2nsec: tuple[int, int, int] | None = None,
        ts_offset: int = 0,
        recorder_options: dict[str, Any] | None = None,
    ) -> None:
        # deliberately not TraceDatReader.__init__: there is no file to open
        self.path = path
        self.meta = TraceMeta(
            path=path,
            format=self.format_name,
            kernel_release=kernel_release,
            clock=clock,
            cpus=len(pages) or None,
            recorder_options=dict(recorder_options or {}),
        )
        self.decoder = decoder
        self.compression = "none"
        self.page_size = page_size
        self.long_size = 8
        self.tsc2nsec = tsc2nsec
        self.ts_offset = ts_offset
        self._parsed = True
        self._pages = {
            cpu: (np.frombuffer(p, np.uint8) if isinstance(p, bytes) else p)
            for cpu, p in sorted(pages.items())
        }
        buf = Buffer("", clock, page_size)
        for cpu, data in self._pages.items():
            buf.cpus.append(CpuData(cpu, 0, len(data) // page_size * page_size))
        self.buffers = [buf]

    def parse(self) -> None:  # the decoder arrives ready
        return

    def cpu_pages(
        self, buf: Buffer, cpu: CpuData, batch_pages: int
    ) -> Iterator[tuple[np.ndarray, int]]:
        data = self._pages.get(cpu.cpu)
        if data is None:
            return
        step = batch_pages * buf.page_size
        for at in range(0, cpu.size, step):
            yield data[at : min(at + step, cpu.size)], at

    def bytes_progress(self) -> tuple[int, int]:
        total = sum(len(p) for p in self._pages.values())
        return total, total
