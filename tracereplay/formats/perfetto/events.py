"""Decoding of many ``FtraceEvent`` messages into canonical columns.

The reader collects the ``event`` entries of many bundles into one buffer;
:func:`decode_events` walks all of them with a compiled loop
(:mod:`tracereplay.formats.perfetto.walk`), groups them by event type (the
FtraceEvent field number: typed, or dense generic >= 65536) and has
:class:`tracereplay.formats.perfetto.args.ArgsBuilder` decode each type's
fields and write the JSON ``args`` of every row in compiled loops. No Python
loop runs per event, only per event type and per distinct symbolic value.
Legacy ``GenericFtraceEvent`` s (old recorders) are decoded in Python, then rendered
the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from tracereplay.formats.common.columns import factorize
from tracereplay.formats.common.known_events import SYSTEM_OF
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto import walk
from tracereplay.formats.perfetto.args import ArgsBuilder, render_args
from tracereplay.formats.perfetto.protowire import (
    I64,
    U8,
    U64,
    Fields,
    WireError,
    iter_fields,
    walk_messages,
)
from tracereplay.formats.tracefs.event_decoder import Numbers, NumberSpec

npt_u64_rows = tuple[I64, U64]  # (row of the event, interned id)
# (rows, iids) -> (distinct symbols, index of each key's symbol in them)
Symbolizer = Callable[[npt_u64_rows], tuple[list[str | None], I64]]
# the compiled functions every Perfetto read runs (for the first-run compile notice)
COMPILED = (walk.bundle_fields, walk.walk_events, walk.decode_fields, render_args, factorize)


@dataclass
class Decoded:
    """Columns of ``m`` decoded events (``keep`` False for events to drop)."""

    ts: I64
    pid: I64
    pid_valid: np.ndarray
    names: pa.Array
    systems: pa.Array
    args: pa.Array
    keep: np.ndarray
    stacks: dict[int, list[str]] = field(default_factory=dict)  # row -> frames
    stack_attached: set[int] = field(default_factory=set)  # stack rows that are not events
    problems: dict[str, int] = field(default_factory=dict)
    # event name -> (rows given as numbers, their values per key): decode_events(numbers=)
    numbers: Numbers = field(default_factory=dict)


def decode_events(
    buf: U8,
    off: I64,
    length: I64,
    layouts: Callable[[int], ps.EventLayout | None],
    symbol: Symbolizer | None,
    numbers: dict[str, NumberSpec] | None = None,
) -> Decoded:
    """Decode the FtraceEvent payloads ``buf[off:off+length]``.

    ``layouts(field_id)`` gives the layout of an event type (None: unknown);
    ``symbol(keys)`` resolves (row, iid) keys to kernel symbol names; ``numbers``: the
    events to give as numbers where their args allow (``Decoded.numbers``, args ``{}``).
    """
    m = len(off)
    ts, pid, pid_valid, etype, sub_off, sub_len, at, code, detail = walk.walk_events(
        buf, off.astype(np.int64), length.astype(np.int64), 64
    )
    if at >= 0:
        raise WireError(walk.error_text(code, detail, 64), at)
    keep = etype != 0
    out = Decoded(ts, pid, pid_valid, pa.nulls(0), pa.nulls(0), pa.nulls(0), keep)
    if not keep.all():
        out.problems["FtraceEvent without an event payload"] = int((~keep).sum())
    types, inverse = walk.sorted_codes(etype)
    name_idx = np.zeros(m, dtype=np.int32)
    sys_idx = np.zeros(m, dtype=np.int32)
    names: list[str | None] = [None]
    systems: list[str | None] = [None]
    args = ArgsBuilder(m)
    for k, tid in enumerate(types.tolist()):
        if tid == 0:
            continue
        rows = np.flatnonzero(inverse == k)
        if tid == ps.E_GENERIC:
            for layout, grows, gsub in _legacy(buf, rows, sub_off, sub_len):
                names.append(layout.name)
                systems.append(SYSTEM_OF.get(layout.name))
                name_idx[grows] = len(names) - 1
                sys_idx[grows] = len(systems) - 1
                args.add_type(layout, grows, given=gsub)
            continue
        found = layouts(tid)
        if found is None:
            what = (
                f"dense generic event id {tid} whose descriptor never appeared"
                if tid >= ps.GENERIC_MIN_ID
                else f"typed event id {tid} unknown to the perfetto protos"
            )
            out.problems[what] = out.problems.get(what, 0) + len(rows)
            keep[rows] = False
            continue
        layout = found
        names.append(layout.name)
        systems.append(layout.group or SYSTEM_OF.get(layout.name))
        name_idx[rows] = len(names) - 1
        sys_idx[rows] = len(systems) - 1
        if layout.name == ps.STACK_EVENT and layout.group == ps.STACK_GROUP:
            sub = walk_messages(buf, sub_off[rows], sub_off[rows] + sub_len[rows])
            _stacks(out, layout, sub, rows, symbol)
        args.add_type(layout, rows)
    out.names = pa.DictionaryArray.from_arrays(
        pa.array(name_idx), pa.array(names, pa.large_string())
    ).cast(pa.large_string())
    out.systems = pa.DictionaryArray.from_arrays(
        pa.array(sys_idx), pa.array(systems, pa.large_string())
    ).cast(pa.large_string())
    out.args = args.render(buf, sub_off, sub_len, symbol, out.problems, numbers)
    out.numbers = args.given
    return out


def _legacy(
    buf: U8, rows: I64, sub_off: I64, sub_len: I64
) -> list[tuple[ps.EventLayout, I64, Fields]]:
    """Legacy ``GenericFtraceEvent{event_name, field[]{name, str|int|uint value}}`` events.

    Old recorders only, so decoded with a Python loop per event; rows with the
    same event name and field list share a synthetic layout, then go through the
    same vectorized args builder as every other event.
    """
    groups: dict[
        tuple[str, tuple[tuple[str, int], ...]], list[tuple[int, list[tuple[int, int, int, int]]]]
    ] = {}
    raw = buf.tobytes()
    for r in rows.tolist():
        start = int(sub_off[r])
        name = ""
        sig: list[tuple[str, int]] = []
        vals: list[tuple[int, int, int, int]] = []  # (field index, wire, value, offset)
        for fno, wt, val, pos in iter_fields(raw, start, start + int(sub_len[r])):
            if fno == 1 and wt == 2:
                name = raw[pos : pos + val].decode("utf-8", "replace")
            elif fno == 2 and wt == 2:
                fname, ftype, entry = "", ps.T_UINT64, (0, 0, 0)
                for ffno, fwt, fval, fpos in iter_fields(raw, pos, pos + val):
                    if ffno == 1 and fwt == 2:
                        fname = raw[fpos : fpos + fval].decode("utf-8", "replace")
                    elif ffno in (3, 4, 5):
                        ftype = {3: ps.T_STRING, 4: ps.T_INT64, 5: ps.T_UINT64}[ffno]
                        entry = (fwt, fval, fpos)
                sig.append((fname, ftype))
                vals.append((len(sig), *entry))
        groups.setdefault((name, tuple(sig)), []).append((r, vals))
    out = []
    for (name, fsig), members in groups.items():
        layout = ps.EventLayout(
            -1,
            name or "generic",
            None,
            tuple(ps.ProtoField(i + 1, n, t) for i, (n, t) in enumerate(fsig)),
            False,
        )
        entries = [
            (k, fi, wt, v, o) for k, (_r, vals) in enumerate(members) for fi, wt, v, o in vals
        ]
        arr = np.array(entries, dtype=np.uint64).reshape(-1, 5)
        fields = Fields(
            arr[:, 0].astype(np.int64),
            arr[:, 1].astype(np.int64),
            arr[:, 2].astype(np.int64),
            arr[:, 3],
            arr[:, 4].astype(np.int64),
        )
        out.append((layout, np.array([r for r, _ in members], dtype=np.int64), fields))
    return out


def _stacks(
    out: Decoded,
    layout: ps.EventLayout,
    sub: Fields,
    rows: I64,
    symbol: Symbolizer | None,
) -> None:
    by = layout.by_name
    frames_no = by[ps.STACK_FRAMES].number if ps.STACK_FRAMES in by else -1
    att_no = by[ps.STACK_ATTACHED].number if ps.STACK_ATTACHED in by else -1
    fr = sub.select(frames_no)
    names: list[str | None] = [None] * len(fr.msg)
    if symbol is not None and len(fr.msg):
        found, inv = symbol((rows[fr.msg], fr.value))
        names = [found[k] for k in inv.tolist()]
    for _i, r in enumerate(rows.tolist()):
        out.stacks[r] = []
    for msg, sym in zip(fr.msg.tolist(), names, strict=True):
        out.stacks[int(rows[msg])].append(sym if sym is not None else "??")
    at = sub.select(att_no)
    for msg, v in zip(at.msg.tolist(), at.value.tolist(), strict=True):
        if v:
            out.stack_attached.add(int(rows[msg]))


__all__ = ["COMPILED", "Decoded", "decode_events"]
