"""Vectorized decoding of ftrace ring-buffer pages and of event fields (DESIGN §9).

A per-CPU trace is a run of sub-buffer pages, each::

    u64 timestamp | long commit (data size + flags) | records ...

and each record starts with a 32-bit header: ``type_len`` (5 bits) and
``time_delta`` (27 bits) (kernel/trace/ring_buffer.c, unchanged since 2.6.31):

* ``type_len`` 1..28: data of ``4 * type_len`` bytes follows;
* 0: the next u32 is the length (+4) and the data follows it;
* 29 padding (``time_delta == 0``: rest of the page is empty), 30 time extend
  (``delta = array[0] << 27 | time_delta``), 31 absolute time stamp (59 bits
  since 5.10: the top 5 bits come from the running time).

The walker advances a cursor in *every* page at once, one record per step,
with numpy; there is no Python loop per record, only one per record index
(at most page_size / 8 steps). Fields are then gathered by offset for all
records of one event type at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from tracereplay.formats.kallsyms import Symbols, hex_names
from tracereplay.formats.text_events import (
    KNOWN_EVENTS,
    SYM,
    B,
    I,
    U,
    X,
)
from tracereplay.formats.tracefs_format import FieldFormat, TraceEventFormat

__all__ = [
    "PageRecords",
    "dynamic_span",
    "gather_bytes",
    "gather_int",
    "render_args",
    "segment_strings",
    "walk_pages",
]

_MISSED_EVENTS = 1 << 31
_MISSED_STORED = 1 << 30
_COMMIT_MASK = (1 << 27) - 1
_TS_MSB = np.uint64(0xF8 << 56)
_PADDING, _TIME_EXTEND, _TIME_STAMP = 29, 30, 31

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


@dataclass
class PageRecords:
    """The data records of a run of pages, in page order then record order."""

    offset: I64  # absolute offset of each record's payload in the buffer
    length: I64  # payload length in bytes
    ts: npt.NDArray[np.uint64]  # raw timestamp (trace clock units)
    page: I64  # page index of each record
    # pages whose header says events were lost before them: (page, count or -1)
    lost_pages: I64
    lost_counts: I64
    page_ts: npt.NDArray[np.uint64]
    # pages whose records ran past the commit size (corrupt): their index
    bad_pages: I64


def _u32(buf: U8, off: I64) -> npt.NDArray[np.uint64]:
    b = buf[off[:, None] + np.arange(4)].astype(np.uint64)
    return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)


def walk_pages(
    buf: U8, page_size: int, *, data_offset: int = 16, commit_size: int = 8
) -> PageRecords:
    """Walk every page of ``buf`` (little-endian, whole pages) in lock-step."""
    n_pages = len(buf) // page_size
    base = np.arange(n_pages, dtype=np.int64) * page_size
    pages = buf[: n_pages * page_size].reshape(n_pages, page_size)
    page_ts = pages[:, :8].copy().view("<u8").ravel()
    commit_raw = pages[:, 8 : 8 + commit_size].copy().view("<u8" if commit_size == 8 else "<u4")
    commit = commit_raw.ravel().astype(np.uint64)
    size = (commit & np.uint64(_COMMIT_MASK)).astype(np.int64)
    bad = size > page_size - data_offset
    size = np.where(bad, 0, size)
    missed = (commit & np.uint64(_MISSED_EVENTS)) != 0
    stored = (commit & np.uint64(_MISSED_STORED)) != 0
    lost_pages = np.flatnonzero(missed)
    lost_counts = np.full(len(lost_pages), -1, dtype=np.int64)
    has_count = stored[lost_pages] & (size[lost_pages] + commit_size <= page_size - data_offset)
    if has_count.any():
        where = base[lost_pages[has_count]] + data_offset + size[lost_pages[has_count]]
        raw = buf[where[:, None] + np.arange(commit_size)].copy()
        lost_counts[has_count] = raw.view("<u8" if commit_size == 8 else "<u4").ravel()

    out_off: list[I64] = []
    out_len: list[I64] = []
    out_ts: list[npt.NDArray[np.uint64]] = []
    out_page: list[I64] = []
    out_step: list[I64] = []
    idx = np.flatnonzero(size > 0)  # pages still being walked
    cur = np.zeros(len(idx), dtype=np.int64)  # cursor relative to the page data
    ts = page_ts[idx].copy()
    end = size[idx]
    overrun: list[I64] = []
    step = 0
    while len(idx):
        hdr_at = base[idx] + data_offset + cur
        # a header needs 4 bytes, extended ones 8: clamp reads to the buffer
        hdr = _u32(buf, np.minimum(hdr_at, len(buf) - 4))
        arr0 = _u32(buf, np.minimum(hdr_at + 4, len(buf) - 4))
        type_len = (hdr & np.uint64(31)).astype(np.int64)
        delta = hdr >> np.uint64(5)
        is_data = (type_len >= 1) & (type_len <= 28)
        is_big = type_len == 0
        is_ext = type_len == _TIME_EXTEND
        is_abs = type_len == _TIME_STAMP
        is_pad = type_len == _PADDING
        # record length (header included) and payload start
        rec_len = np.where(is_data, 4 + type_len * 4, 8).astype(np.int64)
        big_len = ((arr0.astype(np.int64) - 4 + 3) & ~3) + 8
        rec_len = np.where(is_big, big_len, rec_len)
        rec_len = np.where(
            is_pad, np.where(delta == 0, end - cur, arr0.astype(np.int64) + 4), rec_len
        )
        payload = np.where(is_big, 8, 4)
        ext = (arr0 << np.uint64(27)) + delta
        ts = np.where(is_abs, ext | (ts & _TS_MSB), ts + np.where(is_ext, ext, delta))
        ts = ts.astype(np.uint64)
        event = is_data | is_big
        nxt = cur + rec_len
        broken = (rec_len <= 0) | (nxt > end) | (is_big & (arr0 < 4))
        ok_event = event & ~broken
        if ok_event.any():
            sel = np.flatnonzero(ok_event)
            out_off.append(base[idx[sel]] + data_offset + cur[sel] + payload[sel])
            out_len.append(rec_len[sel] - payload[sel])
            out_ts.append(ts[sel])
            out_page.append(idx[sel])
            out_step.append(np.full(len(sel), step, dtype=np.int64))
        # padding that runs to the end is how pages end early: not an error
        real_break = broken & ~(is_pad & (nxt >= end))
        if real_break.any():
            overrun.append(idx[real_break])
        keep = ~broken & (nxt < end)
        idx, cur, ts, end = idx[keep], nxt[keep], ts[keep], end[keep]
        step += 1

    if out_off:
        page_arr = np.concatenate(out_page)
        order = np.lexsort((np.concatenate(out_step), page_arr))
        offset = np.concatenate(out_off)[order]
        length = np.concatenate(out_len)[order]
        rts = np.concatenate(out_ts)[order]
        page_arr = page_arr[order]
    else:
        offset = length = page_arr = np.zeros(0, dtype=np.int64)
        rts = np.zeros(0, dtype=np.uint64)
    bad_pages = np.unique(np.concatenate([np.flatnonzero(bad), *overrun]).astype(np.int64))
    return PageRecords(
        offset=offset,
        length=length,
        ts=rts,
        page=page_arr,
        lost_pages=lost_pages.astype(np.int64),
        lost_counts=lost_counts,
        page_ts=page_ts,
        bad_pages=bad_pages,
    )


def gather_bytes(buf: U8, offsets: I64, width: int) -> U8:
    """``len(offsets)`` x ``width`` bytes starting at each offset (zero past the end)."""
    if width <= 0 or len(offsets) == 0:
        return np.zeros((len(offsets), max(width, 0)), dtype=np.uint8)
    idx = offsets[:, None] + np.arange(width, dtype=np.int64)
    inside = idx < len(buf)
    out = buf[np.where(inside, idx, 0)]
    out[~inside] = 0
    return out


_DTYPES = {1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}


def gather_int(
    buf: U8, offsets: I64, size: int, signed: bool
) -> npt.NDArray[np.int64] | npt.NDArray[np.uint64]:
    """Little-endian integers of ``size`` bytes at ``offsets``: int64 when signed, else uint64."""
    if size not in _DTYPES:
        raise ValueError(f"integer of {size} bytes")
    raw = np.ascontiguousarray(gather_bytes(buf, offsets, size)).view(_DTYPES[size]).ravel()
    if signed:
        return raw.view(_DTYPES[size].replace("u", "i")).astype(np.int64)
    return raw.astype(np.uint64)


def segment_strings(buf: U8, start: I64, length: I64) -> pa.LargeStringArray:
    """Strings of ``length`` bytes at ``start`` (cut at the first NUL), as one Arrow array.

    Bytes are gathered in one fancy-index; invalid UTF-8 is replaced like the
    text reader does (U+FFFD).
    """
    n = len(start)
    length = np.clip(length, 0, None)
    # never read past the buffer
    length = np.minimum(length, np.clip(len(buf) - start, 0, None))
    total = int(length.sum())
    if total == 0:
        return pa.array([""] * n, type=pa.large_string())
    seg_start = np.concatenate([[0], np.cumsum(length)[:-1]])
    local = np.arange(total, dtype=np.int64) - np.repeat(seg_start, length)
    data = buf[np.repeat(start, length) + local]
    big = np.int64(1 << 40)
    first_nul = np.full(n, big, dtype=np.int64)
    nonempty = length > 0
    marks = np.where(data == 0, local, big)
    first_nul[nonempty] = np.minimum.reduceat(marks, seg_start[nonempty])
    keep_len = np.minimum(length, first_nul)
    keep = local < np.repeat(keep_len, length)
    out = np.ascontiguousarray(data[keep])
    offsets = np.concatenate([[0], np.cumsum(keep_len)]).astype(np.int64)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out))
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:
        raw = out.tobytes()
        texts = [
            raw[a:b].decode("utf-8", "replace")
            for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        ]
        arr = pa.array(texts, type=pa.large_string())
    return arr


def dynamic_span(buf: U8, rec: I64, rec_len: I64, f: FieldFormat) -> tuple[I64, I64]:
    """(absolute start, length) of a ``__data_loc`` / ``__rel_loc`` field's payload."""
    loc = gather_int(buf, rec + f.offset, 4, False).astype(np.int64)
    off = loc & 0xFFFF
    length = loc >> 16
    if f.dynamic == "rel_loc":
        off = off + f.offset + f.size
    # clamp to the record: a bad loc must not read other records
    off = np.minimum(off, rec_len)
    length = np.minimum(length, rec_len - off)
    return rec + off, length


