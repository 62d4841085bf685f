"""Event records and ring-buffer pages for the trace.dat writer.

:func:`encode_records` turns the rows of one event type into raw tracepoint
records (common fields, the fields at the offsets of the event's ``format``
file, ``__data_loc`` payloads after the fixed part), column by column; values
that need a Python conversion (symbol names, ``__print_symbolic`` names,
cpumask lists) are converted once per distinct value. :func:`pack_pages` lays
the records of one CPU into ring-buffer pages with a compiled loop: 32-bit
headers (``type_len`` 1..28 for payloads up to 112 bytes, 0 plus a length word
above), 27-bit time deltas with time-extend records for longer gaps, a page
per lost-events gap flagged ``RB_MISSED_EVENTS`` with the count stored after
the data, ``commit`` = bytes used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from tracereplay.formats.common.known_events import SYM, X
from tracereplay.formats.tracefs.format_file import FieldFormat, TraceEventFormat

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

_DELTA_BITS = 27
_MAX_SMALL = 28 * 4
MISSED_EVENTS = 1 << 31
MISSED_STORED = 1 << 30
_U64_MASK = (1 << 64) - 1


# ---------------------------------------------------------------- value conversion


def _inverse_flags(value: str, delim: str, table: list[tuple[int, str]]) -> int:
    names = {n: m for m, n in table}
    out = 0
    for part in value.split(delim) if value else []:
        out |= names[part] if part in names else int(part, 0)
    return out


def _prev_state(value: str, delim: str, table: list[tuple[int, str]]) -> int:
    report = 0
    for mask, _ in table:
        report |= mask
    top = report + 1 if value.endswith("+") else 0
    body = value.rstrip("+")
    return top | (0 if body in ("R", "") else _inverse_flags(body, delim, table))


def _cpumask_bytes(value: str) -> bytes:
    bits: list[int] = []
    for part in value.split(",") if value else []:
        a, _, b = part.partition("-")
        bits.extend(range(int(a), int(b or a) + 1))
    words = max(1, (max(bits, default=0) // 64) + 1)
    mask = np.zeros(words * 64, dtype=np.uint8)
    mask[bits] = 1
    return np.packbits(mask, bitorder="little").tobytes()


def _per_unique(values: pl.Series, convert: Callable[[Any], Any], dtype: Any) -> pl.Series:
    """``convert`` applied once per distinct value of a string column (None stays None)."""
    s = values.cast(pl.String)
    uniq = s.drop_nulls().unique(maintain_order=True)
    old = uniq.to_list()
    new = pl.Series([convert(v) for v in old], dtype=dtype)
    return s.replace_strict(pl.Series(old, dtype=pl.String), new, default=None, return_dtype=dtype)


def _int_of(text: str) -> int:
    t = text.strip()
    return int(t, 16) if t.startswith("0x") or not t.lstrip("-").isdigit() else int(t)


class Symbols:
    """Symbol names used by pointer fields and stacks -> synthetic kernel addresses."""

    BASE = 0xFFFFFFFF81000000
    STEP = 0x100

    def __init__(self) -> None:
        self.addr: dict[str, int] = {}

    def address(self, name: str) -> int:
        if name.startswith("0x"):
            try:
                return int(name, 16)  # unresolved: printed as its hex value
            except ValueError:
                pass
        a = self.addr.get(name)
        if a is None:
            a = self.addr[name] = self.BASE + self.STEP * len(self.addr)
        return a

    def kallsyms(self) -> str:
        return "".join(f"{a:016x} T {n}\n" for n, a in self.addr.items())


# ---------------------------------------------------------------- records


def _numbers(
    fmt: TraceEventFormat, f: FieldFormat, kind: str | None, s: pl.Series, syms: Symbols
) -> npt.NDArray[np.uint64]:
    """u64 bit patterns of a numeric field."""
    n = s.len()
    if s.dtype == pl.Null or s.null_count() == n:
        return np.zeros(n, dtype=np.uint64)
    if s.dtype == pl.Boolean:
        return s.fill_null(False).cast(pl.UInt64).to_numpy().astype(np.uint64)
    if s.dtype.is_integer():
        if s.dtype == pl.UInt64:
            return s.fill_null(0).to_numpy().astype(np.uint64)
        if s.dtype == pl.Int128:  # u64 values >= 2^63 beside negative ones: keep the bits
            return np.array([v & _U64_MASK for v in s.fill_null(0).to_list()], dtype=np.uint64)
        return s.fill_null(0).cast(pl.Int64).to_numpy().astype(np.int64).view(np.uint64)
    if s.dtype.is_float():
        return s.fill_null(0).cast(pl.Int64).to_numpy().astype(np.int64).view(np.uint64)
    conv: Callable[[Any], int]
    if kind == SYM:
        conv = syms.address
    elif f.name == "prev_state" and f.name in fmt.flags:
        delim, table = fmt.flags[f.name]
        conv = lambda v: _prev_state(v, delim, table)  # noqa: E731
    elif f.name in fmt.symbolic:
        inv = {name: val for val, name in fmt.symbolic[f.name].items()}
        conv = lambda v: inv[v] if v in inv else _int_of(v)  # noqa: E731
    elif f.name in fmt.flags:
        delim, table = fmt.flags[f.name]
        conv = lambda v: _inverse_flags(v, delim, table)  # noqa: E731
    elif f.is_pointer or kind in (X,):
        conv = lambda v: int(v, 16)  # noqa: E731
    else:
        conv = _int_of
    vals = _per_unique(s, lambda v: conv(v) & 0xFFFFFFFFFFFFFFFF, pl.UInt64)
    return vals.fill_null(0).to_numpy().astype(np.uint64)


def _dynamic_elem_size(f: FieldFormat) -> int:
    """Element size of a ``__data_loc`` array, from its C type (as the reader decodes it)."""
    base = f.type.replace("__data_loc", "").replace("__rel_loc", "")
    if "64" in base or "long" in base:
        return 8
    if "int" in base or "32" in base:
        return 4
    return 2 if "16" in base or "short" in base else 1


def _array_bytes(s: pl.Series, size: int, n: int) -> pa.LargeBinaryArray:
    """Each row's list of integers as little-endian ``size``-byte elements (empty when null)."""
    if not isinstance(s.dtype, pl.List) or not s.dtype.inner.is_integer():
        return pa.array([b""] * n, pa.large_binary())
    arr = s.to_arrow()
    lens = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(arr).fill_null(0)
    if pa.types.is_unsigned_integer(flat.type):
        bits = flat.cast(pa.uint64()).to_numpy(zero_copy_only=False)
    else:
        bits = flat.cast(pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64)
    data = bits.astype(f"<u{size}").view(np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens * size, out=offsets[1:])
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())]
    )


