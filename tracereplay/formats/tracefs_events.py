"""Tracepoint records -> canonical event rows, shared by the trace.dat and perf.data readers.

Both formats embed the tracefs ``format`` files and store each event as the
same raw record (``common_type``, ``common_flags``, ``common_preempt_count``,
``common_pid``, then the fields). :class:`EventDecoder` holds the formats,
saved cmdlines / tgids and kallsyms of one trace and turns arrays of record
offsets into a polars frame in the canonical columns, one vectorized pass per
event type. :func:`merge_cpus` merges per-CPU streams by timestamp with bounded
memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from tracereplay.formats.kallsyms import Symbols, hex_names
from tracereplay.formats.ringbuffer import gather_int, render_args, walk_pages
from tracereplay.formats.text_events import SYSTEM_OF
from tracereplay.formats.tracefs_format import FormatError, TraceEventFormat, parse_format
from tracereplay.readers.base import TraceMeta

__all__ = ["STACK_EVENT", "EventDecoder", "attach_stacks", "merge_cpus"]

STACK_EVENT = "kernel_stack"
_ID = re.compile(r"^ID:\s*(\d+)", re.M)
_ULONG_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
COLUMNS = ["ts", "cpu", "pid", "tgid", "comm", "system", "name", "args", "stack"]


class EventDecoder:
    """Formats and process tables of one trace; decodes records in bulk."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.formats: dict[int, TraceEventFormat] = {}
        self._raw_formats: dict[int, tuple[str, str | None]] = {}
        self._symbols: Symbols | None = None
        self._kallsyms: str | None = None
        self.data_offset = 16
        self.commit_size = 8
        self.header_event = ""
        self.comms: dict[int, str] = {}
        self.tgids: dict[int, int] = {}
        self.bad_formats: list[str] = []
        self.unknown_ids: dict[int, int] = {}
        self.bad_records = 0
        self.bad_pages = 0
        self._type_at = (0, 2)
        self._pid_at = (4, 4)

    def add_format(self, text: str, system: str | None) -> None:
        # parsed on first use: a trace embeds ~2 500 formats and uses a handful
        m = _ID.search(text)
        if m is None:
            first = text.strip().splitlines()[0][:60] if text.strip() else "(empty)"
            self.bad_formats.append(f"{system}: {first}: no ID line")
            return
        self._raw_formats[int(m.group(1))] = (text, system)

    def format_of(self, eid: int) -> TraceEventFormat | None:
        fmt = self.formats.get(eid)
        if fmt is not None or eid not in self._raw_formats:
            return fmt
        text, system = self._raw_formats.pop(eid)
        try:
            fmt = parse_format(text, system)
        except FormatError as e:
            first = text.strip().splitlines()[0][:60]
            self.bad_formats.append(f"{system}: {first}: {e}")
            return None
        self.formats[eid] = fmt
        return fmt

    @property
    def symbols(self) -> Symbols | None:
        if self._symbols is None and self._kallsyms is not None:
            self._symbols = Symbols.from_kallsyms(self._kallsyms)
            self._kallsyms = None
        return self._symbols

    @symbols.setter
    def symbols(self, value: Symbols | None) -> None:
        self._symbols = value

    def set_kallsyms(self, text: str) -> None:
        self._kallsyms = text if text.strip() else None

    def load_cmdlines(self, text: str) -> None:
        for line in text.splitlines():
            pid, _, comm = line.strip().partition(" ")
            if pid.isdigit():
                self.comms[int(pid)] = comm

    def load_tgids(self, text: str) -> None:
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                self.tgids[int(parts[0])] = int(parts[1])

    def finish_formats(self) -> None:
        # the common fields are the same in every format: parse one to find them
        for eid in list(self._raw_formats)[:8]:
            self.format_of(eid)
        for fmt in self.formats.values():
            t = next((f for f in fmt.common if f.name == "common_type"), None)
            p = next((f for f in fmt.common if f.name == "common_pid"), None)
            if t is not None and p is not None:
                self._type_at = (t.offset, t.size)
                self._pid_at = (p.offset, p.size)
                break

    def report(self, meta: TraceMeta) -> None:
        """Turn what was skipped into warnings (partial results)."""
        if self.bad_formats:
            meta.warn(
                f"{len(self.bad_formats)} event format file(s) did not parse and were skipped "
                f"(first: {self.bad_formats[0]})",
                partial=True,
            )
        if self.unknown_ids:
            total = sum(self.unknown_ids.values())
            ids = ", ".join(str(i) for i in sorted(self.unknown_ids)[:8])
            meta.warn(f"{total} record(s) with unknown event id(s) {ids} skipped", partial=True)
        if self.bad_pages:
            meta.warn(
                f"{self.bad_pages} ring-buffer page(s) with inconsistent headers "
                "(decoded up to the damage)",
                partial=True,
            )

    # --- decoding -----------------------------------------------------------------------

    def decode_pages(
        self,
        pages: npt.NDArray[np.uint8],
        page_size: int,
        cpu: int,
        convert_ts: Callable[[np.ndarray], np.ndarray],
        *,
        where: int = 0,
    ) -> tuple[pl.DataFrame, list[tuple[int | None, int | None]]]:
        """Events of whole ring-buffer pages of one CPU, and their lost-event gaps."""
        recs = walk_pages(
            pages, page_size, data_offset=self.data_offset, commit_size=self.commit_size
        )
        self.bad_pages += len(recs.bad_pages)
        lost: list[tuple[int | None, int | None]] = []
        if len(recs.lost_pages):
            lts = convert_ts(recs.page_ts[recs.lost_pages]).tolist()
            for t, c in zip(lts, recs.lost_counts.tolist(), strict=True):
                lost.append((int(t), None if c < 0 else int(c)))
        ts = convert_ts(recs.ts)
        frame = self.decode_records(
            pages, recs.offset, recs.length, ts, np.full(len(ts), cpu, dtype=np.int32)
        )
        return frame, lost

    def decode_records(
        self,
        buf: npt.NDArray[np.uint8],
        offset: npt.NDArray[np.int64],
        length: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
        cpu: npt.NDArray[np.int32],
        *,
        pid: npt.NDArray[np.int64] | None = None,
        tgid: npt.NDArray[np.int64] | None = None,
    ) -> pl.DataFrame:
        """Canonical rows (plus ``is_stack``) of raw records at ``offset`` in ``buf``."""
        n = len(offset)
        if n == 0:
            return _empty()
        short = length < self._pid_at[0] + self._pid_at[1]
        etype = gather_int(buf, offset + self._type_at[0], self._type_at[1], False).astype(np.int64)
        etype[short] = -1
        if pid is None:
            pid = gather_int(buf, offset + self._pid_at[0], self._pid_at[1], True).astype(np.int64)
        args = np.empty(n, dtype=object)
        names = np.empty(n, dtype=object)
        systems = np.empty(n, dtype=object)
        stacks: list[tuple[npt.NDArray[np.int64], pa.Array]] = []
        keep = np.ones(n, dtype=bool)
        for eid in np.unique(etype).tolist():
            idx = np.flatnonzero(etype == eid)
            fmt = self.format_of(eid)
            if fmt is None:
                self.unknown_ids[eid] = self.unknown_ids.get(eid, 0) + len(idx)
                keep[idx] = False
                continue
            names[idx] = fmt.name
            systems[idx] = (
                fmt.system
                if fmt.system not in (None, "ftrace")
                else SYSTEM_OF.get(fmt.name, fmt.system)
            )
            if fmt.name == STACK_EVENT and fmt.system in (None, "ftrace"):
                args[idx] = "{}"
                stacks.append((idx, self._stack_lists(buf, offset[idx], length[idx], fmt)))
                continue
            rendered = render_args(buf, offset[idx], length[idx], fmt, self.symbols)
            args[idx] = np.asarray(rendered.to_list(), dtype=object)
        stack_col = _stack_column(n, stacks)
        pid32 = pid.astype(np.int32)
        frame = pl.DataFrame(
            {
                "ts": pl.Series(ts, dtype=pl.Int64),
                "cpu": pl.Series(cpu, dtype=pl.Int32),
                "pid": pl.Series(pid32, dtype=pl.Int32),
                "tgid": self._tgid_column(pid32, tgid),
                "comm": self._comm_column(pid32),
                "system": pl.Series(systems.tolist(), dtype=pl.String),
                "name": pl.Series(names.tolist(), dtype=pl.String),
                "args": pl.Series(args.tolist(), dtype=pl.String),
                "stack": pl.Series(stack_col),
                "is_stack": pl.Series(
                    np.isin(np.arange(n), np.concatenate([i for i, _ in stacks]))
                    if stacks
                    else np.zeros(n, dtype=bool)
                ),
            }
        )
        return frame.filter(pl.Series(keep)) if not keep.all() else frame

    def _stack_lists(
        self,
        buf: npt.NDArray[np.uint8],
        rec: npt.NDArray[np.int64],
        rec_len: npt.NDArray[np.int64],
        fmt: TraceEventFormat,
    ) -> pa.Array:
        size_f = fmt.field_named("size")
        caller = fmt.field_named("caller")
        if caller is None:
            return pa.nulls(len(rec), type=pa.large_list(pa.large_string()))
        room = np.clip((rec_len - caller.offset) // 8, 0, None)
        count = room
        if size_f is not None:
            declared = gather_int(buf, rec + size_f.offset, size_f.size, True).astype(np.int64)
            count = np.minimum(np.clip(declared, 0, None), room)
        total = int(count.sum())
        starts = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        local = np.arange(total, dtype=np.int64) - np.repeat(starts, count)
        addrs = gather_int(buf, np.repeat(rec + caller.offset, count) + 8 * local, 8, False)
        # the kernel stops printing at ULONG_MAX (end marker of short stacks)
        valid = addrs != _ULONG_MAX
        seg = np.repeat(np.arange(len(rec)), count)
        stop = np.full(len(rec), np.iinfo(np.int64).max)
        bad = ~valid
        np.minimum.at(stop, seg[bad], local[bad])
        keep = local < stop[seg]
        addrs = addrs[keep]
        counts = np.bincount(seg[keep], minlength=len(rec))
        names = self.symbols.names(addrs) if self.symbols is not None else hex_names(addrs)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return pa.LargeListArray.from_arrays(
            pa.array(offsets, type=pa.int64()), pa.array(names, type=pa.large_string())
        )

    def _comm_column(self, pid: npt.NDArray[np.int32]) -> pl.Series:
        uniq, inv = np.unique(pid, return_inverse=True)
        names = ["<idle>" if p == 0 else self.comms.get(p, "<...>") for p in uniq.tolist()]
        return pl.Series(np.asarray(names, dtype=object)[inv.ravel()], dtype=pl.String)

    def _tgid_column(
        self, pid: npt.NDArray[np.int32], given: npt.NDArray[np.int64] | None
    ) -> pl.Series:
        if given is not None:
            return pl.Series(given, dtype=pl.Int32)
        uniq, inv = np.unique(pid, return_inverse=True)
        vals = [self.tgids.get(p) if p != 0 else None for p in uniq.tolist()]
        return pl.Series(vals, dtype=pl.Int32).gather(inv.ravel())


def _empty() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "ts": pl.Int64,
            "cpu": pl.Int32,
            "pid": pl.Int32,
            "tgid": pl.Int32,
            "comm": pl.String,
            "system": pl.String,
            "name": pl.String,
            "args": pl.String,
            "stack": pl.List(pl.String),
            "is_stack": pl.Boolean,
        }
    )