# --- rendering fields as the canonical JSON ``args`` (tracereplay.schema) ---------------


def _int_values(
    buf: U8, rec: I64, f: FieldFormat
) -> npt.NDArray[np.int64] | npt.NDArray[np.uint64]:
    size = f.elem_size if f.array_len else f.size
    return gather_int(buf, rec + f.offset, size, f.signed)


def _as_u64(v: npt.NDArray[np.int64] | npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    return v.view(np.uint64) if v.dtype == np.int64 else v.astype(np.uint64)


def _as_i64(v: npt.NDArray[np.int64] | npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    return v.view(np.int64) if v.dtype == np.uint64 else v.astype(np.int64)


def _num_json(v: npt.NDArray[np.int64] | npt.NDArray[np.uint64]) -> pl.Series:
    return pl.Series(v).cast(pl.String)


def _str_json(values: pa.Array | list[str]) -> pl.Series:
    # same escaping as the text reader (backslash, quote, tab), so args compare equal
    s = pl.Series(values, dtype=pl.String)
    escaped = (
        s.str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True)
        .str.replace_all("\t", "\\t", literal=True)
    )
    return ('"' + escaped + '"').fill_null("null")


def json_object(pairs: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """``{"k":v,...}`` from (key, JSON text expression) pairs, without spaces."""
    parts: list[pl.Expr] = [pl.lit("{")]
    for i, (key, value) in enumerate(pairs):
        parts.append(pl.lit(("," if i else "") + f'"{key}":'))
        parts.append(value)
    parts.append(pl.lit("}"))
    return pl.concat_str(parts)


def _map_unique(v: npt.NDArray[np.uint64], render: Callable[[int], str]) -> list[str]:
    uniq, inv = np.unique(v, return_inverse=True)
    names = [render(int(x)) for x in uniq.tolist()]
    return [names[i] for i in inv.ravel().tolist()]


def print_flags(value: int, delim: str, table: list[tuple[int, str]]) -> str:
    """The kernel's ``__print_flags`` (trace_print_flags_seq): names, then leftover hex."""
    out: list[str] = []
    for mask, name in table:
        if mask == 0 and value != 0:
            continue
        if mask == 0 or value & mask == mask:
            out.append(name)
            value &= ~mask
            if mask == 0:
                break
    if value:
        out.append(f"{value:#x}")
    return delim.join(out)


def cpulist(mask: bytes) -> str:
    """Kernel ``%*pbl`` list format of a little-endian bitmap: ``0-3,8``."""
    bits = np.flatnonzero(np.unpackbits(np.frombuffer(mask, dtype=np.uint8), bitorder="little"))
    if not len(bits):
        return ""
    breaks = np.flatnonzero(np.diff(bits) != 1)
    starts = np.concatenate([[bits[0]], bits[breaks + 1]])
    ends = np.concatenate([bits[breaks], [bits[-1]]])
    return ",".join(
        f"{a}" if a == b else f"{a}-{b}"
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    )


def _cpumask_strings(buf: U8, start: I64, length: I64) -> list[str]:
    width = int(length.max()) if len(length) else 0
    raw = gather_bytes(buf, start, width)
    raw[np.arange(width)[None, :] >= length[:, None]] = 0
    rows = np.ascontiguousarray(raw).view(f"V{max(width, 1)}").ravel() if width else None
    if rows is None:
        return [""] * len(start)
    uniq, inv = np.unique(rows, return_inverse=True)
    names = [cpulist(u.tobytes()) for u in uniq]
    return [names[i] for i in inv.ravel().tolist()]


def _prev_state(v: npt.NDArray[np.uint64], table: list[tuple[int, str]], delim: str) -> list[str]:
    # sched_switch prints prev_state as flags of the reportable bits, "R" for none,
    # and "+" when TASK_REPORT_MAX is set (preempted); TASK_REPORT_MAX is one above
    # the highest reportable bit (0x100 since 4.14, commit efb40f588b43).
    report = 0
    for mask, _ in table:
        report |= mask
    top = report + 1

    def render(x: int) -> str:
        state = x & report
        text = print_flags(state, delim, table) if state else "R"
        return text + ("+" if x & top else "")

    return _map_unique(v, render)


def _string_field(buf: U8, rec: I64, rec_len: I64, f: FieldFormat) -> pa.Array:
    if f.dynamic:
        start, length = dynamic_span(buf, rec, rec_len, f)
        return segment_strings(buf, start, length)
    return segment_strings(buf, rec + f.offset, np.full(len(rec), f.size, dtype=np.int64))


def _known_value(
    buf: U8,
    rec: I64,
    rec_len: I64,
    fmt: TraceEventFormat,
    f: FieldFormat,
    kind: str,
    symbols: Symbols | None,
) -> pl.Series:
    if f.is_string:
        return _str_json(_string_field(buf, rec, rec_len, f))
    if f.is_cpumask:
        start, length = dynamic_span(buf, rec, rec_len, f)
        return _str_json(_cpumask_strings(buf, start, length))
    if f.dynamic or f.array_len:
        return _generic_value(buf, rec, rec_len, f)
    v = _int_values(buf, rec, f)
    if kind in (U, X):
        return _num_json(_as_u64(v))
    if kind == I:
        return _num_json(_as_i64(v) if f.size == 8 else v)
    if kind == B:
        return pl.Series(np.where(v != 0, "true", "false"), dtype=pl.String)
    u = _as_u64(v)
    if kind == SYM:
        return _str_json(symbols.names(u) if symbols is not None else hex_names(u))
    # S: symbolic / flags tables of the print fmt, else the number as text
    if f.name == "prev_state" and f.name in fmt.flags:
        delim, table = fmt.flags[f.name]
        return _str_json(_prev_state(u, table, delim))
    if f.name in fmt.symbolic:
        table_s = fmt.symbolic[f.name]
        return _str_json(_map_unique(u, lambda x: table_s.get(x, f"{x:#x}")))
    if f.name in fmt.flags:
        delim, table = fmt.flags[f.name]
        return _str_json(_map_unique(u, lambda x: print_flags(x, delim, table)))
    if f.is_pointer:
        # %p: the text shows a hashed pointer; the raw value is all we have
        return _str_json(_map_unique(u, lambda x: f"{x:016x}"))
    return _str_json(_num_json(v).to_list())


def _generic_value(buf: U8, rec: I64, rec_len: I64, f: FieldFormat) -> pl.Series:
    """JSON of a field of an event without a normalization spec: numbers, strings, lists."""
    if f.is_string:
        return _str_json(_string_field(buf, rec, rec_len, f))
    if f.is_cpumask:
        start, length = dynamic_span(buf, rec, rec_len, f)
        return _str_json(_cpumask_strings(buf, start, length))
    if f.array_len:
        es = f.elem_size
        if es not in (1, 2, 4, 8):
            return pl.Series(["null"] * len(rec), dtype=pl.String)
        cols = [
            _num_json(gather_int(buf, rec + f.offset + k * es, es, f.signed))
            for k in range(f.array_len)
        ]
        frame = pl.DataFrame({f"c{k}": c for k, c in enumerate(cols)})
        return frame.select(
            pl.concat_str([pl.lit("["), pl.concat_str(pl.all(), separator=","), pl.lit("]")])
        ).to_series()
    if f.dynamic:
        # variable-length numeric arrays are rare: one small loop per record
        start, length = dynamic_span(buf, rec, rec_len, f)
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
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[es]
        dt = np.dtype(f"<{code if f.signed else code.upper()}")
        out = []
        for s, n in zip(start.tolist(), length.tolist(), strict=True):
            vals = np.frombuffer(buf[s : s + n - n % es].tobytes(), dtype=dt)
            out.append("[" + ",".join(str(x) for x in vals.tolist()) + "]")
        return pl.Series(out, dtype=pl.String)
    if f.size not in (1, 2, 4, 8):
        return pl.Series(["null"] * len(rec), dtype=pl.String)
    return _num_json(_int_values(buf, rec, f))


def render_args(
    buf: U8,
    rec: I64,
    rec_len: I64,
    fmt: TraceEventFormat,
    symbols: Symbols | None,
) -> pl.Series:
    """JSON ``args`` of records of one event type (payload starts at ``rec``).

    Events in :data:`~tracereplay.formats.text_events.KNOWN_EVENTS` get exactly
    the keys and normalization the text reader produces (fields the format
    lacks are null); other events get every non-common field by name.
    """
    n = len(rec)
    spec = KNOWN_EVENTS.get(fmt.name)
    if spec is not None and fmt.system not in (None, spec.system):
        spec = None
    pairs: list[tuple[str, pl.Expr]] = []
    cols: dict[str, pl.Series] = {}
    if spec is not None:
        for k, (key, kind) in enumerate(spec.fields.items()):
            f = fmt.field_named(key)
            if f is None:
                pairs.append((key, pl.lit("null")))
                continue
            cols[f"a{k}"] = _known_value(buf, rec, rec_len, fmt, f, kind, symbols)
            pairs.append((key, pl.col(f"a{k}")))
    else:
        for k, f in enumerate(fmt.fields):
            cols[f"a{k}"] = _generic_value(buf, rec, rec_len, f)
            pairs.append((f.name, pl.col(f"a{k}")))
    if not pairs:
        return pl.Series("args", ["{}"] * n, dtype=pl.String)
    frame = pl.DataFrame(cols) if cols else pl.DataFrame({"_": np.zeros(n)})
    return frame.select(json_object(pairs).alias("args")).to_series()
