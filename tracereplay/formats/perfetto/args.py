"""The ``args`` column of decoded Perfetto events: programs over field slots, compiled rendering.

:class:`ArgsBuilder` collects, per batch, the event types present and their
rows; :meth:`ArgsBuilder.render` decodes every row's fields into slots
(:func:`tracereplay.formats.perfetto.walk.decode_fields`), turns the values
Python has to render (kernel symbols, ``__print_symbolic`` / ``__print_flags``
integers, floats, cut ``cpumask`` strings, packed lists) into JSON fragments,
one per distinct value, and writes all rows' JSON with :func:`render_args`
over the shared :class:`~tracereplay.formats.common.args_json.Op` table and
value writers. The output is byte-identical to rendering each field with
polars string kernels as the first version of the reader did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
from numba import njit

from tracereplay.formats.common.args_json import (
    NUMBER_BYTES,
    Fragments,
    FragmentTable,
    KeyTable,
    Op,
    cpulist,
    json_str,
    put_fragment,
    put_number,
)
from tracereplay.formats.common.jit import int64, readonly
from tracereplay.formats.common.jsonbuf import put, put_null, put_text
from tracereplay.formats.common.known_events import KNOWN_EVENTS, SYM, SYSTEM_OF, B, I, S
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto import walk
from tracereplay.formats.perfetto.protowire import Fields, WireError, packed_varints
from tracereplay.formats.perfetto.walk import K_ABSENT, K_FRAGMENT, K_LEN, Slots
from tracereplay.formats.tracefs.event_decoder import Numbers, NumberSpec

__all__ = ["ArgsBuilder", "EventRows", "SlotProgram", "packed_json", "render_args"]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]
Symbolizer = Callable[[tuple[I64, U64]], tuple[list[str | None], I64]]
_LIST = re.compile(r"[0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*|")
_MAX_FIELDS = 256


class EventRows(NamedTuple):
    """Per row: event type (-1: none, ``{}``), first slot, and the payload length (bounds
    the strings the row takes from its payload)."""

    tidx: I64
    base: I64
    length: I64


class SlotProgram(NamedTuple):
    """Type ``t`` runs ops ``first[t]`` to ``first[t] + n_ops[t]``: op ``q`` writes the key
    ``lit[key_off[q]:][:key_len[q]]``, then the value of the row's slot ``slot[q]``
    (-1: null) as ``op[q]`` says when it is a number."""

    first: I64
    n_ops: I64
    key_off: I64
    key_len: I64
    slot: I64
    op: I64
    lit: U8


def _fragments_ok(frags: Fragments) -> bool:
    off = frags.offsets
    n = off.shape[0] - 1
    return (
        n >= 0
        and off[0] >= 0
        and off[n] <= frags.data.shape[0]
        and bool(np.all(off[1:] >= off[:-1]))
    )


@njit(cache=True, nogil=True)
def _bounds(rows: EventRows, prog: SlotProgram, values: Fragments) -> np.ndarray:
    """Output bytes bound of each row; refuses tables that do not match (ValueError: a bug)."""
    m = rows.tidx.shape[0]
    nops = prog.slot.shape[0]
    if rows.base.shape[0] != m or rows.length.shape[0] != m:
        raise ValueError("render_args: row arrays differ in length")
    if prog.key_off.shape[0] != nops or prog.key_len.shape[0] != nops or prog.op.shape[0] != nops:
        raise ValueError("render_args: op arrays differ in length")
    nt = prog.first.shape[0]
    if prog.n_ops.shape[0] != nt:
        raise ValueError("render_args: program arrays differ in length")
    per_type = np.zeros(nt, np.int64)
    for t in range(nt):
        if prog.first[t] < 0 or prog.n_ops[t] < 0 or prog.first[t] + prog.n_ops[t] > nops:
            raise ValueError("render_args: program outside the op table")
        b = 2
        for q in range(prog.first[t], prog.first[t] + prog.n_ops[t]):
            lo, ln = prog.key_off[q], prog.key_len[q]
            if lo < 0 or ln < 0 or lo + ln > prog.lit.shape[0]:
                raise ValueError("render_args: key literal outside the literal table")
            # a number, or a pooled value of at most the longest fragment
            b += ln + max(NUMBER_BYTES, values.longest)
        per_type[t] = b
    need = np.zeros(m, np.int64)
    for i in range(m):
        t = rows.tidx[i]
        if t >= nt:
            raise ValueError("render_args: row type out of range")
        # every string comes from the payload (6 bytes out per byte in)
        need[i] = per_type[t] + 6 * max(rows.length[i], 0) + 2 if t >= 0 else 2
    return need


@njit(cache=True, nogil=True)
def render_args(
    buf: np.ndarray,
    rows: EventRows,
    slots: Slots,
    prog: SlotProgram,
    values: Fragments,
) -> tuple[np.ndarray, np.ndarray]:
    """JSON ``args`` of every row: (Arrow large_string offsets, data).

    A row whose type is negative gets ``{}``. Strings (``K_LEN`` slots) come from the row's payload: together they
    are cut at its length, and at the end of ``buf``. ``K_FRAGMENT`` slots hold
    an index into ``values`` (a fragment longer than ``values.longest`` is
    written as null). The output is sized before anything is written.
    """
    need = _bounds(rows, prog, values)
    m = rows.tidx.shape[0]
    nbuf = buf.shape[0]
    nslots = slots.kind.shape[0]
    if slots.val.shape[0] != nslots or slots.aux.shape[0] != nslots:
        raise ValueError("render_args: slot arrays differ in length")
    out = np.empty(need.sum(), np.uint8)
    offsets = np.zeros(m + 1, np.int64)
    o = 0
    for i in range(m):
        t = rows.tidx[i]
        out[o] = 123
        o += 1
        if t >= 0:
            room = max(rows.length[i], 0)  # payload bytes the row's strings may still use
            for q in range(prog.first[t], prog.first[t] + prog.n_ops[t]):
                o = put(out, o, prog.lit, prog.key_off[q], prog.key_len[q])
                j = prog.slot[q]
                k = rows.base[i] + j
                if j < 0 or k < 0 or k >= nslots:
                    o = put_null(out, o)
                    continue
                kd = slots.kind[k]
                v = slots.val[k]
                if kd == K_ABSENT:
                    o = put_null(out, o)
                elif kd == K_LEN:
                    s = min(max(int(np.int64(v)), 0), nbuf)
                    n = min(max(int(slots.aux[k]), 0), room, nbuf - s)
                    room -= n
                    o = put_text(out, o, buf, s, s + n)
                elif kd == K_FRAGMENT:
                    o = put_fragment(out, o, values, int(np.int64(v)))
                else:
                    o = put_number(out, o, prog.op[q], v, False)
        out[o] = 125
        o += 1
        offsets[i + 1] = o
    return offsets, out[:o]


class ArgsBuilder:
    """The ``args`` column of one batch of ``m`` decoded events."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.tidx = np.full(m, -1, dtype=np.int64)
        self.values = FragmentTable()  # single values rendered in Python
        self.types: list[tuple[ps.EventLayout, I64]] = []
        self._given: dict[int, Fields] = {}
        # render(numbers=...): event name -> (rows given as numbers, values of each key)
        self.given: Numbers = {}

    def add_type(self, layout: ps.EventLayout, rows: I64, given: Fields | None = None) -> None:
        """The rows of one event type; ``given``: their fields already decoded (legacy
        generic events: field ``f`` of message ``k`` is slot ``f - 1`` of ``rows[k]``)."""
        if given is not None:
            self._given[len(self.types)] = given
        self.tidx[rows] = len(self.types)
        self.types.append((layout, rows))

    def render(
        self,
        buf: npt.NDArray[np.uint8],
        sub_off: I64,
        sub_len: I64,
        symbol: Symbolizer | None,
        problems: dict[str, int],
        numbers: dict[str, NumberSpec] | None = None,
    ) -> pa.Array:
        """The args of every row; with ``numbers`` (event name -> spec), the rows of those
        events whose keys are all numbers their JSON gives exactly are given in
        :attr:`given` instead, with ``{}`` for args (:meth:`_give_numbers`)."""
        buf = readonly(buf)
        nt = len(self.types)
        slot_n = np.array([len(lay.fields) for lay, _ in self.types], dtype=np.int64)
        slot_start = np.zeros(nt, dtype=np.int64)
        if nt:
            np.cumsum(slot_n[:-1], out=slot_start[1:])
        slot_fno = np.array([f.number for lay, _ in self.types for f in lay.fields], dtype=np.int64)
        has = self.tidx >= 0
        per_row = np.where(has, slot_n[np.clip(self.tidx, 0, None)] if nt else 0, 0)
        base = np.zeros(self.m, dtype=np.int64)
        if self.m > 1:
            np.cumsum(per_row[:-1], out=base[1:])
        total = int(per_row.sum())
        slots = Slots(
            np.zeros(total, np.uint8), np.zeros(total, np.uint64), np.zeros(total, np.int64)
        )
        kind = slots.kind
        events = walk.EventPayloads(self.tidx, int64(sub_off), int64(sub_len), base)
        layout = walk.SlotLayout(slot_start, slot_n, slot_fno)
        todo = has & ~np.isin(self.tidx, list(self._given))
        at, code, detail = walk.decode_fields(
            buf, np.flatnonzero(todo).astype(np.int64), events, layout, slots, _MAX_FIELDS
        )
        if at >= 0:
            raise WireError(walk.error_text(code, detail, _MAX_FIELDS), at)
        for t, f in self._given.items():
            k = base[self.types[t][1][f.msg]] + f.field - 1
            is_len = f.wire == 2
            slots.kind[k] = np.where(is_len, K_LEN, walk.K_NUM)
            slots.val[k] = np.where(is_len, f.offset.astype(np.uint64), f.value)
            slots.aux[k] = np.where(is_len, f.value.astype(np.int64), 0)
        keys = KeyTable()
        ops: list[tuple[int, int, int, int]] = []  # (key offset, key length, slot, op)
        prog_start = np.zeros(nt, dtype=np.int64)
        prog_n = np.zeros(nt, dtype=np.int64)
        # per type: its keys, and each key's (slot, op)
        type_ops: list[tuple[list[str], list[tuple[int, Op]]]] = []
        for t, (layout_t, rows) in enumerate(self.types):
            prog_start[t] = len(ops)
            slot_of = {f.name: j for j, f in enumerate(layout_t.fields)}
            known = KNOWN_EVENTS.get(layout_t.name)
            kinds = dict(known.fields) if known else {}
            row_base = base[rows]
            if layout_t.typed:
                names = list(kinds) + [
                    f.name
                    for j, f in enumerate(layout_t.fields)
                    if f.name not in kinds and bool((kind[row_base + j] != K_ABSENT).any())
                ]
            else:
                skip = (
                    {ps.STACK_FRAMES, ps.STACK_ATTACHED}
                    if layout_t.name == ps.STACK_EVENT
                    else set()
                )
                names = [f.name for f in layout_t.fields if f.name not in skip]
            type_ops.append((names, []))
            for i, key in enumerate(names):
                j = slot_of.get(key, -1)
                op = Op.UINT
                if j >= 0:
                    op = self._slot(
                        layout_t.name,
                        key,
                        kinds.get(key),
                        layout_t.fields[j],
                        rows,
                        row_base + j,
                        buf,
                        slots,
                        symbol,
                        problems,
                    )
                ops.append((*keys.add(key, first=i == 0), j, int(op)))
                type_ops[t][1].append((j, op))
            prog_n[t] = len(ops) - prog_start[t]
        if numbers:
            self._give_numbers(numbers, type_ops, base, slots)
        cols = np.array(ops or [(0, 0, 0, 0)], np.int64).reshape(-1, 4)
        key_off, key_len, slot, op_col = (np.ascontiguousarray(c) for c in cols.T)
        prog = SlotProgram(prog_start, prog_n, key_off, key_len, slot, op_col, keys.array())
        rows_b = EventRows(self.tidx, base, int64(sub_len))
        offsets, data = render_args(buf, rows_b, slots, prog, self.values.arrays())
        return pa.LargeStringArray.from_buffers(self.m, pa.py_buffer(offsets), pa.py_buffer(data))

    def _give_numbers(
        self,
        numbers: dict[str, NumberSpec],
        type_ops: list[tuple[list[str], list[tuple[int, Op]]]],
        base: I64,
        slots: Slots,
    ) -> None:
        """Rows of an event of ``numbers`` whose args are exactly its spec's keys, each a
        number the JSON writes as that unsigned value (UINT, or INT below its sign bit),
        within the spec (``fits``): listed in :attr:`given` and rendered as ``{}``."""
        for t, (layout_t, rows) in enumerate(self.types):
            spec = numbers.get(layout_t.name)
            system = layout_t.group or SYSTEM_OF.get(layout_t.name)
            keys, key_ops = type_ops[t]
            if spec is None or system != spec.system or tuple(keys) != spec.keys or spec.texts:
                continue
            if spec.pointers or any(j < 0 or op not in (Op.UINT, Op.INT) for j, op in key_ops):
                continue
            ok = np.ones(len(rows), np.bool_)
            values = []
            for j, op in key_ops:
                at = base[rows] + j
                ok &= slots.kind[at] == walk.K_NUM
                v = slots.val[at]
                if op == Op.INT:
                    ok &= v < np.uint64(1 << 63)
                values.append(v)
            ok &= spec.fits(values)
            if not ok.any():
                continue
            rows_given, values_given = rows[ok], [v[ok] for v in values]
            if layout_t.name in self.given:  # another type of that name (legacy generic events)
                had_rows, had_values = self.given[layout_t.name]
                rows_given = np.concatenate([had_rows, rows_given])
                values_given = [
                    np.concatenate(p) for p in zip(had_values, values_given, strict=True)
                ]
            self.given[layout_t.name] = (rows_given, values_given)
            self.tidx[rows[ok]] = -1

    def _pool(self, slots: Slots, at: I64, texts: list[bytes], index: I64 | None = None) -> None:
        """Slots ``at`` take the fragments ``texts`` (``texts[index[k]]`` for slot ``at[k]``)."""
        start = self.values.add(texts)
        pick = np.arange(len(texts), dtype=np.int64) if index is None else index
        slots.val[at] = pick.astype(np.uint64) + np.uint64(start)
        slots.kind[at] = K_FRAGMENT

    def _slot(
        self,
        event: str,
        key: str,
        kind_k: str | None,
        pfield: ps.ProtoField,
        rows: I64,
        idx: I64,
        buf: npt.NDArray[np.uint8],
        slots: Slots,
        symbol: Symbolizer | None,
        problems: dict[str, int],
    ) -> Op:
        """Numeric op of one key; values rendered in Python become fragments in place."""
        kind, val, aux = slots
        ftype = pfield.type
        if pfield.repeated and kind_k is None and ftype in (ps.T_INT64, ps.T_UINT64):
            # packed repeated integers (a fixed array such as sys_enter.args): a JSON list
            at = idx[kind[idx] == K_LEN]
            if at.size:
                signed = ftype == ps.T_INT64
                frags = [
                    packed_json(buf[s : s + n].tobytes(), signed)
                    for s, n in zip(val[at].tolist(), aux[at].tolist(), strict=True)
                ]
                self._pool(slots, at, frags)
        if key == "cpumask" and kind_k == S:
            at = idx[kind[idx] == K_LEN]
            if at.size:
                frags = []
                for s, n in zip(val[at].tolist(), aux[at].tolist(), strict=True):
                    raw = buf[s : s + n].tobytes()
                    text = raw.decode("utf-8", "replace")
                    if _LIST.fullmatch(text) is None:
                        # Perfetto stores a __data_loc bitmask as a string cut at the first NUL
                        text = cpulist(raw)
                    frags.append(_json_text(text))
                self._pool(slots, at, frags)
        if kind_k == B or (kind_k is None and ftype == ps.T_BOOL):
            return Op.BOOL
        pooled = kind_k in (SYM, S) or (kind_k is None and ftype in (ps.T_DOUBLE, ps.T_FLOAT))
        if pooled:
            sel = kind[idx] == walk.K_NUM
            at = idx[sel]
            if at.size:
                texts_b, inv = self._pooled_texts(
                    event, key, kind_k, ftype, rows[sel], val[at], symbol, problems
                )
                self._pool(slots, at, texts_b, inv)
            return Op.UINT
        if kind_k is None and ftype in ps.ZIGZAG_TYPES:
            return Op.ZIGZAG
        if kind_k == I or (kind_k is None and ftype in ps.SIGNED_TYPES):
            return Op.INT
        return Op.UINT

    @staticmethod
    def _pooled_texts(
        event: str,
        key: str,
        kind_k: str | None,
        ftype: int,
        rows: I64,
        v: U64,
        symbol: Symbolizer | None,
        problems: dict[str, int],
    ) -> tuple[list[bytes], I64]:
        """(fragments of the distinct values, index of each value's fragment)."""
        texts: list[str | None]
        if kind_k == SYM:
            if symbol is None:
                return [b"null"], np.zeros(len(v), dtype=np.int64)
            texts, inv = symbol((rows, v))
            inv = np.asarray(inv).ravel()
            none = np.array([t is None for t in texts], dtype=bool)
            missing = int(none[inv].sum()) if len(texts) else 0
            if missing:
                what = "kernel symbol(s) missing from the interned data: those fields are null"
                problems[what] = problems.get(what, 0) + missing
            return [b"null" if t is None else _json_text(t) for t in texts], inv
        if kind_k == S:
            uniq, inv = np.unique(v.view(np.int64), return_inverse=True)
            table = ps.SYMBOLIC.get((event, key))
            if event == "sched_switch" and key == "prev_state":
                texts = [ps.prev_state_text(int(u)) for u in uniq.tolist()]
            elif table is not None:
                texts = [table[u] if 0 <= u < len(table) else str(u) for u in uniq.tolist()]
            else:
                texts = [str(u) for u in uniq.tolist()]
            return [_json_text(str(t)) for t in texts], np.asarray(inv, np.int64).ravel()
        uniq, inv = np.unique(v, return_inverse=True)
        if ftype == ps.T_DOUBLE:
            floats = pl.Series(uniq.view(np.float64))
        else:
            floats = pl.Series(uniq.astype(np.uint32).view(np.float32).astype(np.float64))
        frags = [str(t).encode() for t in floats.cast(pl.String).to_list()]
        return frags, np.asarray(inv, np.int64).ravel()


def _json_text(text: str) -> bytes:
    return json_str(text, short_newlines=True).encode()


def packed_json(data: bytes, signed: bool) -> bytes:
    """A packed repeated integer field as a JSON list (``[]`` when empty)."""
    values = packed_varints(data)
    shown = values.view(np.int64) if signed else values
    return ("[" + ",".join(map(str, shown.tolist())) + "]").encode()