def _stack_column(n: int, stacks: list[tuple[npt.NDArray[np.int64], pa.Array]]) -> pa.Array:
    if not stacks:
        return pa.nulls(n, type=pa.large_list(pa.large_string()))
    idx = np.concatenate([i for i, _ in stacks])
    values = pa.concat_arrays([a for _, a in stacks])
    # scatter: rows without a stack get null
    order = np.full(n, -1, dtype=np.int64)
    order[idx] = np.arange(len(idx))
    take = pa.array(np.where(order >= 0, order, 0))
    out = values.take(take)
    mask = pa.array(order < 0)
    return pa.compute.if_else(mask, pa.nulls(n, type=out.type), out)


def attach_stacks(frame: pl.DataFrame) -> pl.DataFrame:
    """Give each stack record's frames to the previous real event of its CPU too.

    Same rule as the text reader: a ``kernel_stack`` record follows the event
    that triggered it on the same CPU (the frame holds one CPU).
    """
    is_stack = frame["is_stack"].to_numpy()
    if not is_stack.any():
        return frame
    n = frame.height
    pos = np.where(~is_stack, np.arange(n), -1)
    owner = np.maximum.accumulate(pos)
    src = np.flatnonzero(is_stack & (owner >= 0))
    if not len(src):
        return frame
    dst = owner[src]
    # first stack record of an owner wins (several in a row are unusual)
    dst_u, first = np.unique(dst, return_index=True)
    take = np.arange(n)
    take[dst_u] = src[first]
    return frame.with_columns(stack=frame["stack"].gather(take))