def _texts(s: pl.Series) -> pa.BinaryArray:
    if s.dtype != pl.String:
        s = s.cast(pl.String, strict=False)
    return pa.array(s.fill_null("").to_arrow().cast(pa.large_string()).cast(pa.large_binary()))


def encode_records(
    fmt: TraceEventFormat,
    args: pl.DataFrame,
    pid: I64,
    kinds: dict[str, str] | None,
    syms: Symbols,
    stacks: pl.Series | None = None,
) -> tuple[U8, I64]:
    """(flat record bytes, record lengths) of rows of one event type.

    ``args`` has one column per field name the rows carry (missing: zero);
    ``kinds`` are the normalization kinds of a known event (None: generic).
    ``stacks`` (kernel_stack only): frame names, written as ``caller[]``.
    """
    n = len(pid)
    fixed = max(f.offset + f.size for f in [*fmt.common, *fmt.fields])
    rec = np.zeros((n, fixed), dtype=np.uint8)

    def put(f: FieldFormat, vals: npt.NDArray[Any]) -> None:
        size = f.size if not f.array_len else f.elem_size
        if size not in (1, 2, 4, 8):
            return
        raw = vals.astype(np.uint64).astype(f"<u{size}")
        rec[:, f.offset : f.offset + size] = raw.view(np.uint8).reshape(n, size)

    for c in fmt.common:
        if c.name == "common_type":
            put(c, np.full(n, fmt.id, dtype=np.uint64))
        elif c.name == "common_pid":
            put(c, pid.astype(np.int64).view(np.uint64))
    dyn: list[tuple[FieldFormat, pa.Array]] = []
    cols = set(args.columns)
    for f in fmt.fields:
        s = args[f.name] if f.name in cols else pl.Series(f.name, [None] * n, dtype=pl.Null)
        kind = kinds.get(f.name) if kinds else None
        if f.dynamic:
            if f.is_string:
                dyn.append((f, _texts(s)))
            elif f.is_cpumask:
                masks = _per_unique(s, _cpumask_bytes, pl.Binary).fill_null(b"")
                dyn.append((f, masks.to_arrow().cast(pa.large_binary())))
            else:
                dyn.append((f, _array_bytes(s, _dynamic_elem_size(f), n)))
        elif f.is_string:
            arr = _texts(s)
            offs = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + n + 1]
            data = np.frombuffer(arr.buffers()[2] or b"\0", np.uint8)
            ln = np.minimum(np.diff(offs), f.size - 1)  # keep the NUL, as the kernel does
            rows = np.repeat(np.arange(n), ln)
            local = _ranges(ln)
            rec[rows, f.offset + local] = data[np.repeat(offs[:-1], ln) + local]
        elif f.array_len:
            if f.elem_size in (1, 2, 4, 8) and isinstance(s.dtype, pl.List):
                packed = _array_bytes(s.list.head(f.array_len), f.elem_size, n)
                offs = np.frombuffer(packed.buffers()[1], np.int64)[: n + 1]
                data = np.frombuffer(packed.buffers()[2] or b"\0", np.uint8)
                ln = np.diff(offs)
                rows = np.repeat(np.arange(n), ln)
                local = _ranges(ln)
                rec[rows, f.offset + local] = data[np.repeat(offs[:-1], ln) + local]
        else:
            put(f, _numbers(fmt, f, kind, s, syms))
    lengths = np.full(n, fixed, dtype=np.int64)
    extra: list[tuple[I64, U8, I64]] = []  # (offset in record, bytes, lengths) per dynamic field
    for f, arr in dyn:
        null_term = 0 if f.is_cpumask else 1
        offs = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
        data = np.frombuffer(arr.buffers()[2] or b"\0", dtype=np.uint8)
        ln = np.diff(offs) + null_term
        at = lengths.copy()
        loc = at if f.dynamic == "data_loc" else at - (f.offset + f.size)
        put(f, (loc | (ln << 16)).astype(np.uint64))
        lengths += ln
        extra.append((at, data[offs[0] : offs[-1]], np.diff(offs)))
    if stacks is not None:
        size_f = fmt.field_named("size")
        caller = fmt.field_named("caller")
        assert size_f is not None and caller is not None
        count = stacks.list.len().fill_null(0).to_numpy().astype(np.int64)
        put(size_f, count.astype(np.uint64))
        flat_names = stacks.explode().drop_nulls()
        addrs = _per_unique(flat_names, syms.address, pl.UInt64).to_numpy().astype(np.uint64)
        lengths = np.maximum(lengths, caller.offset + 8 * count)
        at = np.full(n, caller.offset, dtype=np.int64)
        extra.append((at, addrs.view(np.uint8), count * 8))
    if not extra:
        return rec.reshape(-1), lengths
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    out = np.zeros(int(starts[-1]), dtype=np.uint8)
    _copy_rows(out, starts, rec)
    for at, data, ln in extra:
        src = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(ln, out=src[1:])
        _copy_runs(out, starts[:-1] + at, data, src)
    return out, lengths


