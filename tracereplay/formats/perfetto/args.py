"""Programs for the compiled ``args`` renderer of the Perfetto reader.

:class:`ArgsBuilder` collects, per batch, the event types present and their
rows; :meth:`ArgsBuilder.render` decodes every row's fields into slots
(:func:`tracereplay.formats.perfetto.walk.decode_fields`), turns the values Python has to render
(kernel symbols, ``__print_symbolic`` / ``__print_flags`` integers, floats,
cut ``cpumask`` strings) into JSON fragments of a pool, one per distinct value,
and writes all rows' JSON with :func:`tracereplay.formats.perfetto.walk.render_args`. The output is
byte-identical to rendering each field with polars string kernels as the first
version of the reader did.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from tracereplay.formats.common.known_events import KNOWN_EVENTS, SYM, B, I, S
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto import walk as pf
from tracereplay.formats.perfetto.protowire import WireError, packed_varints

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Symbolizer = Callable[[tuple[I64, U64]], tuple[list[str | None], I64]]
_LIST = re.compile(r"[0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*|")
_CONTROLS = {c: f"\\u{c:04x}" for c in [*range(0, 9), 11, 12, *range(14, 32)]}
_CONTROLS.update({9: "\\t", 10: "\\n", 13: "\\r", 34: '\\"', 92: "\\\\"})
_MAX_FIELDS = 256


def json_text(s: str) -> str:
    """JSON string literal of ``s``, escaped like ``perfetto.events.json_str``."""
    return '"' + s.translate(_CONTROLS) + '"'


def json_key(key: str) -> str:
    """``"key":`` (names come from the trace's descriptors: escaped like values)."""
    return json_text(key) + ":"


class ArgsBuilder:
    """The ``args`` column of one batch of ``m`` decoded events."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.tidx = np.full(m, -1, dtype=np.int64)
        self.row_pool = np.full(m, -1, dtype=np.int64)
        self.pool: list[bytes] = []
        self.types: list[tuple[ps.EventLayout, I64]] = []
        self.longest = 0  # longest fragment of a single value

    def whole_rows(self, rows: I64, texts: list[str]) -> None:
        """Rows whose whole ``args`` text is already rendered."""
        start = len(self.pool)
        self.pool.extend(t.encode() for t in texts)
        self.row_pool[rows] = np.arange(start, start + len(texts), dtype=np.int64)

    def add_type(self, layout: ps.EventLayout, rows: I64) -> None:
        self.tidx[rows] = len(self.types)
        self.types.append((layout, rows))

    def _fragments(self, texts: list[bytes]) -> int:
        start = len(self.pool)
        self.pool.extend(texts)
        self.longest = max([self.longest, *map(len, texts)])
        return start

    def render(
        self,
        buf: npt.NDArray[np.uint8],
        sub_off: I64,
        sub_len: I64,
        symbol: Symbolizer | None,
        problems: dict[str, int],
    ) -> pa.Array:
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
        kind = np.zeros(total, dtype=np.uint8)
        val = np.zeros(total, dtype=np.uint64)
        aux = np.zeros(total, dtype=np.int64)
        at, code, detail = pf.decode_fields(
            buf,
            np.flatnonzero(has).astype(np.int64),
            self.tidx,
            sub_off,
            sub_len,
            slot_start,
            slot_n,
            slot_fno,
            base,
            kind,
            val,
            aux,
            _MAX_FIELDS,
        )
        if at >= 0:
            raise WireError(pf.error_text(code, detail, _MAX_FIELDS), at)
        lits = bytearray()
        op_lit: list[int] = []
        op_lit_len: list[int] = []
        op_slot: list[int] = []
        op_mode: list[int] = []
        prog_start = np.zeros(nt, dtype=np.int64)
        prog_n = np.zeros(nt, dtype=np.int64)
        for t, (layout, rows) in enumerate(self.types):
            prog_start[t] = len(op_slot)
            slot_of = {f.name: j for j, f in enumerate(layout.fields)}
            known = KNOWN_EVENTS.get(layout.name)
            kinds = dict(known.fields) if known else {}
            row_base = base[rows]
            if layout.typed:
                keys = list(kinds) + [
                    f.name
                    for j, f in enumerate(layout.fields)
                    if f.name not in kinds and bool((kind[row_base + j] != pf.K_ABSENT).any())
                ]
            else:
                skip = (
                    {ps.STACK_FRAMES, ps.STACK_ATTACHED} if layout.name == ps.STACK_EVENT else set()
                )
                keys = [f.name for f in layout.fields if f.name not in skip]
            for i, key in enumerate(keys):
                lit = (("," if i else "") + json_key(key)).encode()
                op_lit.append(len(lits))
                op_lit_len.append(len(lit))
                lits += lit
                j = slot_of.get(key, -1)
                op_slot.append(j)
                if j < 0:
                    op_mode.append(pf.M_UINT)
                    continue
                op_mode.append(
                    self._slot(
                        layout.name,
                        key,
                        kinds.get(key),
                        layout.fields[j],
                        rows,
                        row_base + j,
                        buf,
                        kind,
                        val,
                        aux,
                        symbol,
                        problems,
                    )
                )
            prog_n[t] = len(op_slot) - prog_start[t]
        pool_off = np.zeros(len(self.pool) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in self.pool], out=pool_off[1:])
        pool = np.frombuffer(b"".join(self.pool) + b"\0", dtype=np.uint8)
        offsets, data = pf.render_args(
            buf,
            self.tidx,
            self.row_pool,
            base,
            kind,
            val,
            aux,
            prog_start,
            prog_n,
            np.array(op_lit, dtype=np.int64),
            np.array(op_lit_len, dtype=np.int64),
            np.array(op_slot, dtype=np.int64),
            np.array(op_mode, dtype=np.int64),
            np.frombuffer(bytes(lits) + b"\0", dtype=np.uint8),
            pool,
            pool_off,
            self.longest,
            sub_len,
        )
        return pa.LargeStringArray.from_buffers(self.m, pa.py_buffer(offsets), pa.py_buffer(data))

    def _slot(
        self,
        event: str,
        key: str,
        kind_k: str | None,
        pfield: ps.ProtoField,
        rows: I64,
        idx: I64,
        buf: npt.NDArray[np.uint8],
        kind: npt.NDArray[np.uint8],
        val: U64,
        aux: I64,
        symbol: Symbolizer | None,
        problems: dict[str, int],
    ) -> int:
        """Numeric render mode of one key; pooled values are rewritten in place."""
        ftype = pfield.type
        if pfield.repeated and kind_k is None and ftype in (ps.T_INT64, ps.T_UINT64):
            # packed repeated integers (a fixed array such as sys_enter.args): a JSON list
            at = idx[kind[idx] == pf.K_LEN]
            if at.size:
                signed = ftype == ps.T_INT64
                frags = [
                    packed_json(buf[s : s + n].tobytes(), signed)
                    for s, n in zip(val[at].tolist(), aux[at].tolist(), strict=True)
                ]
                val[at] = np.arange(len(frags), dtype=np.uint64) + np.uint64(self._fragments(frags))
                kind[at] = pf.K_POOL
        if key == "cpumask" and kind_k == S:
            at = idx[kind[idx] == pf.K_LEN]
            if at.size:
                frags = []
                for s, n in zip(val[at].tolist(), aux[at].tolist(), strict=True):
                    raw = buf[s : s + n].tobytes()
                    text = raw.decode("utf-8", "replace")
                    if _LIST.fullmatch(text) is None:
                        text = ps.cpumask_text(raw)
                    frags.append(json_text(text).encode())
                val[at] = np.arange(len(frags), dtype=np.uint64) + np.uint64(self._fragments(frags))
                kind[at] = pf.K_POOL
        if kind_k == B or (kind_k is None and ftype == ps.T_BOOL):
            return pf.M_BOOL
        pooled = kind_k in (SYM, S) or (kind_k is None and ftype in (ps.T_DOUBLE, ps.T_FLOAT))
        if pooled:
            sel = kind[idx] == pf.K_NUM
            at = idx[sel]
            if at.size:
                v = val[at]
                texts: list[str | None]
                if kind_k == SYM:
                    if symbol is None:
                        texts, inv = [None], np.zeros(len(at), dtype=np.int64)
                    else:
                        texts, inv = symbol((rows[sel], v))
                        inv = np.asarray(inv).ravel()
                        none = np.array([t is None for t in texts], dtype=bool)
                        missing = int(none[inv].sum()) if len(texts) else 0
                        if missing:
                            what = (
                                "kernel symbol(s) missing from the interned data: "
                                "those fields are null"
                            )
                            problems[what] = problems.get(what, 0) + missing
                    frags = [b"null" if t is None else json_text(t).encode() for t in texts]
                elif kind_k == S:
                    uniq, inv = np.unique(v.view(np.int64), return_inverse=True)
                    table = ps.SYMBOLIC.get((event, key))
                    if event == "sched_switch" and key == "prev_state":
                        texts = [ps.prev_state_text(int(u)) for u in uniq.tolist()]
                    elif table is not None:
                        texts = [table[u] if 0 <= u < len(table) else str(u) for u in uniq.tolist()]
                    else:
                        texts = [str(u) for u in uniq.tolist()]
                    frags = [json_text(str(t)).encode() for t in texts]
                else:
                    uniq, inv = np.unique(v, return_inverse=True)
                    if ftype == ps.T_DOUBLE:
                        floats = pl.Series(uniq.view(np.float64))
                    else:
                        floats = pl.Series(
                            uniq.astype(np.uint32).view(np.float32).astype(np.float64)
                        )
                    frags = [str(t).encode() for t in floats.cast(pl.String).to_list()]
                start = self._fragments(frags)
                val[at] = np.asarray(inv, dtype=np.int64).ravel().astype(np.uint64) + np.uint64(
                    start
                )
                kind[at] = pf.K_POOL
            return pf.M_UINT
        if kind_k is None and ftype in ps.ZIGZAG_TYPES:
            return pf.M_ZIGZAG
        if kind_k == I or (kind_k is None and ftype in ps.SIGNED_TYPES):
            return pf.M_INT
        return pf.M_UINT


def packed_json(data: bytes, signed: bool) -> bytes:
    """A packed repeated integer field as a JSON list (``[]`` when empty)."""
    values = packed_varints(data)
    shown = values.view(np.int64) if signed else values
    return ("[" + ",".join(map(str, shown.tolist())) + "]").encode()


__all__ = ["ArgsBuilder", "json_key", "json_text", "packed_json"]
