"""Write any trace tracereplay reads as a Perfetto trace (``tracereplay convert``).

Events are encoded the way Perfetto's ftrace recorder does, so ui.perfetto.dev
opens the file: one ``FtraceEventBundle`` per CPU and stretch of time, typed
``FtraceEvent`` protos where Perfetto has one whose fields match the kernel's
(``kvm_unmap_hva_range``, ``task_newtask``, ``sched_switch`` ...), the dense
generic encoding otherwise (field ids from 65536, a ``GenericEventDescriptor``
per event type in each bundle that uses it, signed integers as plain varints),
``void *`` fields as interned kernel symbols, thread names and tgids as process
trees written before the events that need them, lost events as the bundle's
``lost_events`` flag plus per-CPU counts in ``ftrace_stats``.

Two things Perfetto has no encoding for are kept in a form the reader restores
and the UI still shows: stack traces (dense generic ``ftrace/kernel_stack``
events, frames as interned symbols) and ``args`` the source could not decode
into the event's fields (dense generic events with the fields as given). The
output is written to a temporary file and renamed into place when complete.
"""

from __future__ import annotations

import bisect
import itertools
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from tracereplay.atomic import atomic_output
from tracereplay.formats.common.args_json import json_str_expr
from tracereplay.formats.common.known_events import KNOWN_EVENTS, SYM, SYSTEM_OF, B, I, S, U, X
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto.protowire import (
    I64,
    len_field,
    tag_bytes,
    varint_bytes,
    varint_field,
)
from tracereplay.readers import Reader, open_trace
from tracereplay.tracemeta import TraceMeta
from tracereplay.writers.common import event_frames
from tracereplay.writers.perfetto_encode import Column, encode_group, place

CHUNK_EVENTS = 1 << 17
BUNDLE_EVENTS = 4096
SEQ_ID = 1
_U64 = (1 << 64) - 1
_INT_TYPES = {ps.T_INT64, ps.T_UINT64, ps.T_INT32, ps.T_UINT32, ps.T_BOOL, ps.T_SINT32, ps.T_SINT64}
_RANGE = {ps.T_INT32: (-(1 << 31), (1 << 31) - 1), ps.T_UINT32: (0, (1 << 32) - 1)}
_DTYPE = {U: pl.UInt64, X: pl.UInt64, I: pl.Int64, B: pl.Boolean, S: pl.String, SYM: pl.String}


@dataclass
class WriteResult:
    path: str
    events: int
    bundles: int
    meta: TraceMeta
    warnings: list[str] = field(default_factory=list)


def write_perfetto(
    source: str | Reader,
    out_path: str,
    *,
    force: bool = False,
    bundle_events: int = BUNDLE_EVENTS,
    extra_packets: Iterable[bytes] = (),
) -> WriteResult:
    """Encode every event of ``source`` into a Perfetto trace at ``out_path`` (atomic).

    ``extra_packets``: serialized ``TracePacket`` s appended after the events (the
    counterfactual tracks of ``tracereplay export``).
    """
    reader = open_trace(source) if isinstance(source, str) else source
    with (
        atomic_output(out_path, force=force, suffix=".perfetto-trace") as tmp,
        open(tmp, "wb") as out,
    ):
        writer = _Writer(out, reader.meta, bundle_events)
        for frame in event_frames(reader, CHUNK_EVENTS):
            writer.chunk(frame)
        writer.finish()
        for packet in extra_packets:
            writer._packet(packet)
    return WriteResult(out_path, writer.events, writer.bundles, reader.meta, writer.warnings)


@dataclass
class _Group:
    rows: I64
    data: np.ndarray
    lengths: I64
    field_id: int