@njit(cache=True, nogil=True)
def _copy_rows(out: np.ndarray, starts: np.ndarray, rec: np.ndarray) -> None:
    width = rec.shape[1]
    for i in range(rec.shape[0]):
        out[starts[i] : starts[i] + width] = rec[i]


@njit(cache=True, nogil=True)
def _copy_runs(out: np.ndarray, dst: np.ndarray, data: np.ndarray, src: np.ndarray) -> None:
    for i in range(len(dst)):
        ln = src[i + 1] - src[i]
        out[dst[i] : dst[i] + ln] = data[src[i] : src[i + 1]]


def _ranges(counts: I64) -> I64:
    """0..c-1 for each c, concatenated."""
    total = int(counts.sum())
    first = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - first


# ---------------------------------------------------------------- pages


@njit(cache=True, nogil=True)
def _put(out: np.ndarray, at: int, value: Any, nbytes: int) -> None:
    v = np.uint64(value)
    for k in range(nbytes):
        out[at + k] = np.uint8((v >> np.uint64(8 * k)) & np.uint64(0xFF))


@njit(cache=True, nogil=True)
def _close(out: np.ndarray, base: int, data_offset: int, used: int, lost: Any) -> None:
    commit = np.uint64(used)
    if lost >= 0:
        commit |= np.uint64(MISSED_EVENTS | MISSED_STORED)
        at = base + data_offset + used
        _put(out, at, lost, 8)
    _put(out, base + 8, commit, 8)