def merge_cpus(streams: list[Iterator[pl.DataFrame]]) -> Iterator[pl.DataFrame]:
    """Merge per-CPU frames (each in time order) by ``ts``, ties by CPU, in bounded windows."""
    carry: list[Any] = [None] * len(streams)  # pl.DataFrame | None
    pending: list[Any] = [None] * len(streams)
    done = [False] * len(streams)

    def pull(k: int) -> None:
        # keep the last row back: a stack record in the next frame may belong to it
        for frame in streams[k]:
            cur = frame if carry[k] is None else pl.concat([carry[k], frame])
            cur = attach_stacks(cur)
            carry[k] = cur.tail(1)
            body = cur.head(cur.height - 1)
            if body.height:
                pending[k] = body
                return
        done[k] = True
        pending[k] = carry[k]
        carry[k] = None

    while True:
        for k in range(len(streams)):
            if not done[k] and (pending[k] is None or pending[k].height == 0):
                pull(k)
        live = [k for k in range(len(streams)) if pending[k] is not None and pending[k].height]
        if not live:
            return
        bounds = [pending[k]["ts"].max() for k in live if not done[k]]
        mark = min(bounds) if bounds else None
        parts = []
        for k in live:
            p = pending[k]
            assert p is not None
            if mark is None:
                take, rest = p, None
            else:
                sel = p["ts"] <= mark
                take, rest = p.filter(sel), p.filter(~sel)
            parts.append(take)
            pending[k] = rest
        out = pl.concat(parts).sort(["ts", "cpu"], maintain_order=True)
        if out.height:
            yield out.select(COLUMNS)


