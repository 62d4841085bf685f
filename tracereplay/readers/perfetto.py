"""Reader for Perfetto traces (``.perfetto-trace``, ``.pftrace``; compressed files too).

``Trace.packet[]`` is walked packet by packet; ``FtraceEventBundle`` s (one CPU
each) are collected and their events decoded many bundles at a time by
:mod:`tracereplay.formats.perfetto.events` (numba-compiled walks and args
rendering, no Python loop per event). Understood: typed events (every
``FtraceEvent`` sub-message of the ``perfetto`` package's protos, fields
mapped to the kernel's format-file names), legacy ``GenericFtraceEvent``, the
dense generic encoding (field ids >= 65536 described by the bundle's
``GenericEventDescriptor`` s, signed ints as plain varints), ``compact_sched``
(delta timestamps, intern table), ``compressed_packets`` (deflate) and
``zstd_compressed_packets``, interned kernel symbols per packet sequence,
``lost_events`` and ``ftrace_stats``, the ftrace clock, ``system_info`` and
process trees (thread names and tgids); track descriptors and track events
(slices, instants, counters) become events of system ``track_event``
(:mod:`tracereplay.formats.perfetto.tracks`).

Timestamps stay in the ftrace clock, as the text formats print them; the
bundle's (ftrace, boot) clock pair is kept in ``recorder_options``.

What Perfetto loses (reported as warnings when it matters):

* typed ``kvm_exit`` / ``kvm_entry`` carry the arm64 fields only: x86 exit
  reasons, guest RIP and exit info are not recorded;
* events carry no comm and no tgid: they come from process trees, so a thread
  Perfetto never listed has neither;
* a ``__data_loc`` bitmask (``ipi_send_cpumask``'s ``cpumask``) is stored as a
  string cut at the first NUL byte, so CPUs above the first zero byte are lost;
* ``void *`` fields are kernel-symbol ids, useful only when the trace was
  recorded with ``symbolize_ksyms``; ``compact_sched`` drops ``prev_comm`` /
  ``prev_prio`` (recovered from the previous switch on the CPU) and the waker;
* the kernel's ``stacktrace`` trigger has no Perfetto encoding. Our writer
  stores stacks as dense generic ``ftrace/kernel_stack`` events, which this
  reader attaches to the preceding event like the text reader does.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import zstandard

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common.columns import rechunk
from tracereplay.formats.common.compression import compression_of
from tracereplay.formats.common.jit import announce_compile
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto.compact_sched import compact_sched_rows
from tracereplay.formats.perfetto.events import COMPILED, Decoded, decode_events
from tracereplay.formats.perfetto.packets import (
    MAX_PACKET,
    Corrupt,
    Truncated,
    inner_packets,
    interned_string,
    iter_packets,
    process_tree,
    strings,
)
from tracereplay.formats.perfetto.protowire import PAD, WireError, iter_fields, read_varint
from tracereplay.formats.perfetto.tracks import TrackEvents
from tracereplay.formats.perfetto.walk import bundle_fields, error_text
from tracereplay.formats.tracefs.batches import given_layout
from tracereplay.formats.tracefs.event_decoder import Numbers, NumberSpec
from tracereplay.schema import EVENT_SCHEMA
from tracereplay.tracemeta import LostEvents, TraceMeta

BATCH_EVENTS = 1 << 18
# a cold first read compiles the decoder for about this long (docs/BENCHMARKS.md, First run)
COMPILE_SECONDS = 6
MAX_CPUS = 1 << 16  # CONFIG_NR_CPUS is at most 8192: more is a damaged field
_INT32_MAX = (1 << 31) - 1


@dataclass
class _Bundle:
    data: bytes
    offs: np.ndarray
    lens: np.ndarray
    cpu: int
    seq_id: int
    lost: bool
    compact: pl.DataFrame | None = None  # rows decoded from compact_sched


class PerfettoReader:
    """Perfetto protobuf traces; see the module docstring."""

    format_name: ClassVar[str] = "perfetto"

    def __init__(self, path: str) -> None:
        self.path = path
        self.meta = TraceMeta(path=path, format=self.format_name)
        self._names: dict[int, tuple[str | None, int | None]] = {}
        self._initial: dict[int, tuple[str | None, int | None]] = {}
        self._symbols: dict[int, dict[int, str]] = {}
        self._descriptors: dict[int, ps.EventLayout] = {}
        self._seen_descriptors: set[bytes] = set()
        self._pending: list[_Bundle] = []
        self._pending_events = 0
        self._seq = 0
        self._problems: dict[str, int] = {}
        self._first_bad: int | None = None
        self._overrun: dict[int, dict[int, int]] = {}
        self._gaps: list[tuple[int, int]] = []  # (cpu, index into meta.lost)
        self._sched: dict[int, tuple[int, str | None, int]] = {}  # cpu -> running (pid, comm, prio)
        self._typed_seen: set[str] = set()
        self._deferred: list[pa.RecordBatch] = []
        self._offset = 0  # of the packet being decoded (progress)
        self._size: int | None = None  # of the file; 0 when compressed (no progress in bytes)
        self._tracks = TrackEvents()  # track descriptors and events (tracereplay export, SDK)
        self._numbers: dict[str, NumberSpec] = {}  # numbers_only()

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        # Trace.packet (field 1, LEN) whose first field has a valid tag
        if not head.startswith(b"\x0a"):
            return False
        try:
            n, p = read_varint(head, 1, len(head))
            tag, _ = read_varint(head, p, min(len(head), p + n))
        except WireError:
            return False
        return 0 < n <= MAX_PACKET and tag >> 3 > 0 and tag & 7 in (0, 1, 2, 5)

    # ------------------------------------------------------------------ packets

    # ------------------------------------------------------------------ main loop

    def numbers_only(self, events: dict[str, NumberSpec]) -> None:
        """Give the rows of ``events`` (name -> spec) whose keys are all numbers as columns
        instead of JSON (formats/perfetto/args.py): they come last in their batch, each
        event's together (formats.tracefs.batches). Call before :meth:`batches`."""
        self._numbers = dict(events)

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self._numbers:
            # the store re-chunks each table's stream (store/fanout.py); the rows given as
            # numbers are laid out batch by batch, which re-chunking here would undo
            yield from self._batches()
            return
        # DuckDB's streaming insert is fastest on whole row groups (common.columns.BATCH_ROWS)
        yield from rechunk(self._batches())

    def bytes_progress(self) -> tuple[int, int] | None:
        """(offset reached, file size), for progress bars; None for a compressed file,
        whose offsets count decompressed bytes."""
        try:
            if self._size is None:
                with open(self.path, "rb") as f:
                    plain = compression_of(f.read(8)) is None
                self._size = os.stat(self.path).st_size if plain else 0
        except OSError:
            self._size = 0
        return (self._offset, self._size) if self._size else None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        meta = self.meta
        announce_compile("Perfetto decoder", COMPILED, COMPILE_SECONDS)
        self._prescan()
        try:
            for packet, offset in iter_packets(self.path):
                self._offset = offset
                try:
                    for inner in inner_packets(packet):
                        self._packet(inner)
                except (WireError, ValueError, zlib.error, zstandard.ZstdError) as e:
                    self._problem(f"malformed or corrupt packet skipped ({e})", offset)
                if self._deferred:
                    yield from self._deferred
                    self._deferred.clear()
                if self._pending_events >= BATCH_EVENTS:
                    yield from self._flush()
        except Truncated as e:
            if self._seq == 0 and self._pending_events == 0:
                raise TraceFormatError(self.path, e.msg, offset=e.offset) from None
            self._problem(f"{e.msg}: the rest of the file is ignored", e.offset)
        except Corrupt as e:
            if self._seq == 0 and self._pending_events == 0:
                raise TraceFormatError(
                    self.path, f"not a Perfetto trace: {e.msg}", offset=e.offset
                ) from None
            self._problem(f"{e.msg}: the rest of the file is ignored", e.offset)
        yield from self._flush()
        tracks = self._tracks.batch(self._seq)
        if tracks is not None:
            self._seq += tracks.num_rows
            meta.event_count += tracks.num_rows
            yield tracks
        if self._tracks.bad:
            self._problem("malformed track packet skipped", None)
        self._finish()
        if meta.event_count == 0 and not self._problems:
            raise TraceFormatError(self.path, "no ftrace events found in this Perfetto trace")

    def _problem(self, what: str, offset: int | None) -> None:
        self._problems[what] = self._problems.get(what, 0) + 1
        if self._first_bad is None and offset is not None:
            self._first_bad = offset

    def _prescan(self) -> None:
        """Thread names first seen after their events still name them (Perfetto writes
        process trees when new pids show up, i.e. after the events)."""
        try:
            for packet, _offset in iter_packets(self.path):
                try:
                    for inner in inner_packets(packet):
                        for fno, wt, val, pos in iter_fields(inner):
                            if fno == ps.PKT_PROCESS_TREE and wt == 2:
                                process_tree(inner[pos : pos + val], self._initial, first=True)
                except (WireError, ValueError, zlib.error, zstandard.ZstdError):
                    continue
        except (Truncated, Corrupt):
            pass

    def _packet(self, pkt: memoryview) -> None:
        seq_id = 0
        flags = 0
        has_track = False
        bundles: list[tuple[int, int]] = []
        for fno, wt, val, pos in iter_fields(pkt):
            if wt == 0 and fno == ps.PKT_SEQUENCE_ID:
                seq_id = val
            elif wt == 0 and fno == ps.PKT_SEQUENCE_FLAGS:
                flags |= val
            elif wt == 0 and fno == ps.PKT_INCREMENTAL_STATE_CLEARED and val:
                flags |= ps.SEQ_INCREMENTAL_STATE_CLEARED
            elif wt == 2 and fno == ps.PKT_FTRACE_EVENTS:
                bundles.append((pos, val))
            elif wt == 2 and fno in (ps.PKT_TRACK_EVENT, ps.PKT_TRACK_DESCRIPTOR):
                has_track = True
        if flags & ps.SEQ_INCREMENTAL_STATE_CLEARED and self._symbols.get(seq_id):
            # pending events still refer to the old interned ids: decode them first
            self._deferred.extend(self._flush())
            self._symbols[seq_id] = {}
        for fno, wt, val, pos in iter_fields(pkt):
            if wt != 2:
                continue
            body = pkt[pos : pos + val]
            if fno == ps.PKT_INTERNED_DATA:
                table = self._symbols.setdefault(seq_id, {})
                for ifno, iwt, ival, ipos in iter_fields(body):
                    if ifno == ps.INTERNED_KERNEL_SYMBOLS and iwt == 2:
                        iid, text = interned_string(body[ipos : ipos + ival])
                        table[iid] = text
            elif fno == ps.PKT_PROCESS_TREE:
                changed = process_tree(body, self._names, first=False, peek=True)
                if changed and self._pending_events:
                    self._deferred.extend(self._flush())
                process_tree(body, self._names, first=False)
            elif fno == ps.PKT_FTRACE_STATS:
                self._ftrace_stats(body)
            elif fno == ps.PKT_SYSTEM_INFO:
                self._system_info(body)
            elif fno == ps.PKT_CHROME_EVENTS:
                self._metadata(body)
        for pos, val in bundles:
            self._bundle(pkt[pos : pos + val], seq_id)
        if has_track:
            self._tracks.add(bytes(pkt))

    def _bundle(self, body: memoryview, seq_id: int) -> None:
        data = bytes(body)
        buf = np.frombuffer(data, dtype=np.uint8)  # bundle_fields checks every read
        end = len(data)
        cpu, lost, clock_seen = 0, False, False
        offs: list[np.ndarray] = []
        lens: list[np.ndarray] = []
        descriptors: list[bytes] = []
        compact: bytes | None = None
        fno, wire, vals, poss, bad_at, code, detail = bundle_fields(buf, 0, end)
        if bad_at >= 0:
            raise WireError(error_text(code, detail, 0), bad_at)
        is_event = (fno == ps.B_EVENT) & (wire == 2)
        offs.append(poss[is_event])
        lens.append(vals[is_event].astype(np.int64))
        other = np.flatnonzero(~is_event)
        for f_no, f_wt, val, vpos in zip(
            fno[other].tolist(),
            wire[other].tolist(),
            vals[other].tolist(),
            poss[other].tolist(),
            strict=True,
        ):
            if f_no == ps.B_CPU and f_wt == 0:
                if val >= MAX_CPUS:
                    raise WireError(f"bundle of cpu {val}: out of range", int(vpos))
                cpu = val
            elif f_no == ps.B_LOST and f_wt == 0:
                lost = bool(val)
            elif f_no == ps.B_CLOCK and f_wt == 0:
                self.meta.clock = ps.FTRACE_CLOCKS.get(val, "unknown")
                clock_seen = True
            elif f_no == ps.B_FTRACE_TS and f_wt == 0:
                self.meta.recorder_options.setdefault("ftrace_timestamp", val)
            elif f_no == ps.B_BOOT_TS and f_wt == 0:
                self.meta.recorder_options.setdefault("boot_timestamp", val)
            elif f_no == ps.B_DESCRIPTORS and f_wt == 2:
                descriptors.append(data[vpos : vpos + val])
            elif f_no == ps.B_COMPACT and f_wt == 2:
                compact = data[vpos : vpos + val]
            elif f_no == ps.B_ERROR and f_wt == 2:
                self._problem("ring-buffer page(s) the recorder could not parse", None)
        for d in descriptors:
            if d in self._seen_descriptors:  # recorders repeat them in every bundle
                continue
            try:
                layout = ps.decode_descriptor(d)
            except (WireError, ValueError) as e:
                self._problem(f"bad generic event descriptor ignored ({e})", None)
                continue
            self._descriptors.setdefault(layout.field_id, layout)
            self._seen_descriptors.add(d)
        if not clock_seen:
            self.meta.clock = "boot"  # Perfetto omits the clock when it is the boot clock
        rows = compact_sched_rows(compact, cpu, self._sched) if compact is not None else None
        o_all = np.concatenate(offs) if offs else np.zeros(0, np.int64)
        l_all = np.concatenate(lens) if lens else np.zeros(0, np.int64)
        if lost:
            self.meta.lost.append(
                LostEvents(cpu=cpu, ts=None, count=None, seq=self._seq + self._pending_events)
            )
            self._gaps.append((cpu, len(self.meta.lost) - 1))
        self._pending.append(_Bundle(data, o_all, l_all, cpu, seq_id, lost, rows))
        self._pending_events += len(o_all) + (rows.height if rows is not None else 0)

    def _ftrace_stats(self, body: memoryview) -> None:
        phase = 0
        cpus: list[tuple[int, int]] = []
        for fno, wt, val, pos in iter_fields(body):
            if fno == 1 and wt == 0:
                phase = val
            elif fno == 2 and wt == 2:
                cpu = overrun = 0
                for cfno, cwt, cval, _ in iter_fields(body[pos : pos + val]):
                    if cfno == 1 and cwt == 0:
                        cpu = cval
                    elif cfno == 3 and cwt == 0:
                        overrun = cval
                cpus.append((cpu, overrun))
        for cpu, overrun in cpus:
            self._overrun.setdefault(cpu, {})[phase] = overrun

    def _metadata(self, body: memoryview) -> None:
        """Recorder options our writer carried over from the source trace."""
        for fno, wt, val, pos in iter_fields(body):
            if fno != 2 or wt != 2:
                continue
            entry = dict(strings(body[pos : pos + val]))
            if entry.get(1) == ps.CLOCK_KEY and 2 in entry and self.meta.clock is None:
                self.meta.clock = entry[2]
            if entry.get(1) == ps.OPTIONS_KEY and 5 in entry:
                with contextlib.suppress(ValueError):
                    options = json.loads(entry[5])
                    if isinstance(options, dict):
                        self.meta.recorder_options.update(options)

    def _system_info(self, body: memoryview) -> None:
        for fno, wt, val, pos in iter_fields(body):
            if fno == 1 and wt == 2:
                uts = body[pos : pos + val]
                for ufno, uwt, uval, upos in iter_fields(uts):
                    if ufno == 3 and uwt == 2:
                        self.meta.kernel_release = bytes(uts[upos : upos + uval]).decode(
                            "utf-8", "replace"
                        )
            elif fno == 8 and wt == 0:
                self.meta.cpus = val

    # ------------------------------------------------------------------ decoding

    def _flush(self) -> Iterator[pa.RecordBatch]:
        pending, self._pending, self._pending_events = self._pending, [], 0
        if not pending:
            return
        batch = self._build(pending)
        if batch is not None and batch.num_rows:
            self.meta.event_count += batch.num_rows
            yield batch

    def _build(self, pending: list[_Bundle], numbers: bool = True) -> pa.RecordBatch | None:
        """One batch of the bundles' events; ``numbers``: give the rows numbers_only asked
        for as numbers (not when halves of a damaged batch are put back together)."""
        sizes = np.array([len(b.data) for b in pending], dtype=np.int64)
        buf = np.zeros(int(sizes.sum()) + PAD, dtype=np.uint8)
        at = 0
        for b in pending:
            buf[at : at + len(b.data)] = np.frombuffer(b.data, dtype=np.uint8)
            at += len(b.data)
        bases = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        counts = np.array([len(b.offs) for b in pending], dtype=np.int64)
        off = np.concatenate(
            [b.offs + base for b, base in zip(pending, bases.tolist(), strict=True)]
        )
        ln = np.concatenate([b.lens for b in pending])
        ev_bundle = np.repeat(np.arange(len(pending)), counts)
        row_seq = np.array([b.seq_id for b in pending], dtype=np.int64)[ev_bundle]
        try:
            dec = self._decode(buf, off, ln, row_seq, self._numbers if numbers else None)
        except WireError as e:
            if len(pending) == 1:
                self._problem(f"malformed bundle skipped ({e.detail})", None)
                return None
            half = len(pending) // 2
            parts = [self._build(pending[:half], False), self._build(pending[half:], False)]
            kept = [p for p in parts if p is not None and p.num_rows]
            if not kept:
                return None
            self._seq -= sum(p.num_rows for p in kept)  # renumbered below
            table = pa.Table.from_batches(kept).combine_chunks()
            return self._renumber(table.to_batches()[0])
        for what, count in dec.problems.items():
            self._problems[what] = self._problems.get(what, 0) + count
        _check_ranges(dec, self._problems)
        keep = dec.keep
        m = len(off)
        stacks: list[list[str] | None] | None = None
        if dec.stacks:
            stacks = [None] * m
            for r, frames in dec.stacks.items():
                stacks[r] = frames
                if r in dec.stack_attached:
                    keep[r] = False
                if r > 0 and ev_bundle[r - 1] == ev_bundle[r]:
                    stacks[r - 1] = frames
        cpus = np.array([b.cpu for b in pending], dtype=np.int64)
        if stacks is None and not any(b.compact is not None for b in pending):
            return self._columns(dec, keep, cpus[ev_bundle])
        frame = pl.DataFrame(
            {
                "row": np.arange(m, dtype=np.int64),
                "bundle": ev_bundle,
                "ts": dec.ts,
                "cpu": cpus[ev_bundle],
                "pid": pl.select(
                    pl.when(pl.Series(dec.pid_valid)).then(pl.Series(dec.pid))
                ).to_series(),
                "name": pl.from_arrow(dec.names),
                "system": pl.from_arrow(dec.systems),
                "args": pl.from_arrow(dec.args),
                "stack": pl.Series(
                    stacks if stacks is not None else [None] * m, dtype=pl.List(pl.String)
                ),
                "keep": keep,
            }
        )
        extra = [
            b.compact.with_columns(
                bundle=pl.lit(i, pl.Int64),
                cpu=pl.lit(b.cpu, pl.Int64),
                keep=pl.lit(True),
                stack=pl.lit(None, pl.List(pl.String)),
                row=pl.lit(None, pl.Int64),
            )
            for i, b in enumerate(pending)
            if b.compact is not None and b.compact.height
        ]
        if extra:
            frame = pl.concat(
                [frame, *(e.select(frame.columns) for e in extra)], how="vertical_relaxed"
            )
            frame = frame.sort(["bundle", "ts"], maintain_order=True)
        frame = frame.filter(pl.col("keep"))
        pids = frame["pid"].fill_null(-1).to_numpy()
        uniq, inv = np.unique(pids, return_inverse=True)
        info = [self._names.get(p) or self._initial.get(p) or (None, None) for p in uniq.tolist()]
        comm = pl.Series([c for c, _ in info], dtype=pl.String).gather(inv.ravel())
        tgid = pl.Series([t for _, t in info], dtype=pl.Int32).gather(inv.ravel())
        n = frame.height
        out = frame.select(
            seq=pl.int_range(self._seq, self._seq + n, dtype=pl.Int64),
            ts=pl.col("ts"),
            cpu=pl.col("cpu").cast(pl.Int32),
            pid=pl.col("pid").cast(pl.Int32),
            tgid=tgid,
            comm=comm,
            system=pl.col("system"),
            name=pl.col("name"),
            args=pl.col("args"),
            stack=pl.col("stack"),
        )
        self._seq += n
        if not n:
            return None
        batch = out.to_arrow().cast(EVENT_SCHEMA).combine_chunks().to_batches()[0]
        if not dec.numbers:
            return batch
        rows = frame["row"].fill_null(-1).to_numpy()
        new_pos = np.full(m, -1, np.int64)
        new_pos[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
        order, extra, schema = self._given(dec.numbers, new_pos, n)
        if order is None:
            return batch
        batch = batch.take(pa.array(order))
        return pa.RecordBatch.from_arrays([*batch.columns, *extra], schema=schema)

    def _columns(self, dec: Decoded, keep: np.ndarray, cpu: np.ndarray) -> pa.RecordBatch | None:
        """The batch straight from the decoded columns (no stacks, no compact_sched rows)."""
        names, systems, args = dec.names, dec.systems, dec.args
        ts, pid, pid_valid = dec.ts, dec.pid, dec.pid_valid
        new_pos = None
        if not keep.all():
            idx = np.flatnonzero(keep)
            new_pos = np.full(len(keep), -1, np.int64)
            new_pos[idx] = np.arange(len(idx))
            take = pa.array(idx)
            names, systems, args = names.take(take), systems.take(take), args.take(take)
            ts, pid, pid_valid, cpu = ts[idx], pid[idx], pid_valid[idx], cpu[idx]
        n = len(ts)
        if not n:
            return None
        seq = np.arange(self._seq, self._seq + n, dtype=np.int64)
        self._seq += n
        order, extra, schema = self._given(dec.numbers, new_pos, n)
        if order is not None:
            ts, pid, pid_valid, cpu, seq = (a[order] for a in (ts, pid, pid_valid, cpu, seq))
            take = pa.array(order)
            names, systems, args = names.take(take), systems.take(take), args.take(take)
        pids = np.where(pid_valid, pid, -1)
        uniq, inv = np.unique(pids, return_inverse=True)
        info = [self._names.get(p) or self._initial.get(p) or (None, None) for p in uniq.tolist()]
        where = pa.array(inv.ravel())
        comm = pa.array([c for c, _ in info], pa.large_string()).take(where)
        tgid = pa.array([t for _, t in info], pa.int32()).take(where)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(seq),
                pa.array(ts),
                pa.array(cpu.astype(np.int32)),
                pa.array(pid.astype(np.int32), mask=~pid_valid),
                tgid,
                comm,
                systems,
                names,
                args,
                pa.nulls(n, EVENT_SCHEMA.field("stack").type),
                *extra,
            ],
            schema=schema,
        )

    def _given(
        self, numbers: Numbers, new_pos: np.ndarray | None, n: int
    ) -> tuple[np.ndarray | None, list[pa.Array], pa.Schema]:
        """(row order, value columns, schema) of a batch of ``n`` rows whose rows given as
        numbers were ``numbers``' rows of the decoded events, now at ``new_pos[row]``
        (-1: dropped; None: the same rows)."""
        found: Numbers = {}
        for name, (rows, values) in numbers.items():
            if new_pos is not None:
                pos = new_pos[rows]
                ok = pos >= 0
                rows, values = pos[ok], [v[ok] for v in values]
            if len(rows):
                found[name] = (rows, values)
        if not found:
            return None, [], EVENT_SCHEMA
        keys = {name: self._numbers[name].keys for name in found}
        order, _ranges, columns, schema = given_layout(n, found, keys)
        return order, columns, schema

    def _renumber(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        n = batch.num_rows
        seq = pa.array(np.arange(self._seq, self._seq + n, dtype=np.int64))
        self._seq += n
        return batch.set_column(0, EVENT_SCHEMA.field("seq"), seq)

    def _decode(
        self,
        buf: np.ndarray,
        off: np.ndarray,
        ln: np.ndarray,
        row_seq: np.ndarray,
        numbers: dict[str, NumberSpec] | None,
    ) -> Decoded:
        def layout(tid: int) -> ps.EventLayout | None:
            if tid >= ps.GENERIC_MIN_ID:
                return self._descriptors.get(tid)
            lay = ps.typed_events().get(tid)
            if lay is not None and lay.name in ps.LOSSY_TYPED:
                self._typed_seen.add(lay.name)
            return lay

        def symbol(keys: tuple[np.ndarray, np.ndarray]) -> tuple[list[str | None], np.ndarray]:
            rows, iids = keys
            # one dict lookup per distinct (sequence, iid), then a gather
            seqs = row_seq[rows]
            distinct = np.unique(seqs).tolist()
            found: list[str | None] = []
            inv = np.empty(len(rows), dtype=np.int64)
            for s in distinct:
                at = np.flatnonzero(seqs == s) if len(distinct) > 1 else slice(None)
                uniq, where = np.unique(iids[at], return_inverse=True)
                inv[at] = where.ravel() + len(found)
                table = self._symbols.get(s, {})
                found.extend(table.get(i) for i in uniq.tolist())
            return found, inv

        return decode_events(buf, off, ln, layout, symbol, numbers)

    def _finish(self) -> None:
        meta = self.meta
        for cpu, phases in self._overrun.items():
            delta = phases.get(2, 0) - phases.get(1, 0)
            if delta <= 0:
                continue
            gaps = [i for c, i in self._gaps if c == cpu]
            if len(gaps) == 1:
                meta.lost[gaps[0]].count = delta
            elif not gaps:
                meta.lost.append(LostEvents(cpu=cpu, ts=None, count=delta, seq=self._seq))
            else:
                meta.warn(
                    f"cpu {cpu}: {delta} events lost over {len(gaps)} gaps (per-gap counts unknown)"
                )
        for name in sorted(self._typed_seen):
            meta.warn(ps.LOSSY_TYPED[name])
        where = f" (first at byte {self._first_bad})" if self._first_bad is not None else ""
        for what, count in self._problems.items():
            meta.warn(f"{self.path}{where}: {count} × {what}", partial=True)
            where = ""
        if meta.lost:
            total = sum(x.count or 0 for x in meta.lost)
            meta.warn(
                f"the tracer lost events: {len(meta.lost)} gap(s), {total} event(s) counted",
                partial=True,
            )


def _check_ranges(dec: Decoded, problems: dict[str, int]) -> None:
    """Values a damaged varint puts outside their column: pid null, event dropped (ts)."""
    bad_pid = dec.pid_valid & ((dec.pid < 0) | (dec.pid > _INT32_MAX))
    if bad_pid.any():
        dec.pid_valid = dec.pid_valid & ~bad_pid
        what = "event pid(s) beyond 2^31 (damaged): stored as null"
        problems[what] = problems.get(what, 0) + int(bad_pid.sum())
    bad_ts = dec.keep & (dec.ts < 0)
    if bad_ts.any():
        dec.keep = dec.keep & ~bad_ts
        what = "event(s) with a timestamp beyond 2^63 (damaged) dropped"
        problems[what] = problems.get(what, 0) + int(bad_ts.sum())


__all__ = ["PerfettoReader"]