@njit(cache=True, nogil=True)
def _pack(
    flat: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    ts: np.ndarray,
    lost: np.ndarray,
    page_size: int,
    data_offset: int,
    out: np.ndarray,
    write: bool,
) -> int:
    room_full = page_size - data_offset
    pages = 0
    used = 0
    room = 0
    last = np.int64(0)
    base = 0
    page_lost = np.int64(-1)
    for i in range(len(starts)):
        plen = (lengths[i] + 3) & ~3
        size = 4 + plen if plen <= _MAX_SMALL else 8 + plen
        delta = ts[i] - last
        ext = 8 if (pages > 0 and delta >= (1 << _DELTA_BITS)) else 0
        if pages == 0 or lost[i] >= 0 or used + ext + size > room:
            if pages > 0 and write:
                _close(out, base, data_offset, used, page_lost)
            page_lost = lost[i]
            base = pages * page_size
            pages += 1
            used = 0
            room = room_full
            last = ts[i]
            delta = np.int64(0)
            ext = 0
            if write:
                _put(out, base, ts[i], 8)
            if lost[i] >= 0:
                room = room_full - 8
        at = base + data_offset + used
        if ext:
            if write:
                hdr = np.uint32(30) | np.uint32((delta & ((1 << _DELTA_BITS) - 1)) << 5)
                _put(out, at, hdr, 4)
                _put(out, at + 4, np.uint32(delta >> _DELTA_BITS), 4)
            at += 8
            used += 8
            delta = np.int64(0)
        if write:
            if plen <= _MAX_SMALL:
                _put(out, at, np.uint32(plen // 4) | np.uint32(delta << 5), 4)
                p = at + 4
            else:
                _put(out, at, np.uint32(delta << 5), 4)
                _put(out, at + 4, np.uint32(plen + 4), 4)
                p = at + 8
            s = starts[i]
            out[p : p + lengths[i]] = flat[s : s + lengths[i]]
        used += size
        last = ts[i]
    if pages > 0 and write:
        _close(out, base, data_offset, used, page_lost)
    return pages


def pack_pages(
    flat: U8, starts: I64, lengths: I64, ts: I64, lost: I64, page_size: int, data_offset: int
) -> U8:
    """Ring-buffer pages of one CPU's records (in order); ``lost[i] >= 0`` starts a new page
    flagged with that many missed events."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint8)
    if int(lengths.max()) + 16 > page_size - data_offset - 8:
        raise ValueError(f"an event record of {int(lengths.max())} bytes does not fit a page")
    args = (flat, starts, lengths, ts.astype(np.int64), lost.astype(np.int64))
    n = _pack(*args, page_size, data_offset, np.zeros(0, np.uint8), False)
    out = np.zeros(n * page_size, dtype=np.uint8)
    _pack(*args, page_size, data_offset, out, True)
    return out
