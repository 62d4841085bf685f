"""Merging a trace.dat buffer's per-CPU ring-buffer pages by timestamp, in bounded windows.

Each CPU's current page batch sits in its row of one store array, so records of
every CPU are addressed by one offset and a window is decoded in one call
(:func:`tracereplay.formats.tracefs.ring_buffer.walk_pages`); a window holds every pending
record up to the smallest last timestamp among the CPUs still being read, so
memory stays bounded by the batch size whatever the trace's length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tracereplay.formats.tracefs.event_decoder import EventDecoder
from tracereplay.formats.tracefs.ring_buffer import walk_pages

__all__ = ["BATCH_PAGES", "Merger", "PageSource", "Recs"]

# pages decoded per step per CPU (4 MiB with 4 KiB pages): bounds memory
BATCH_PAGES = 1024


@dataclass
class Recs:
    """Records of one CPU or window: payload offset in the store, length, ts, pid, slot,
    and the payload of the stack record that belongs to each (-1: none)."""

    off: np.ndarray
    length: np.ndarray
    ts: np.ndarray
    pid: np.ndarray
    slot: np.ndarray
    stk: np.ndarray
    stk_len: np.ndarray

    def __len__(self) -> int:
        return len(self.off)

    def take(self, idx: np.ndarray | slice) -> Recs:
        return Recs(*(getattr(self, f)[idx] for f in RECS_FIELDS))

    def split(self, mark: int) -> tuple[Recs, Recs]:
        """(records with ts <= mark, the others), each in its order."""
        k = int(np.searchsorted(self.ts, mark, side="right"))
        # a CPU's timestamps nearly always ascend: then both parts are views, no copy
        if (self.ts[:k] <= mark).all() and (self.ts[k:] > mark).all():
            return self.take(slice(0, k)), self.take(slice(k, None))
        sel = self.ts <= mark
        return self.take(sel), self.take(~sel)

    @staticmethod
    def concat(parts: list[Recs]) -> Recs:
        return Recs(*(np.concatenate([getattr(p, f) for p in parts]) for f in RECS_FIELDS))


RECS_FIELDS = ("off", "length", "ts", "pid", "slot", "stk", "stk_len")


class CpuPages(Protocol):
    cpu: int


class Buffer(Protocol):
    page_size: int

    @property
    def cpus(self) -> Sequence[CpuPages]: ...


class PageSource(Protocol):
    """What the merger needs of its reader: the decoder, each CPU's page batches, the clock."""

    decoder: EventDecoder

    # (buf, cpu): the Buffer and the CpuPages entry of it being read
    def cpu_pages(self, buf: Any, cpu: Any, batch_pages: int) -> Iterator[tuple[np.ndarray, int]]: ...

    def convert_ts(self, raw: np.ndarray) -> np.ndarray: ...


@dataclass
class Stream:
    """One CPU of one buffer: its page batches and what is not merged yet."""

    k: int
    cpu: int
    pages: Iterator[tuple[np.ndarray, int]]
    pending: Recs | None = None
    # the last record seen is held back: a stack record in the next batch may belong to it
    carry: Recs | None = None
    carry_bytes: np.ndarray | None = None
    done: bool = False


