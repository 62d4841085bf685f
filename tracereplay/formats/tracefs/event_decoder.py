"""Tracepoint records -> canonical event columns, shared by the trace.dat and perf.data readers.

Both formats embed the tracefs ``format`` files and store each event as the
same raw record (``common_type``, ``common_flags``, ``common_preempt_count``,
``common_pid``, then the fields). :class:`EventDecoder` holds the formats,
saved cmdlines / tgids and kallsyms of one trace. Each event type used is
compiled once to a *slot*: its name, system and an args program (one row per
output key, see :func:`tracereplay.formats.tracefs.ring_buffer.render_args`), so a batch
of records is decoded by compiled loops that write Arrow buffers directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tracereplay.formats.common.args_json import (
    FragmentTable,
    KeyTable,
    Op,
    json_str,
    prev_state_text,
    print_flags,
)
from tracereplay.formats.common.columns import (
    StringPool,
    factorize,
    gather_pool,
    large_strings,
    range_validity,
    ranged_uint64,
)
from tracereplay.formats.common.jit import int64, readonly
from tracereplay.formats.common.kallsyms import Symbols, hex_names
from tracereplay.formats.common.known_events import KNOWN_EVENTS, SYM, SYSTEM_OF, B, I, U, X
from tracereplay.formats.tracefs.format_file import (
    FieldFormat,
    FormatError,
    TraceEventFormat,
    parse_format,
)
from tracereplay.formats.tracefs.record_args import (
    RecordProgram,
    Records,
    ValueDicts,
    render_args,
)
from tracereplay.formats.tracefs.ring_buffer import read_ints

__all__ = ["COMPILED", "STACK_EVENT", "EventDecoder", "NumberSpec"]

STACK_EVENT = "kernel_stack"
# the compiled functions every decode runs (for the first-run compile notice)
COMPILED = (read_ints, render_args, factorize, gather_pool)


class Warnings(Protocol):
    """Where decoding problems go (the reader's ``TraceMeta``)."""

    def warn(self, message: str, *, partial: bool = False) -> None: ...


_ID = re.compile(r"^ID:\s*(\d+)", re.M)
_ULONG_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
_MAX_ID = 1 << 16  # common_type is an unsigned short
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
# numbers(): event name -> (row indices, the values of each of its keys)
Numbers = dict[str, tuple[I64, list[npt.NDArray[np.uint64]]]]
_U64_MAX = (1 << 64) - 1


class NumberSpec(NamedTuple):
    """An event whose fields the store wants as columns, not JSON (:meth:`EventDecoder.numbers_only`).

    ``keys``: its args' keys, in order; ``maxima``: the largest value of each that its
    column holds; ``texts``: the keys given as text (symbols, enum names: each must be a
    field rendered through a dictionary, and its text need no JSON escape); ``pointers``:
    the number keys rendered as ``%p`` (``"%016x"``, the raw pointer); ``accept``: a
    check across keys (key -> values; an address range), for rows that may go.
    A record failing any keeps its JSON.
    """

    system: str
    keys: tuple[str, ...]
    maxima: tuple[int, ...]
    texts: tuple[str, ...] = ()
    accept: Callable[[dict[str, npt.NDArray[np.uint64]]], npt.NDArray[np.bool_]] | None = None
    pointers: tuple[str, ...] = ()

    def fits(self, values: Sequence[npt.NDArray[np.uint64]]) -> npt.NDArray[np.bool_]:
        """Which rows (one array per key) are within ``maxima`` and pass ``accept``: the
        rule of every reader's path, the decoder's and the store's JSON read-back."""
        ok = np.ones(len(values[0]) if len(values) else 0, np.bool_)
        for v, top in zip(values, self.maxima, strict=True):
            if top < _U64_MAX:
                ok &= v <= np.uint64(top)
        if self.accept is not None:
            ok &= self.accept(dict(zip(self.keys, values, strict=True)))
        return ok


@dataclass
class _Slot:
    fmt: TraceEventFormat
    name: str
    system: str | None
    is_stack: bool


class _Dicts:
    """Per-field dictionaries value -> JSON fragment, as the sorted arrays render_args reads."""

    def __init__(self) -> None:
        self.render: list[Callable[[list[int]], list[str]]] = []
        self.entries: list[dict[int, bytes]] = []
        self._keys: dict[object, int] = {}
        self._arrays: ValueDicts | None = None

    def add(self, key: object, render: Callable[[list[int]], list[str]]) -> int:
        if key not in self._keys:
            self._keys[key] = len(self.render)
            self.render.append(render)
            self.entries.append({})
            # the cached tables must cover the new id: rendering with tables built before
            # it read past their end (the SIGSEGV of a busy host's trace.dat, issue 12)
            self._arrays = None
        return self._keys[key]

    def fill(self, ids: I64, values: npt.NDArray[np.uint64]) -> None:
        for d in np.unique(ids).tolist():
            vals = np.unique(values[ids == d]).tolist()
            vals = [v for v in vals if v not in self.entries[d]]
            for v, text in zip(vals, self.render[d](vals), strict=True):
                self.entries[d][v] = text.encode()
        self._arrays = None

    def arrays(self) -> ValueDicts:
        if self._arrays is None:
            n = max(len(self.entries), 1)
            lo = np.zeros(n, np.int64)
            hi = np.zeros(n, np.int64)
            vals: list[int] = []
            frags = FragmentTable()
            for d, entries in enumerate(self.entries):
                lo[d] = len(vals)
                ordered = sorted(entries)
                vals.extend(ordered)
                frags.add([entries[v] for v in ordered])
                hi[d] = len(vals)
            self._arrays = ValueDicts(lo, hi, np.array(vals, np.uint64), frags.arrays())
        return self._arrays


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
        self.type_at = (0, 2)
        self.pid_at = (4, 4)
        # event id -> slot (-2: not looked up yet, -1: unknown)
        self._eid_slot = np.full(_MAX_ID, -2, np.int64)
        self.slots: list[_Slot] = []
        self._ev: list[tuple[int, int]] = []
        # (op, key offset, key length, field offset, size, signed, p1, p2)
        self._ops: list[tuple[int, ...]] = []
        self._keys = KeyTable()
        self._program: RecordProgram | None = None
        self._dicts = _Dicts()
        self._names: tuple[StringPool, StringPool, npt.NDArray[np.bool_]] | None = None
        self._stack: npt.NDArray[np.bool_] | None = None
        # numbers_only(): event name -> its spec; event name -> (its slot, the twin slot
        # without args, the keys' (offset, size, signed, dictionary or -1))
        self._numbers_only: dict[str, NumberSpec] = {}
        self._number_slots: dict[str, tuple[int, int, list[tuple[int, int, int, int]]]] = {}

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
                self.type_at = (t.offset, t.size)
                self.pid_at = (p.offset, p.size)
                break

    def report(self, meta: Warnings) -> None:
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
        if self._symbols is not None and self._symbols.damaged:
            meta.warn(
                f"{self._symbols.damaged} kallsyms line(s) with a damaged address were skipped: "
                "stack frames and symbol fields may show hex addresses instead of names",
                partial=True,
            )
        if self.bad_pages:
            meta.warn(
                f"{self.bad_pages} ring-buffer page(s) with inconsistent headers "
                "(decoded up to the damage)",
                partial=True,
            )

    # --- event types -> slots ------------------------------------------------------------

    def classify(self, buf: U8, rec: I64, rec_len: I64) -> tuple[I64, I64, I64]:
        """(slot, pid, keep) of records: unknown ids and short records are counted, not kept."""
        buf, rec = readonly(buf), int64(rec)
        etype = read_ints(buf, rec, self.type_at[0], self.type_at[1], False)
        etype[rec_len < self.pid_at[0] + self.pid_at[1]] = -1
        pid = read_ints(buf, rec, self.pid_at[0], self.pid_at[1], True)
        inside = (etype >= 0) & (etype < _MAX_ID)
        slot = np.where(inside, self._eid_slot[np.where(inside, etype, 0)], -1)
        todo = slot == -2
        if todo.any():
            for eid in np.unique(etype[todo]).tolist():
                self._eid_slot[eid] = self._compile(eid)
            slot = np.where(inside, self._eid_slot[np.where(inside, etype, 0)], -1)
        keep = np.flatnonzero(slot >= 0)
        if len(keep) < len(slot):
            ids, counts = np.unique(etype[slot < 0], return_counts=True)
            for eid, c in zip(ids.tolist(), counts.tolist(), strict=True):
                self.unknown_ids[eid] = self.unknown_ids.get(eid, 0) + c
        return slot, pid, keep

    def stack_flags(self) -> npt.NDArray[np.bool_]:
        """Whether each slot is the ``kernel_stack`` event."""
        if self._stack is None:
            self._stack = np.array([s.is_stack for s in self.slots] or [False], dtype=bool)
        return self._stack

    def _compile(self, eid: int) -> int:
        fmt = self.format_of(eid)
        if fmt is None:
            return -1
        system = (
            fmt.system
            if fmt.system not in (None, "ftrace")
            else SYSTEM_OF.get(fmt.name, fmt.system)
        )
        is_stack = fmt.name == STACK_EVENT and fmt.system in (None, "ftrace")
        ops: list[tuple[str, tuple[int, ...]]] = []
        spec = KNOWN_EVENTS.get(fmt.name)
        if spec is not None and fmt.system not in (None, spec.system):
            spec = None
        if is_stack:
            pass
        elif spec is not None:
            for key, kind in spec.fields.items():
                f = fmt.field_named(key)
                ops.append((key, self._known_op(fmt, f, kind) if f else (Op.NULL,)))
        else:
            ops.extend((f.name, _generic_op(f)) for f in fmt.fields)
        slot = self._add_slot(_Slot(fmt, fmt.name, system, is_stack), ops)
        fields = self._number_fields(fmt.name, system, ops)
        if fields is not None and fmt.name not in self._number_slots:
            self._number_slots[fmt.name] = (slot, self._add_slot(self.slots[slot], []), fields)
        return slot

    def _add_slot(self, info: _Slot, ops: list[tuple[str, tuple[int, ...]]]) -> int:
        first = len(self._ops)
        for k, (key, op) in enumerate(ops):
            row = (op + (0,) * 6)[:6]
            self._ops.append((row[0], *self._keys.add(key, first=k == 0), *row[1:]))
        self._ev.append((first, len(ops)))
        self.slots.append(info)
        self._program = None
        self._names = None
        self._stack = None
        return len(self.slots) - 1

    # --- events given as numbers ---------------------------------------------------------

    def numbers_only(self, events: dict[str, NumberSpec]) -> None:
        """Give the fields of ``events`` (name -> spec) as columns instead of JSON: see
        :meth:`numbers`. Call before decoding."""
        self._numbers_only = {name: NumberSpec(*spec) for name, spec in events.items()}

    def _number_fields(
        self, name: str, system: str | None, ops: list[tuple[str, tuple[int, ...]]]
    ) -> list[tuple[int, int, int, int]] | None:
        """(offset, size, signed, dictionary or -1) of each key when ``name`` of the wanted
        system has args of exactly those keys, each rendered so that its column gives the
        same JSON back, else None: a number key an unsigned decimal (or a signed one whose
        maximum is below its sign bit: the values that fit print the same), a pointer key
        a ``%p`` field, a text key through a dictionary."""
        spec = self._numbers_only.get(name)
        if spec is None or system != spec.system or tuple(k for k, _ in ops) != spec.keys:
            return None
        fields = []
        for (key, op), top in zip(ops, spec.maxima, strict=True):
            if len(op) < 4 or op[2] not in (1, 2, 4, 8):
                return None
            if key in spec.texts:
                if op[0] != Op.FRAGMENT or len(op) < 5:
                    return None
                fields.append((op[1], op[2], op[3], op[4]))
                continue
            if key in spec.pointers:
                if op[0] != Op.PTR:
                    return None
                fields.append((op[1], op[2], op[3], -1))  # read as the JSON renders it
                continue
            unsigned = op[0] == Op.UINT and not op[3]
            if not unsigned and not (op[0] == Op.INT and top < 1 << (8 * op[2] - 1)):
                return None
            fields.append((op[1], op[2], op[3], -1))
        return fields

    def numbers(self, buf: U8, rec: I64, rec_len: I64, slot: I64) -> tuple[I64, Numbers]:
        """(slots, event name -> (rows, one uint64 array per key)) of records: a record of
        an event given as numbers whose fields are all inside it gets its twin slot,
        whose args render as ``{}``, and its values listed (sorted rows). A text key's
        values are the raw field (its text: :meth:`number_arrays`)."""
        out: Numbers = {}
        if not self._number_slots:
            return slot, out
        slot = slot.copy()
        buf, rec = readonly(buf), int64(rec)
        # a field past its record's end (or the buffer's) renders as null: JSON then
        room = np.minimum(rec_len, len(buf) - rec)
        for name, spec in self._numbers_only.items():
            if name not in self._number_slots:
                continue
            s, twin, fields = self._number_slots[name]
            end = max(at + size for at, size, _signed, _d in fields)
            rows = np.flatnonzero((slot == s) & (room >= end))
            if not len(rows):
                continue
            got = [
                read_ints(buf, rec[rows], at, size, bool(signed)).view(np.uint64)
                for at, size, signed, _d in fields
            ]
            fits = spec.fits(got)
            for v, (*_field, d) in zip(got, fields, strict=True):
                if d >= 0:
                    fits &= self._plain_texts(d, v)
            if not fits.all():
                if not fits.any():
                    continue
                rows, got = rows[fits], [v[fits] for v in got]
            slot[rows] = twin
            out[name] = (rows, got)
        return slot, out

    def _plain_texts(self, d: int, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Whether each value's text in dictionary ``d`` is a JSON string with no escape
        (so ``'"' || text || '"'`` in SQL gives its JSON back)."""
        codes, uniq = factorize(values.view(np.int64))
        entries = self._dicts.entries[d]
        distinct = uniq.view(np.uint64).tolist()
        missing = [u for u in distinct if u not in entries]
        if missing:
            self._dicts.fill(np.full(len(missing), d, np.int64), np.array(missing, np.uint64))
        plain = np.array([_is_plain(entries[u]) for u in distinct] or [False], np.bool_)
        return plain[codes]

    def number_arrays(
        self, numbers: Numbers, ranges: dict[str, tuple[int, int]], n: int
    ) -> list[pa.Array]:
        """The columns (:meth:`number_fields`) of a batch of ``n`` rows whose rows of each
        event of ``numbers`` are ``ranges[event]`` (:func:`~tracereplay.formats.tracefs.batches.elided_order`):
        the values there (a text key's text), null elsewhere. Only the events in
        ``ranges`` have columns: the store reads the others' rows from their JSON."""
        out: list[pa.Array] = []
        for name in self._numbers_only:
            if name not in ranges:
                continue
            start, stop = ranges[name]
            # one validity bitmap for every key of the event
            bitmap = range_validity(start, stop, n)
            nulls = n - (stop - start)
            fields = self._number_slots[name][2]
            for v, (*_field, d) in zip(numbers[name][1], fields, strict=True):
                if d >= 0:
                    offsets, data = self._texts(d, v, start, n)
                    out.append(pa.LargeStringArray.from_buffers(n, offsets, data, bitmap, nulls))
                    continue
                out.append(ranged_uint64(v, start, stop, n, bitmap))
        return out

    def number_fields(self, ranges: dict[str, tuple[int, int]]) -> list[pa.Field]:
        """The fields of :meth:`number_arrays`' columns for ``ranges``."""
        return [
            pa.field(f"{name}.{key}", pa.large_string() if key in spec.texts else pa.uint64())
            for name, spec in self._numbers_only.items()
            if name in ranges
            for key in spec.keys
        ]

    def _texts(
        self, d: int, values: npt.NDArray[np.uint64], start: int, n: int
    ) -> tuple[pa.Buffer, pa.Buffer]:
        """(offsets, data) of ``n`` large strings: the texts of ``values`` (dictionary
        ``d``, all plain) from row ``start``, empty elsewhere."""
        codes, uniq = factorize(values.view(np.int64))
        entries = self._dicts.entries[d]
        pool = StringPool([entries[u][1:-1].decode() for u in uniq.view(np.uint64).tolist()])
        _, sub, data = pool.take(codes).buffers()
        ends = np.frombuffer(sub, np.int64)[1 : len(values) + 1]
        offsets = np.zeros(n + 1, np.int64)
        offsets[start + 1 : start + 1 + len(ends)] = ends
        offsets[start + 1 + len(ends) :] = ends[-1] if len(ends) else 0
        return pa.py_buffer(offsets), data

    def _known_op(
        self, fmt: TraceEventFormat, f: FieldFormat, kind: str
    ) -> tuple[int, ...]:
        """The op of a field of an event the text reader knows (same normalization)."""
        if f.is_string or f.is_cpumask or f.dynamic or f.array_len:
            return _generic_op(f)
        if f.size not in (1, 2, 4, 8):
            return (Op.NULL,)
        num = (f.offset, f.size, int(f.signed))
        if kind in (U, X):
            return (Op.UINT, *num)
        if kind == I:
            return (Op.INT, *num)
        if kind == B:
            return (Op.BOOL, *num)
        render: Callable[[list[int]], list[str]]
        if kind == SYM:
            key: object = "sym"
            render = self._symbol_names
        elif f.name == "prev_state" and f.name in fmt.flags:
            key = (fmt.id, f.name)
            render = _prev_state_render(*fmt.flags[f.name])
        elif f.name in fmt.symbolic:
            table_s = fmt.symbolic[f.name]
            key = (fmt.id, f.name)

            def render(vals: list[int]) -> list[str]:
                return [table_s.get(x, f"{x:#x}") for x in vals]

        elif f.name in fmt.flags:
            delim, table = fmt.flags[f.name]
            key = (fmt.id, f.name)

            def render(vals: list[int]) -> list[str]:
                return [print_flags(x, delim, table) for x in vals]

        elif f.is_pointer:
            # %p: the text shows a hashed pointer; the raw value is all we have
            return (Op.PTR, *num)
        else:
            return (Op.QUOTED, *num)

        def fragments(
            vals: list[int], render: Callable[[list[int]], list[str]] = render
        ) -> list[str]:
            return [json_str(t) for t in render(vals)]

        return (Op.FRAGMENT, *num, self._dicts.add(key, fragments))

    def _symbol_names(self, vals: list[int]) -> list[str]:
        u = np.array(vals, dtype=np.uint64)
        return self.symbols.names(u) if self.symbols is not None else hex_names(u)

    def program(self) -> RecordProgram:
        """The args programs of the event types seen so far."""
        if self._program is None:
            ev = np.array(self._ev or [(0, 0)], np.int64).reshape(-1, 2)
            ops = np.array(self._ops or [(0,) * 8], np.int64).reshape(-1, 8)
            c = [np.ascontiguousarray(col) for col in (*ev.T, *ops.T)]
            self._program = RecordProgram(
                first=c[0],
                n_ops=c[1],
                op=c[2],
                key_off=c[3],
                key_len=c[4],
                at=c[5],
                size=c[6],
                signed=c[7],
                p1=c[8],
                p2=c[9],
                lit=self._keys.array(),
            )
        return self._program

    # --- columns -------------------------------------------------------------------------

    def args(self, buf: U8, rec: I64, rec_len: I64, slot: I64) -> pa.LargeStringArray:
        """JSON ``args`` of records (payload at ``rec``) of known slots."""
        n = len(rec)
        offsets = np.empty(n + 1, np.int64)
        out, end = self.args_into(
            np.empty(64 * n + 64, np.uint8), 0, offsets, buf, rec, rec_len, slot
        )
        return large_strings(offsets, out[:end])

    def args_into(
        self, out: U8, o: int, offsets: I64, buf: U8, rec: I64, rec_len: I64, slot: I64
    ) -> tuple[U8, int]:
        """Append the ``args`` of records to ``out`` from byte ``o``: (``out``, possibly grown, and
        its new end); ``offsets[0] = o`` and ``offsets[i + 1]`` = end of record ``i``."""
        recs = Records(readonly(buf), int64(rec), int64(rec_len), int64(slot))
        prog = self.program()
        while True:
            out, end, miss_id, miss_val, nmiss = render_args(
                out, o, offsets, recs, prog, self._dicts.arrays()
            )
            if nmiss == 0:
                return out, end
            self._dicts.fill(miss_id, miss_val)

    def names(self, slot: I64) -> tuple[pa.LargeStringArray, pa.LargeStringArray]:
        """(system, name) columns of records by slot."""
        if self._names is None:
            systems = [s.system or "" for s in self.slots]
            nulls = np.array([s.system is None for s in self.slots], dtype=bool)
            self._names = (StringPool(systems), StringPool([s.name for s in self.slots]), nulls)
        sys_pool, name_pool, nulls = self._names
        system = sys_pool.take(slot)
        if nulls.any() and nulls[slot].any():
            system = pa.LargeStringArray.from_buffers(
                len(slot),
                system.buffers()[1],
                system.buffers()[2],
                pa.array(~nulls[slot]).buffers()[1],
            )
        return system, name_pool.take(slot)

    def comm_names(self, pids: list[int]) -> list[str]:
        """Saved-cmdline names of pids (``<idle>`` for 0, ``<...>`` when unknown)."""
        return ["<idle>" if p == 0 else self.comms.get(p, "<...>") for p in pids]

    def stacks(self, buf: U8, rec: I64, rec_len: I64) -> pa.Array:
        """Kernel stacks of ``kernel_stack`` records (list of symbol names each)."""
        fmt = next(s.fmt for s in self.slots if s.is_stack)
        size_f = fmt.field_named("size")
        caller = fmt.field_named("caller")
        if caller is None:
            return pa.nulls(len(rec), type=pa.large_list(pa.large_string()))
        room = np.clip((rec_len - caller.offset) // 8, 0, None)
        count = room
        if size_f is not None:
            declared = read_ints(readonly(buf), int64(rec), size_f.offset, size_f.size, True)
            count = np.minimum(np.clip(declared, 0, None), room)
        total = int(count.sum())
        starts = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        local = np.arange(total, dtype=np.int64) - np.repeat(starts, count)
        at = np.repeat(rec + caller.offset, count) + 8 * local
        addrs = read_ints(readonly(buf), int64(at), 0, 8, False).view(np.uint64)
        # the kernel stops printing at ULONG_MAX (end marker of short stacks)
        seg = np.repeat(np.arange(len(rec)), count)
        stop = np.full(len(rec), np.iinfo(np.int64).max)
        bad = addrs == _ULONG_MAX
        np.minimum.at(stop, seg[bad], local[bad])
        keep = local < stop[seg]
        addrs = addrs[keep]
        counts = np.bincount(seg[keep], minlength=len(rec))
        names = self.symbols.names(addrs) if self.symbols is not None else hex_names(addrs)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return pa.LargeListArray.from_arrays(
            pa.array(offsets, type=pa.int64()), pa.array(names, type=pa.large_string())
        )


def _generic_op(f: FieldFormat) -> tuple[int, ...]:
    """The op of a field of an event without a normalization spec."""
    extra = f.offset + f.size if f.dynamic == "rel_loc" else 0
    if f.is_string:
        if f.dynamic:
            return (Op.DSTR, f.offset, 4, 0, extra)
        return (Op.STR, f.offset, f.size, 0)
    if f.is_cpumask:
        return (Op.CPUMASK, f.offset, 4, 0, extra)
    if f.array_len:
        es = f.elem_size
        if es not in (1, 2, 4, 8):
            return (Op.NULL,)
        return (Op.ARR, f.offset, es, int(f.signed), f.array_len)
    if f.dynamic:
        base = f.type.replace("__data_loc", "").replace("__rel_loc", "").strip()
        es = (
            8
            if "64" in base or "long" in base
            else 4
            if "int" in base or "32" in base
            else 2
            if "16" in base or "short" in base
            else 1
        )
        return (Op.DARR, f.offset, 4, int(f.signed), extra, es)
    if f.size not in (1, 2, 4, 8):
        return (Op.NULL,)
    return (Op.INT if f.signed else Op.UINT, f.offset, f.size, int(f.signed))


def _prev_state_render(
    delim: str, table: list[tuple[int, str]]
) -> Callable[[list[int]], list[str]]:
    def render(vals: list[int]) -> list[str]:
        return [prev_state_text(x, delim, table) for x in vals]

    return render


def _is_plain(fragment: bytes) -> bool:
    """A JSON string literal without escapes (json_str escapes with a backslash)."""
    return len(fragment) >= 2 and fragment[:1] == fragment[-1:] == b'"' and b"\\" not in fragment