class _Writer:
    def __init__(self, out: BinaryIO, meta: TraceMeta, bundle_events: int) -> None:
        self.out = out
        self.meta = meta
        self.bundle_events = bundle_events
        self.symbols: dict[str, int] = {}
        self.new_symbols: list[tuple[int, str]] = []
        self.dense: dict[tuple[str, str | None, tuple[ps.ProtoField, ...]], ps.EventLayout] = {}
        self.descriptor_bytes: dict[int, bytes] = {}
        self.names: dict[int, tuple[str | None, int | None]] = {}
        self.lost_used = 0
        self.lost_total: dict[int, int] = {}
        self.gap_cpus: set[int] = set()
        self.cpus: set[int] = set()
        self.events = 0
        self.bundles = 0
        self.first = True
        self.stack_ids: dict[int, list[int]] = {}  # row -> dense ids of its stack events
        self.warnings: list[str] = []

    # -------------------------------------------------------------- packets

    def _packet(self, body: bytes) -> None:
        self.out.write(len_field(1, body))

    def _sequence_packet(self, body: bytes) -> None:
        flags = ps.SEQ_NEEDS_INCREMENTAL_STATE
        if self.first:
            flags |= ps.SEQ_INCREMENTAL_STATE_CLEARED
            self.first = False
        self._packet(
            body
            + varint_field(ps.PKT_SEQUENCE_ID, SEQ_ID)
            + varint_field(ps.PKT_SEQUENCE_FLAGS, flags)
        )

    def _intern(self, text: str) -> int:
        iid = self.symbols.get(text)
        if iid is None:
            iid = self.symbols[text] = len(self.symbols) + 1
            self.new_symbols.append((iid, text))
        return iid

    def _flush_symbols(self) -> None:
        if not self.new_symbols and not self.first:
            return
        body = b"".join(
            len_field(
                ps.INTERNED_KERNEL_SYMBOLS, varint_field(1, iid) + len_field(2, text.encode())
            )
            for iid, text in self.new_symbols
        )
        self.new_symbols = []
        self._sequence_packet(len_field(ps.PKT_INTERNED_DATA, body))

    def _process_tree(self, changes: list[tuple[int, str | None, int | None]]) -> None:
        threads = b""
        for pid, comm, tgid in changes:
            t = varint_field(1, pid)
            if comm is not None:
                t += len_field(2, comm.encode())
            if tgid is not None:
                t += varint_field(3, tgid)
            threads += len_field(2, t)
        self._packet(len_field(ps.PKT_PROCESS_TREE, threads))

    # -------------------------------------------------------------- chunks

    def chunk(self, df: pl.DataFrame) -> None:
        n = df.height
        df = df.with_columns(
            r=pl.int_range(0, n, dtype=pl.Int64),
            cpu=pl.col("cpu").fill_null(0),
        )
        cuts, trees = self._name_changes(df)
        seg = np.searchsorted(np.array(cuts, dtype=np.int64), np.arange(n), side="right")
        lost_rows = self._lost_rows(df)
        cpu = df["cpu"].to_numpy().astype(np.int64)
        self.cpus.update(np.unique(cpu).tolist())
        order = np.lexsort((np.arange(n), cpu, seg))
        groups, suffix = self._encode(df, order)
        lengths = np.zeros(n, dtype=np.int64)
        ftype = np.zeros(n, dtype=np.int64)
        parts: list[tuple[I64, np.ndarray, I64]] = []
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        for g in groups:
            lengths[g.rows] += g.lengths
            ftype[g.rows] = g.field_id
            parts.append((rank[g.rows], g.data, g.lengths))
        if suffix:
            srows = np.array(list(suffix), dtype=np.int64)
            sdata = [suffix[r] for r in srows.tolist()]
            slen = np.array([len(d) for d in sdata], dtype=np.int64)
            lengths[srows] += slen
            parts.append((rank[srows], np.frombuffer(b"".join(sdata), np.uint8), slen))
        blob, bounds = place(lengths[order], parts)
        self._flush_symbols()
        starts = self._bundle_starts(
            seg[order], cpu[order], lost_rows[order], df["name"].to_numpy()[order]
        )
        kinds = ftype[order]
        tree_at = {int(np.searchsorted(seg[order], s)): changes for s, changes in trees.items()}
        stack_pos = {int(rank[r]): ids for r, ids in self.stack_ids.items()}
        self.stack_ids = {}
        stack_keys = sorted(stack_pos)
        for a, b in itertools.pairwise(starts):
            if a in tree_at:
                self._process_tree(tree_at[a])
            c = int(cpu[order][a])
            lost = bool(lost_rows[order][a]) or c in self.gap_cpus
            self.gap_cpus.discard(c)
            ids = set(np.unique(kinds[a:b]).tolist())
            lo, hi = bisect.bisect_left(stack_keys, a), bisect.bisect_left(stack_keys, b)
            for p in stack_keys[lo:hi]:
                ids.update(stack_pos[p])
            dense = sorted(i for i in ids if i >= ps.GENERIC_MIN_ID)
            self._bundle(c, bytes(blob[bounds[a] : bounds[b]]), lost, dense)
        self.events += n

    def _bundle(self, cpu: int, events: bytes, lost: bool, dense_ids: list[int]) -> None:
        body = varint_field(ps.B_CPU, cpu) + events
        if lost:
            body += varint_field(ps.B_LOST, 1)
        clock = ps.CLOCK_IDS.get(self.meta.clock or "", None)
        if self.meta.clock != "boot":
            body += varint_field(ps.B_CLOCK, clock if clock is not None else 1)
        for i in dense_ids:
            body += len_field(ps.B_DESCRIPTORS, self.descriptor_bytes[i])
        self._sequence_packet(len_field(ps.PKT_FTRACE_EVENTS, body))
        self.bundles += 1

    def _bundle_starts(self, seg: I64, cpu: I64, lost: np.ndarray, names: np.ndarray) -> list[int]:
        n = len(seg)
        if n == 0:
            return [0]
        brk = np.zeros(n, dtype=bool)
        brk[0] = True
        brk[1:] = (seg[1:] != seg[:-1]) | (cpu[1:] != cpu[:-1]) | lost[1:]
        starts = [*np.flatnonzero(brk).tolist(), n]
        out: list[int] = []
        for a, b in itertools.pairwise(starts):
            s = a
            while s < b:
                out.append(s)
                s += self.bundle_events
                # never separate an event from the stack that follows it
                while s < b and names[s] == ps.STACK_EVENT:
                    s += 1
        return [*out, n]

    def _name_changes(
        self, df: pl.DataFrame
    ) -> tuple[list[int], dict[int, list[tuple[int, str | None, int | None]]]]:
        """Rows where a thread's (comm, tgid) changes, and the process trees to write."""
        k = df.select("r", "pid", "comm", "tgid").filter(pl.col("pid").is_not_null())
        k = k.with_columns(
            first=pl.col("r") == pl.col("r").min().over("pid"),
            changed=(pl.col("comm").ne_missing(pl.col("comm").shift().over("pid")))
            | (pl.col("tgid").ne_missing(pl.col("tgid").shift().over("pid"))),
        ).filter(pl.col("first") | pl.col("changed"))
        cuts: list[int] = []
        # segment k starts at row cuts[k - 1]; its tree is written before its bundles
        trees: dict[int, list[tuple[int, str | None, int | None]]] = {0: []}
        for r, pid, comm, tgid, first, _ in k.iter_rows():
            value = (comm, tgid)
            known = self.names.get(pid)
            if first and known is None:
                trees[0].append((pid, comm, tgid))
            elif known != value:
                cuts.append(r)
                trees[len(cuts)] = [(pid, comm, tgid)]
            self.names[pid] = value
        return cuts, {s: t for s, t in trees.items() if t}

    def _lost_rows(self, df: pl.DataFrame) -> np.ndarray:
        """Rows that follow a lost-events gap on their CPU (a new bundle with lost_events)."""
        n = df.height
        mark = np.zeros(n, dtype=bool)
        lost = self.meta.lost
        if self.lost_used >= len(lost):
            return mark
        seq = df["seq"].to_numpy()
        cpu = df["cpu"].to_numpy()
        last = int(seq[-1]) if n else -1
        while self.lost_used < len(lost) and lost[self.lost_used].seq <= last:
            gap = lost[self.lost_used]
            self.lost_used += 1
            c = gap.cpu if gap.cpu is not None else 0
            self.lost_total[c] = self.lost_total.get(c, 0) + (gap.count or 0)
            after = np.flatnonzero((cpu == c) & (seq > gap.seq))
            if after.size:
                mark[after[0]] = True
            else:
                self.gap_cpus.add(c)
        return mark

    # -------------------------------------------------------------- encoding

    def _encode(self, df: pl.DataFrame, order: I64) -> tuple[list[_Group], dict[int, bytes]]:
        groups: list[_Group] = []
        name_codes = df["name"].cast(pl.Categorical).to_physical().to_numpy()
        names = df["name"].to_numpy()
        generic_rows: list[int] = []
        for code in np.unique(name_codes).tolist():
            rows = np.flatnonzero(name_codes == code)
            name = str(names[rows[0]])
            known = KNOWN_EVENTS.get(name)
            if known is None or name == ps.STACK_EVENT:
                generic_rows.extend(rows.tolist())
                continue
            sub = df[rows]
            ok = self._conforming(name, sub)
            good = rows[ok]
            if good.size:
                groups.append(self._encode_known(name, df[good], good))
            generic_rows.extend(rows[~ok].tolist())
        suffix: dict[int, bytes] = {}
        if generic_rows:
            groups.extend(self._encode_generic(df, np.array(sorted(generic_rows), dtype=np.int64)))
        self._stacks(df, order, suffix)
        return groups, suffix

    def _conforming(self, name: str, sub: pl.DataFrame) -> np.ndarray:
        """Rows whose args are exactly the normalized fields of a known event (re-encoded)."""
        kinds = KNOWN_EVENTS[name].fields
        dtype = pl.Struct({k: _DTYPE[v] for k, v in kinds.items()})
        try:
            parsed = sub.select(v=pl.col("args").str.json_decode(dtype)).unnest("v")
        except pl.exceptions.PolarsError:
            return np.zeros(sub.height, dtype=bool)
        exprs: list[pl.Expr] = [pl.lit("{")]
        for i, (key, kind) in enumerate(kinds.items()):
            exprs.append(pl.lit(("," if i else "") + f'"{key}":'))
            c = pl.col(key)
            if kind == B:
                v = pl.when(c).then(pl.lit("true")).otherwise(pl.lit("false"))
            elif kind in (S, SYM):
                v = json_str_expr(c)
            else:
                v = c.cast(pl.String)
            exprs.append(v.fill_null("null"))
        exprs.append(pl.lit("}"))
        again = parsed.select(pl.concat_str(exprs)).to_series()
        system = SYSTEM_OF.get(name)
        same = (again == sub["args"]).fill_null(False)
        same = same & (sub["system"] == system).fill_null(False) if system else same
        return same.to_numpy()

    def _encode_known(self, name: str, sub: pl.DataFrame, rows: I64) -> _Group:
        kinds = KNOWN_EVENTS[name].fields
        parsed = sub.select(
            v=pl.col("args").str.json_decode(pl.Struct({k: _DTYPE[v] for k, v in kinds.items()}))
        ).unnest("v")
        typed = ps.typed_by_name().get(name)
        cols = self._typed_columns(name, parsed, typed) if typed is not None else None
        if cols is not None and typed is not None:
            field_id = typed.field_id
        else:
            layout = self._layout(
                name,
                SYSTEM_OF.get(name),
                [
                    (k, ps.T_STRING if v == S else ps.T_INT64 if v == I else ps.T_UINT64)
                    for k, v in kinds.items()
                ],
            )
            field_id = layout.field_id
            cols = []
            for pf, (key, kind) in zip(layout.fields, kinds.items(), strict=True):
                cols.append(self._column(pf.number, kind, parsed[key]))
        return self._group(sub, rows, field_id, cols)

    def _typed_columns(
        self, name: str, parsed: pl.DataFrame, typed: ps.EventLayout
    ) -> list[Column] | None:
        by = typed.by_name
        cols: list[Column] = []
        for key, kind in KNOWN_EVENTS[name].fields.items():
            pf = by.get(key)
            if pf is None or kind == SYM:
                return None
            s = parsed[key]
            if name == "sched_switch" and key == "prev_state" and pf.type in _INT_TYPES:
                mapped = [None if v is None else ps.prev_state_value(v) for v in s.to_list()]
                if any(
                    m is None and v is not None for m, v in zip(mapped, s.to_list(), strict=True)
                ):
                    return None
                cols.append(Column.of_ints(pf.number, pl.Series(mapped, dtype=pl.Int64)))
                continue
            if (kind == S) != (pf.type == ps.T_STRING) or (kind != S and pf.type not in _INT_TYPES):
                return None
            if pf.type in _RANGE and s.len() > s.null_count():
                lo, hi = _RANGE[pf.type]
                mn, mx = s.min(), s.max()
                if mn < lo or mx > hi:  # type: ignore[operator]
                    return None
            cols.append(self._column(pf.number, kind, s))
        return cols

    def _column(self, number: int, kind: str, s: pl.Series) -> Column:
        if kind == SYM:
            mapped = [None if v is None else self._intern(v) for v in s.to_list()]
            return Column.of_ints(number, pl.Series(mapped, dtype=pl.UInt64))
        if kind == S:
            return Column.of_strings(number, s)
        return Column.of_ints(number, s)

    def _layout(
        self,
        name: str,
        group: str | None,
        fields: list[tuple[str, int]],
        repeated: str | set[str] | None = None,
    ) -> ps.EventLayout:
        many = {repeated} if isinstance(repeated, str) else repeated or set()
        pfs = tuple(ps.ProtoField(i + 1, k, t, k in many) for i, (k, t) in enumerate(fields))
        key = (name, group, pfs)
        layout = self.dense.get(key)
        if layout is None:
            layout = ps.EventLayout(ps.GENERIC_MIN_ID + len(self.dense), name, group, pfs, False)
            self.dense[key] = layout
            self.descriptor_bytes[layout.field_id] = ps.encode_descriptor(layout)
        return layout

    def _group(self, sub: pl.DataFrame, rows: I64, field_id: int, cols: list[Column]) -> _Group:
        pid = sub["pid"]
        data, lengths = encode_group(
            field_id,
            sub["ts"].to_numpy().astype(np.int64),
            pid.fill_null(0).to_numpy().astype(np.int64),
            pid.is_not_null().to_numpy(),
            cols,
        )
        return _Group(rows, data, lengths, field_id)

    def _encode_generic(self, df: pl.DataFrame, rows: I64) -> list[_Group]:
        """Events without a known layout: one dense layout per (name, system, fields, types)."""
        sub = df[rows]
        buckets: dict[
            tuple[str, str | None, tuple[tuple[str, str], ...]], tuple[list[int], list[list[Any]]]
        ] = {}
        for i, (name, system, args) in enumerate(sub.select("name", "system", "args").iter_rows()):
            if name == ps.STACK_EVENT:
                continue
            values = _parse_args(args, lists=True)
            sig = tuple((k, _kind_of(v)) for k, v in values.items())
            bucket = buckets.setdefault((name, system, sig), ([], []))
            bucket[0].append(i)
            bucket[1].append(list(values.values()))
        groups = []
        for (name, system, sig), (idx, vals) in buckets.items():
            types = {
                "s": ps.T_STRING,
                "i": ps.T_INT64,
                "u": ps.T_UINT64,
                "b": ps.T_BOOL,
                "d": ps.T_DOUBLE,
                "n": ps.T_STRING,
            }
            layout = self._layout(
                name,
                system,
                [(k, _LIST_TYPES[t] if t in _LIST_TYPES else types[t]) for k, t in sig],
                repeated={k for k, t in sig if t in _LIST_TYPES},
            )
            cols = []
            for j, (pf, (_k, t)) in enumerate(zip(layout.fields, sig, strict=True)):
                col = [v[j] for v in vals]
                if t in _LIST_TYPES:
                    cols.append(_packed_column(pf.number, col))
                    continue
                dtype = {
                    "s": pl.String,
                    "i": pl.Int64,
                    "u": pl.UInt64,
                    "b": pl.Boolean,
                    "d": pl.Float64,
                    "n": pl.String,
                }[t]
                series = pl.Series(col if t != "n" else [None] * len(col), dtype=dtype)
                cols.append(
                    Column.of_strings(pf.number, series)
                    if t in "sn"
                    else Column.of_ints(pf.number, series)
                )
            idx_arr = np.array(idx, dtype=np.int64)
            groups.append(self._group(sub[idx_arr], rows[idx_arr], layout.field_id, cols))
        return groups

    def _stacks(self, df: pl.DataFrame, order: I64, suffix: dict[int, bytes]) -> None:
        """kernel_stack rows, and stacks of events with no kernel_stack row after them."""
        has = df.select(
            (pl.col("stack").is_not_null() | (pl.col("name") == ps.STACK_EVENT)).alias("h")
        )["h"].to_numpy()
        if not has.any():
            return
        pos = np.empty(len(order), dtype=np.int64)
        pos[order] = np.arange(len(order))
        names = df["name"].to_list()
        stacks = df["stack"].to_list()
        cpu = df["cpu"].to_list()
        for r in np.flatnonzero(has).tolist():
            row = df.row(r, named=True)
            frames = stacks[r] or []
            if names[r] == ps.STACK_EVENT:
                args = _parse_args(row["args"])
                self._stack_event(r, row, frames, args, False, suffix, own=True)
                continue
            nxt = order[pos[r] + 1] if pos[r] + 1 < len(order) else -1
            if (
                nxt >= 0
                and names[nxt] == ps.STACK_EVENT
                and cpu[nxt] == cpu[r]
                and stacks[nxt] == frames
            ):
                continue  # the kernel_stack row after it carries the stack
            self._stack_event(r, row, frames, {}, True, suffix, own=False)

    def _stack_event(
        self,
        r: int,
        row: dict[str, Any],
        frames: list[str],
        args: dict[str, Any],
        attached: bool,
        suffix: dict[int, bytes],
        own: bool,
    ) -> None:
        fields = [(ps.STACK_FRAMES, ps.T_UINT64)]
        if attached:
            fields.append((ps.STACK_ATTACHED, ps.T_UINT64))
        types = {
            "s": ps.T_STRING,
            "i": ps.T_INT64,
            "u": ps.T_UINT64,
            "b": ps.T_BOOL,
            "d": ps.T_DOUBLE,
            "n": ps.T_STRING,
        }
        fields += [(k, types[_kind_of(v)]) for k, v in args.items()]
        layout = self._layout(ps.STACK_EVENT, ps.STACK_GROUP, fields, repeated=ps.STACK_FRAMES)
        self.stack_ids.setdefault(r, []).append(layout.field_id)
        body = b"".join(varint_field(1, self._intern(f)) for f in frames)
        if attached:
            body += varint_field(2, 1)
        for pf, v in zip(layout.fields[2 if attached else 1 :], args.values(), strict=True):
            if v is None:
                continue
            if isinstance(v, str):
                body += len_field(pf.number, v.encode())
            elif isinstance(v, float):
                body += ps_fixed64(pf.number, v)
            else:
                body += varint_field(pf.number, int(v))
        ev = varint_field(1, int(row["ts"]))
        if row["pid"] is not None:
            ev += varint_field(2, int(row["pid"]))
        ev += len_field(layout.field_id, body)
        entry = len_field(ps.B_EVENT, ev)
        if own:
            suffix[r] = entry
        else:
            suffix[r] = suffix.get(r, b"") + entry

    def finish(self) -> None:
        self._flush_symbols()
        lost = self.meta.lost
        while self.lost_used < len(lost):
            gap = lost[self.lost_used]
            self.lost_used += 1
            c = gap.cpu if gap.cpu is not None else 0
            self.lost_total[c] = self.lost_total.get(c, 0) + (gap.count or 0)
            self.gap_cpus.add(c)
        for c in sorted(self.gap_cpus):
            self._bundle(c, b"", True, [])
        for phase, totals in ((1, {}), (2, self.lost_total)):
            cpus = b"".join(
                len_field(2, varint_field(1, c) + varint_field(3, totals.get(c, 0)))
                for c in sorted(self.cpus | set(self.lost_total))
            )
            self._packet(len_field(ps.PKT_FTRACE_STATS, varint_field(1, phase) + cpus))
        if self.meta.clock and self.meta.clock != "boot" and self.meta.clock not in ps.CLOCK_IDS:
            entry = len_field(1, ps.CLOCK_KEY.encode()) + len_field(2, self.meta.clock.encode())
            self._packet(len_field(ps.PKT_CHROME_EVENTS, len_field(2, entry)))
        if self.meta.recorder_options:
            entry = len_field(1, ps.OPTIONS_KEY.encode())
            entry += len_field(5, json.dumps(self.meta.recorder_options).encode())
            self._packet(len_field(ps.PKT_CHROME_EVENTS, len_field(2, entry)))
        info = b""
        if self.meta.kernel_release:
            info += len_field(
                1, len_field(1, b"Linux") + len_field(3, self.meta.kernel_release.encode())
            )
        if self.meta.cpus:
            info += varint_field(8, self.meta.cpus)
        if info:
            self._packet(len_field(ps.PKT_SYSTEM_INFO, info))


