"""Decoding of many ``FtraceEvent`` messages into canonical columns.

The reader collects the ``event`` entries of many bundles into one buffer;
:func:`decode_events` walks all of them with a compiled loop
(:mod:`tracereplay.formats.perfetto.walk`), groups them by event type (the
FtraceEvent field number: typed, or dense generic >= 65536) and has
:class:`tracereplay.formats.perfetto.args.ArgsBuilder` decode each type's
fields and write the JSON ``args`` of every row in compiled loops. No Python
loop runs per event, only per event type and per distinct symbolic value.
Legacy ``GenericFtraceEvent`` s (old recorders) keep the polars builder below.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from tracereplay.formats.common.known_events import KNOWN_EVENTS, SYM, SYSTEM_OF, B, I, S
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto import walk as pf
from tracereplay.formats.perfetto.args import ArgsBuilder, json_key
from tracereplay.formats.perfetto.protowire import (
    I64,
    U8,
    U64,
    Fields,
    WireError,
    gather_bytes,
    iter_fields,
    walk_messages,
)

npt_u64_rows = tuple[I64, U64]  # (row of the event, interned id)
# (rows, iids) -> (distinct symbols, index of each key's symbol in them)
Symbolizer = Callable[[npt_u64_rows], tuple[list[str | None], I64]]
_LIST_FORMAT = r"^[0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*$|^$"


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


def json_str(e: pl.Expr) -> pl.Expr:
    """JSON string literal of a text column (same escaping as the text reader, plus controls)."""
    out = (
        e.str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True)
        .str.replace_all("\t", "\\t", literal=True)
        .str.replace_all("\n", "\\n", literal=True)
        .str.replace_all("\r", "\\r", literal=True)
    )
    for c in [*range(0, 9), 11, 12, *range(14, 32)]:
        out = out.str.replace_all(chr(c), f"\\u{c:04x}", literal=True)
    return pl.concat_str([pl.lit('"'), out, pl.lit('"')])


def strings_at(buf: U8, offsets: I64, lengths: I64) -> pl.Series:
    """The byte ranges as a polars String series (invalid UTF-8 replaced)."""
    data, bounds = gather_bytes(buf, offsets, lengths)
    blob = data.tobytes()
    try:
        blob.decode("utf-8")
    except UnicodeDecodeError:
        texts = [blob[a:b].decode("utf-8", "replace") for a, b in itertools.pairwise(bounds)]
        return pl.Series(texts, dtype=pl.String)
    arr = pa.LargeStringArray.from_buffers(
        len(lengths), pa.py_buffer(bounds.tobytes()), pa.py_buffer(blob)
    )
    return pl.Series(pl.from_arrow(arr))


def decode_events(
    buf: U8,
    off: I64,
    length: I64,
    layouts: Callable[[int], ps.EventLayout | None],
    symbol: Symbolizer | None,
) -> Decoded:
    """Decode the FtraceEvent payloads ``buf[off:off+length]``.

    ``layouts(field_id)`` gives the layout of an event type (None: unknown);
    ``symbol(keys)`` resolves (row, iid) keys to kernel symbol names.
    """
    m = len(off)
    ts, pid, pid_valid, etype, sub_off, sub_len, at, code, detail = pf.walk_events(
        buf, off.astype(np.int64), length.astype(np.int64), 64
    )
    if at >= 0:
        raise WireError(pf.error_text(code, detail, 64), at)
    keep = etype != 0
    out = Decoded(ts, pid, pid_valid, pa.nulls(0), pa.nulls(0), pa.nulls(0), keep)
    if not keep.all():
        out.problems["FtraceEvent without an event payload"] = int((~keep).sum())
    types, inverse = pf.factorize(etype)
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
                whole = _args(layout, gsub, grows, buf, symbol, out.problems)
                args.whole_rows(grows, whole.to_list())
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
    out.args = args.render(buf, sub_off, sub_len, symbol, out.problems)
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


def _args(
    layout: ps.EventLayout,
    sub: Fields,
    rows: I64,
    buf: U8,
    symbol: Symbolizer | None,
    problems: dict[str, int],
) -> pl.Series:
    """JSON args of the events ``rows`` of one type (``sub`` indexes into ``rows``)."""
    n = len(rows)
    known = KNOWN_EVENTS.get(layout.name)
    kinds = dict(known.fields) if known else {}
    by_name = layout.by_name
    skip = {ps.STACK_FRAMES, ps.STACK_ATTACHED} if layout.name == ps.STACK_EVENT else set()
    if layout.typed:
        # a typed proto may have fields the kernel's format lacks: show those only when set
        present = set(np.unique(sub.field).tolist())
        keys = list(kinds) + [
            f.name for f in layout.fields if f.name not in kinds and f.number in present
        ]
    else:
        # dense / legacy generic: the descriptor is the kernel's format, in order
        keys = [f.name for f in layout.fields if f.name not in skip]
    cols: dict[str, pl.Series] = {}
    for key in keys:
        pf = by_name.get(key)
        if pf is None:
            cols[key] = pl.repeat("null", n, eager=True, dtype=pl.String)
            continue
        cols[key] = _field_json(
            layout.name, key, kinds.get(key), pf, sub.select(pf.number), rows, buf, symbol, problems
        )
    if not keys:
        return pl.repeat("{}", n, eager=True, dtype=pl.String)
    frame = pl.DataFrame(cols)
    exprs: list[pl.Expr] = [pl.lit("{")]
    for i, key in enumerate(keys):
        exprs.append(pl.lit(("," if i else "") + json_key(key)))
        exprs.append(pl.col(key))
    exprs.append(pl.lit("}"))
    return frame.select(pl.concat_str(exprs).alias("args")).to_series()


def _field_json(
    event: str,
    key: str,
    kind: str | None,
    pf: ps.ProtoField,
    f: Fields,
    rows: I64,
    buf: U8,
    symbol: Symbolizer | None,
    problems: dict[str, int],
) -> pl.Series:
    n = len(rows)
    out = pl.Series(key, [None] * n, dtype=pl.String)
    is_len = f.wire == 2
    num = ~is_len
    if num.any():
        msg, val = f.msg[num], f.value[num]
        out = out.scatter(msg, _number_json(event, key, kind, pf, rows[msg], val, symbol, problems))
    if is_len.any():
        msg = f.msg[is_len]
        texts = strings_at(buf, f.offset[is_len], f.value[is_len].astype(np.int64))
        frame = pl.DataFrame({"t": texts})
        if key == "cpumask" and kind == S:
            ok = frame.select(pl.col("t").str.contains(_LIST_FORMAT)).to_series()
            if not ok.all():
                # Perfetto stores a __data_loc bitmask as a string cut at the first NUL
                raw = gather_bytes(buf, f.offset[is_len], f.value[is_len].astype(np.int64))
                data, bounds = raw
                fixed = [
                    t if good else ps.cpumask_text(data[a:b].tobytes())
                    for t, good, a, b in zip(
                        texts.to_list(), ok.to_list(), bounds[:-1], bounds[1:], strict=True
                    )
                ]
                frame = pl.DataFrame({"t": pl.Series(fixed, dtype=pl.String)})
        out = out.scatter(msg, frame.select(json_str(pl.col("t"))).to_series())
    return out.fill_null("null")


def _number_json(
    event: str,
    key: str,
    kind: str | None,
    pf: ps.ProtoField,
    rows: I64,
    val: U64,
    symbol: Symbolizer | None,
    problems: dict[str, int],
) -> pl.Series:
    if kind == B or (kind is None and pf.type == ps.T_BOOL):
        return pl.Series(np.where(val != 0, "true", "false"), dtype=pl.String)
    if kind == SYM:
        if symbol is None:
            return pl.Series([None] * len(val), dtype=pl.String)
        found, inv = symbol((rows, val))
        syms = pl.Series(found, dtype=pl.String).gather(inv)
        missing = syms.null_count()
        if missing:
            what = "kernel symbol(s) missing from the interned data: those fields are null"
            problems[what] = problems.get(what, 0) + missing
        return (
            pl.DataFrame({"s": pl.Series(syms, dtype=pl.String)})
            .select(json_str(pl.col("s")))
            .to_series()
        )
    if kind == S:
        table = ps.SYMBOLIC.get((event, key))
        ints = val.view(np.int64)
        if event == "sched_switch" and key == "prev_state":
            uniq, inv = np.unique(ints, return_inverse=True)
            texts = [ps.prev_state_text(int(u)) for u in uniq.tolist()]
        elif table is not None:
            uniq, inv = np.unique(ints, return_inverse=True)
            texts = [table[u] if 0 <= u < len(table) else str(u) for u in uniq.tolist()]
        else:
            uniq, inv = np.unique(ints, return_inverse=True)
            texts = [str(u) for u in uniq.tolist()]
        s = pl.Series(texts, dtype=pl.String).gather(inv.ravel())
        return pl.DataFrame({"s": s}).select(json_str(pl.col("s"))).to_series()
    signed = kind == I or (kind is None and pf.type in ps.SIGNED_TYPES)
    if kind is None and pf.type in ps.ZIGZAG_TYPES:
        z = (val >> np.uint64(1)).view(np.int64) ^ -(val & np.uint64(1)).view(np.int64)
        return pl.Series(z).cast(pl.String)
    if kind is None and pf.type == ps.T_DOUBLE:
        return pl.Series(val.view(np.float64)).cast(pl.String)
    if kind is None and pf.type == ps.T_FLOAT:
        return pl.Series(val.astype(np.uint32).view(np.float32).astype(np.float64)).cast(pl.String)
    if signed:
        return pl.Series(val.view(np.int64)).cast(pl.String)
    return pl.Series(val).cast(pl.String)


__all__ = ["Decoded", "decode_events", "json_str", "strings_at"]
