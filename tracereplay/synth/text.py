"""tracefs ``trace`` text writer (``record-tgid`` and ``irq-info`` on), vectorized.

The line layout is the kernel's ``trace_print_context()``::

    "%16s-%-7d " comm, pid; "(%7d) " tgid; "[%03d] " cpu; irq-info flags + " ";
    "%5llu.%06lu: " timestamp; then "name: payload"

as in fixtures/pinned-threads-6.18.txt. Lost events print ``CPU:N [LOST M EVENTS]``
before the next entry of that CPU, as ``print_trace_line()`` does.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa

from tracereplay.synth import events as ev
from tracereplay.synth.events import Events
from tracereplay.synth.scenario import LostSpec

HEADER = """\
# tracer: nop
#
# entries-in-buffer/entries-written: {n}/{n}   #P:{cpus}
#
#                                          _-----=> irqs-off/BH-disabled
#                                         / _----=> need-resched
#                                        | / _---=> hardirq/softirq
#                                        || / _--=> preempt-depth
#                                        ||| / _-=> migrate-disable
#                                        |||| /     delay
#           TASK-PID       TGID    CPU#  |||||  TIMESTAMP  FUNCTION
#              | |           |       |   |||||     |         |
"""

_LUT = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_CHUNK = 1 << 20


def _nibbles(values: np.ndarray) -> np.ndarray:
    """(n, 16) ASCII hex digits of uint64 values, most significant first."""
    raw = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    out = np.empty((len(values), 16), np.uint8)
    out[:, 0::2] = _LUT[raw >> 4]
    out[:, 1::2] = _LUT[raw & 15]
    return out


def hex_fixed(values: np.ndarray, width: int) -> pl.Series:
    """Zero-padded lowercase hex of ``width`` digits (values must fit)."""
    digits = np.ascontiguousarray(_nibbles(values)[:, 16 - width :])
    offsets = (np.arange(len(values) + 1, dtype=np.int32) * width).astype(np.int32)
    arr = pa.StringArray.from_buffers(
        len(values), pa.py_buffer(offsets.tobytes()), pa.py_buffer(digits.tobytes())
    )
    return pl.Series(pl.from_arrow(arr))


def hex_var(values: np.ndarray) -> pl.Series:
    """Lowercase hex without leading zeros (``%lx``; zero prints ``0``)."""
    digits = _nibbles(values)
    nz = digits != ord("0")
    first = np.where(nz.any(axis=1), nz.argmax(axis=1), 15)
    ndig = (16 - first).astype(np.int32)
    mask = np.arange(16)[None, :] >= first[:, None]
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum(ndig, out=offsets[1:])
    arr = pa.StringArray.from_buffers(
        len(values), pa.py_buffer(offsets.tobytes()), pa.py_buffer(digits[mask].tobytes())
    )
    return pl.Series(pl.from_arrow(arr))


def _dec(values: np.ndarray) -> pl.Series:
    return pl.Series(values).cast(pl.String)


def _vector_payload(name: int, e: Events, idx: np.ndarray, nr_split: bool) -> pl.Series:
    c = e.cols
    a, b, cc, d = c["a"][idx], c["b"][idx], c["c"][idx], c["d"][idx]
    if name == ev.KVM_PF:
        parts = [
            pl.lit("vcpu "), _dec(d), pl.lit(" rip 0x"), hex_var(b), pl.lit(" address 0x"),
            hex_fixed(a, 16), pl.lit(" error_code 0x"), hex_var(cc),
        ]  # fmt: skip
    elif name == ev.PF_USER:
        parts = [
            pl.lit("address=0x"), hex_var(a), pl.lit(" ip=0x"), hex_var(b),
            pl.lit(" error_code=0x"), hex_var(cc),
        ]  # fmt: skip
    elif name == ev.UNMAP:
        # %#016lx: "0x" plus 14 zero-padded digits
        parts = [
            pl.lit("mmu notifier unmap range: 0x"), hex_fixed(a, 14), pl.lit(" -- 0x"),
            hex_fixed(b, 14),
        ]  # fmt: skip
    elif name == ev.MIGRATE:
        split = " nr_split=0" if nr_split else ""
        parts = [
            pl.lit("nr_succeeded="), _dec(a), pl.lit(" nr_failed="), _dec(b),
            pl.lit(" nr_thp_succeeded="), _dec(cc), pl.lit(" nr_thp_failed="), _dec(d),
            pl.lit(f" nr_thp_split=0{split} mode=MIGRATE_ASYNC reason=numa_misplaced"),
        ]  # fmt: skip
    else:
        raise ValueError(f"no vector payload for event {ev.NAMES[name]}")
    frame = pl.DataFrame({"_": np.zeros(len(idx), np.int8)})
    return frame.select(
        pl.concat_str([p if isinstance(p, pl.Expr) else pl.lit(p) for p in parts])
    ).to_series()


_STACK_TEXT = ["<stack trace>" + "".join(f"\n => {f}" for f in st) for st in ev.STACKS]


def format_lines(e: Events, comms: list[str], nr_split: bool) -> pl.Series:
    """One text entry per event (stack entries include their `` => sym`` lines)."""
    c = e.cols
    n = len(e)
    names = c["name"]
    payload = pl.Series("p", [None] * n, dtype=pl.String)
    sid = c["sid"]
    has = np.flatnonzero(sid >= 0)
    if len(has):
        strings = pl.Series(e.strings, dtype=pl.String)
        payload = payload.scatter(has, strings.gather(sid[has]))
    for name in (ev.KVM_PF, ev.PF_USER, ev.UNMAP, ev.MIGRATE):
        idx = np.flatnonzero((names == name) & (sid < 0))
        if len(idx):
            payload = payload.scatter(idx, _vector_payload(name, e, idx, nr_split))
    stack = np.flatnonzero(names == ev.STACK)
    if len(stack):
        payload = payload.scatter(stack, pl.Series(_STACK_TEXT).gather(c["d"][stack]))
    ts = c["ts"]
    name_s = pl.Series(list(ev.NAMES)).gather(names.astype(np.int64))
    frame = pl.DataFrame(
        {
            "comm": pl.Series(comms).gather(c["comm"]),
            "pid": c["pid"],
            "tgid": c["tgid"],
            "cpu": c["cpu"],
            "flags": pl.Series(list(ev.FLAGS)).gather(c["flags"].astype(np.int64)),
            "sec": ts // 1_000_000_000,
            "usec": (ts % 1_000_000_000) // 1000,
            "name": name_s,
            "payload": payload,
            "is_stack": names == ev.STACK,
        }
    )
    col = pl.col
    return frame.select(
        pl.concat_str(
            [
                col("comm").str.pad_start(16),
                pl.lit("-"),
                col("pid").cast(pl.String).str.pad_end(7),
                pl.lit(" ("),
                pl.when(col("tgid") > 0)
                .then(col("tgid").cast(pl.String).str.pad_start(7))
                .otherwise(pl.lit("-------")),
                pl.lit(") ["),
                col("cpu").cast(pl.String).str.zfill(3),
                pl.lit("] "),
                col("flags"),
                pl.lit(" "),
                col("sec").cast(pl.String).str.pad_start(5),
                pl.lit("."),
                col("usec").cast(pl.String).str.zfill(6),
                pl.lit(": "),
                pl.when(col("is_stack"))
                .then(col("payload"))
                .otherwise(pl.concat_str([col("name"), pl.lit(": "), col("payload")])),
            ]
        ).alias("line")
    ).to_series()


class LostGaps:
    """Drops ``count`` ring-buffer entries per CPU from time ``at`` on (stacks go with their event)."""

    def __init__(self, lost: Iterable[LostSpec], t0: int):
        self.todo = sorted((t0 + int(g.at * 1e9), g.cpu, g.count) for g in lost)
        self.active: dict[int, int] = {}  # cpu -> events still to drop
        self.dropped: dict[int, int] = {}  # cpu -> dropped and not yet reported
        self.total = 0

    def apply(self, e: Events) -> tuple[Events, list[tuple[int, int, int]]]:
        """Kept events and markers (row index of the next kept event, cpu, count)."""
        if not self.todo and not self.active and not self.dropped:
            return e, []
        ts, cpu, names = e.cols["ts"], e.cols["cpu"], e.cols["name"]
        keep = np.ones(len(e), bool)
        markers: list[tuple[int, int, int]] = []
        while self.todo and (len(e) == 0 or self.todo[0][0] <= ts[-1]):
            at, c, count = self.todo.pop(0)
            self.active[c] = self.active.get(c, 0) + count
            self._start = getattr(self, "_start", {})
            self._start[c] = at
        for c in sorted(set(self.active) | set(self.dropped)):
            rows = np.flatnonzero(cpu == c)
            if c in self.active:
                rows_after = rows[ts[rows] >= self._start.get(c, 0)]
                unit = names[rows_after] != ev.STACK
                owner = np.cumsum(unit)  # 1-based event unit of every row
                left = self.active[c]
                drop = rows_after[(owner <= left) & (owner > 0)]
                keep[drop] = False
                used = int(unit[: len(drop)].sum()) if len(drop) else 0
                self.dropped[c] = self.dropped.get(c, 0) + len(drop)
                self.total += len(drop)
                self.active[c] = left - used
                if self.active[c] <= 0:
                    del self.active[c]
            if c not in self.active and self.dropped.get(c):
                later = rows[keep[rows]]
                if len(later):
                    markers.append((int(later[0]), c, self.dropped.pop(c)))
        kept = np.flatnonzero(keep)
        remap = np.cumsum(keep) - 1
        return e.take(kept), [(int(remap[r]), c, n) for r, c, n in markers]


def write_text(
    out: BinaryIO,
    batches: Iterable[Events],
    comms: list[str],
    *,
    nr_split: bool,
    lost: LostGaps,
) -> Counter[str]:
    """Write the entries (not the header); returns the written entries per event name."""
    counts: Counter[str] = Counter()
    for batch in batches:
        kept, markers = lost.apply(batch)
        for start in range(0, len(kept), _CHUNK):
            part = kept.take(np.arange(start, min(start + _CHUNK, len(kept))))
            lines = format_lines(part, comms, nr_split)
            mk = [(r - start, c, n) for r, c, n in markers if start <= r < start + len(part)]
            if mk:
                rows = [r for r, _c, _n in mk]
                old = lines.gather(rows).to_list()
                new = [
                    f"CPU:{c} [LOST {n} EVENTS]\n{t}" for (_r, c, n), t in zip(mk, old, strict=True)
                ]
                lines = lines.scatter(rows, pl.Series(new, dtype=pl.String))
            buf = io.BytesIO()
            lines.to_frame().write_csv(buf, include_header=False, quote_style="never")
            out.write(buf.getvalue())
            bc = np.bincount(part.cols["name"].astype(np.int64), minlength=len(ev.NAMES))
            for i, k in enumerate(bc):
                if k:
                    counts[ev.NAMES[i]] += int(k)
    return counts


__all__ = ["HEADER", "LostGaps", "format_lines", "hex_fixed", "hex_var", "write_text"]