CLONE_THREAD = 0x10000


class TgidTracker:
    """Thread-group ids for traces without a tgid per event (trace.dat has none).

    Exact where the trace shows it: ``task_newtask`` by a parent with
    ``CLONE_THREAD`` puts the child in the parent's group, without it the child
    leads its own; ``sched_process_exec`` makes the task a group leader. A task
    the trace never shows being created is assumed to lead its own group (what
    ``record-tgid`` text shows for single-threaded and main threads); the reader
    counts those assumptions. pid 0 (idle) has no tgid.
    """

    def __init__(self, known: dict[int, int] | None = None) -> None:
        self.exact: dict[int, int] = dict(known or {})
        self.assumed: set[int] = set()

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        names = frame["name"]
        hits = (names == "task_newtask") | (names == "sched_process_exec")
        if hits.any():
            rows = frame.filter(hits).select(
                "pid",
                "name",
                child=pl.col("args").str.json_path_match("$.pid").cast(pl.Int64, strict=False),
                flags=pl.col("args")
                .str.json_path_match("$.clone_flags")
                .cast(pl.Int64, strict=False),
            )
            for pid, name, child, flags in rows.iter_rows():
                if name == "sched_process_exec":
                    self.exact[pid] = pid
                elif child is not None:
                    parent = self.exact.get(pid, pid)
                    self.exact[child] = parent if (flags or 0) & CLONE_THREAD else child
        pids = frame["pid"].to_numpy()
        uniq, inv = np.unique(pids, return_inverse=True)
        vals: list[int | None] = []
        for p in uniq.tolist():
            if p == 0:
                vals.append(None)
            elif p in self.exact:
                vals.append(self.exact[p])
            else:
                self.assumed.add(p)
                vals.append(p)
        given = frame["tgid"]
        derived = pl.Series(vals, dtype=pl.Int32).gather(inv.ravel())
        return frame.with_columns(
            tgid=given.fill_null(derived) if given.null_count() < len(given) else derived
        )