def ps_fixed64(number: int, value: float) -> bytes:
    return tag_bytes(number, 1) + struct.pack("<d", value)


def _parse_args(args: str | None, *, lists: bool = False) -> dict[str, Any]:
    """Decoded args; with ``lists``, integer lists (fixed arrays) stay tuples of ints."""
    if args is None:
        return {}
    try:
        value = json.loads(args, strict=False)
    except ValueError:
        return {"_text": args}
    if not isinstance(value, dict):
        return {"_text": args}
    # other nested values have no ftrace field type: kept as their JSON text
    return {
        k: tuple(v)
        if lists and isinstance(v, list) and _int_list(v)
        else json.dumps(v)
        if isinstance(v, list | dict)
        else v
        for k, v in value.items()
    }


def _int_list(v: list[Any]) -> bool:
    return all(isinstance(x, int) and not isinstance(x, bool) for x in v)


# packed repeated integers: "a" unsigned (or u64 bits), "A" with a negative element
_LIST_TYPES = {"a": ps.T_UINT64, "A": ps.T_INT64}


def _packed_column(number: int, rows: list[tuple[int, ...]]) -> Column:
    """Each row's integers as one packed repeated field (present even when empty)."""
    data = [b"".join(varint_bytes(x & _U64) for x in row) for row in rows]
    return Column.of_strings(number, pl.Series(data, dtype=pl.Binary))


def _kind_of(v: Any) -> str:
    if v is None:
        return "n"
    if isinstance(v, tuple):
        return "A" if any(x < 0 for x in v) else "a"
    if isinstance(v, bool):
        return "b"
    if isinstance(v, int):
        return "i" if -(1 << 63) <= v < (1 << 63) else "u"
    if isinstance(v, float):
        return "d"
    return "s"


__all__ = ["WriteResult", "write_perfetto"]