class Merger:
    """Merges the CPUs of one buffer by timestamp (ties by CPU) in bounded windows.

    Each CPU's current page batch sits in its row of one store array, so records
    of every CPU are addressed by one offset and a window is decoded in one call.
    A window holds every pending record up to the smallest last timestamp among
    the CPUs still being read.
    """

    def __init__(self, reader: PageSource, buf: Buffer) -> None:
        self.reader = reader
        # (cpu, timestamp, count or None) of each page that lost events, in reading order
        self.lost: list[tuple[int, int, int | None]] = []
        self.page_size = buf.page_size
        n = max(len(buf.cpus), 1)
        self.batch_pages = max(64, min(BATCH_PAGES, (256 << 20) // buf.page_size // n))
        self.cap = (self.batch_pages + 64) * buf.page_size
        self.store = np.empty((n, self.cap), np.uint8)
        self.flat = self.store.reshape(-1)
        self.streams = [
            Stream(k, c.cpu, reader.cpu_pages(buf, c, self.batch_pages))
            for k, c in enumerate(buf.cpus)
        ]

    def windows(self) -> Iterator[tuple[Recs, np.ndarray]]:
        streams = self.streams
        while True:
            for s in streams:
                if not s.done and (s.pending is None or len(s.pending) == 0):
                    self._pull(s)
            live = [s for s in streams if s.pending is not None and len(s.pending)]
            if not live:
                return
            bounds = [int(s.pending.ts.max()) for s in live if not s.done and s.pending]
            mark = min(bounds) if bounds else None
            parts: list[Recs] = []
            cpus: list[np.ndarray] = []
            for s in live:
                p = s.pending
                assert p is not None
                if mark is None:
                    take, s.pending = p, None
                else:
                    take, s.pending = p.split(mark)
                parts.append(take)
                cpus.append(np.full(len(take), s.cpu, dtype=np.int64))
            recs = Recs.concat(parts)
            cpu = np.concatenate(cpus)
            if len(recs):
                order = np.lexsort((cpu, recs.ts))
                yield recs.take(order), cpu[order]

    def _pull(self, s: Stream) -> None:
        while True:
            frame = self._frame(s)
            if frame is None:
                s.done = True
                s.pending, s.carry = s.carry, None
                return
            cur = frame if s.carry is None else Recs.concat([s.carry, frame])
            self._attach(cur)
            last = len(cur) - 1
            s.carry = cur.take(np.array([last]))
            at = int(cur.off[last])
            s.carry_bytes = self.flat[at : at + int(cur.length[last])].copy()
            if last:
                s.pending = cur.take(slice(0, last))  # a view: cur is ours alone
                return

    def _attach(self, cur: Recs) -> None:
        """A stack record's frames belong to it and to the event before it on its CPU."""
        st = self.reader.decoder.stack_flags()[cur.slot]
        cur.stk = np.where(st, cur.off, -1)
        cur.stk_len = np.where(st, cur.length, 0)
        owner = np.flatnonzero(~st[:-1] & st[1:])
        cur.stk[owner] = cur.off[owner + 1]
        cur.stk_len[owner] = cur.length[owner + 1]

    def _frame(self, s: Stream) -> Recs | None:
        """The known records of the next page batch of a CPU (None at the end)."""
        reader = self.reader
        dec = reader.decoder
        for pages, _at in s.pages:
            n = len(pages)
            extra = 0 if s.carry_bytes is None else len(s.carry_bytes)
            if n + extra > self.cap:
                self._grow(n + extra)
            row = self.store[s.k]
            base = s.k * self.cap
            row[:n] = pages
            if s.carry is not None and s.carry_bytes is not None:
                row[n : n + extra] = s.carry_bytes
                s.carry.off[0] = base + n
                if s.carry.stk[0] >= 0:
                    s.carry.stk[0] = base + n
            off, length, raw_ts, lost_p, lost_c, page_ts, bad = walk_pages(
                row[:n], self.page_size, dec.data_offset, dec.commit_size
            )
            dec.bad_pages += bad
            if len(lost_p):
                lts = reader.convert_ts(page_ts[lost_p]).tolist()
                for t, c in zip(lts, lost_c.tolist(), strict=True):
                    self.lost.append((s.cpu, int(t), None if c < 0 else int(c)))
            if not len(off):
                continue
            off += base
            slot, pid, keep = dec.classify(self.flat, off, length)
            if not len(keep):
                continue
            ts = reader.convert_ts(raw_ts)
            none = np.full(len(keep), -1, np.int64)
            if len(keep) < len(off):
                off, length, ts, pid, slot = (a[keep] for a in (off, length, ts, pid, slot))
            return Recs(off, length, ts, pid, slot, none, none)
        return None

    def _grow(self, need: int) -> None:
        """A bigger row for every CPU; offsets of records not merged yet move with their row."""
        old = self.cap
        self.cap = max(need, 2 * old)
        store = np.empty((self.store.shape[0], self.cap), np.uint8)
        store[:, :old] = self.store
        for s in self.streams:
            for r in (s.pending, s.carry):
                if r is not None:
                    shift = s.k * (self.cap - old)
                    r.off += shift
                    r.stk[r.stk >= 0] += shift
        self.store = store
        self.flat = store.reshape(-1)
