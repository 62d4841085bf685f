"""Vectorized parsing of ftrace-style text lines into canonical events.

One function, :func:`parse_block`, turns a block of complete text lines into an
Arrow table of events, with no Python loop per line: the compiled scanners of
:mod:`tracereplay.formats.ftrace_scan` find every header field and render the
``args`` JSON in one pass each. It understands the three text layouts kernel
developers have:

* tracefs ``trace`` / ``trace_pipe``::

      qemu-system-x86-4242    (   4242) [001] d..1.  1234.567890: kvm_unmap_hva_range: mmu ...

  with or without the ``(tgid)`` column (``record-tgid``) and the irq-info
  flags column;
* ``trace-cmd report``: ``comm-pid [cpu] ts: name: payload`` (optionally with
  latency flags);
* ``perf script`` for tracepoints: ``comm pid[/tid] [cpu] ts: sys:name: payload``.

Stack traces are attached to the event they belong to: tracefs ``<stack trace>``
entries and trace-cmd ``kernel_stack`` events (followed by `` => sym`` lines)
belong to the previous event on the same CPU; perf callchain lines
(``\\t ffffffff8123 sym+0x1f ([kernel.kallsyms])``) belong to the sample above.
Lost-event markers (``CPU:N [LOST M EVENTS]``, trace-cmd's
``CPU:N [M EVENTS DROPPED]``) become lost-event rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracereplay.formats import ftrace_scan as scan
from tracereplay.formats.text_events import SYSTEM_OF
from tracereplay.schema import EVENT_SCHEMA

# Name under which stack-trace entries are stored (trace-cmd's name for them).
STACK_EVENT = "kernel_stack"

_LOST = re.compile(
    r"^\s*CPU:\s*(\d+)\s+\[(?:LOST (\d+) EVENTS|LOST EVENTS|(\d+) EVENTS DROPPED|EVENTS DROPPED)\]"
)
_METADATA = re.compile(r"^(?:#|cpus=\d+|version\s*=\s*\d+|CPU \d+ is empty|\s*trace-cmd:)")

EVENT_COLUMNS = [f.name for f in EVENT_SCHEMA]


@dataclass
class BlockResult:
    """What one block of lines contained besides its events."""

    events: pa.Table
    lost: list[tuple[int, int | None, int | None, int]] = field(default_factory=list)
    # (line number, text) of comment and metadata lines: few, read by the reader
    comments: list[tuple[int, str]] = field(default_factory=list)
    unparsed: int = 0
    first_unparsed: tuple[int, str] | None = None
    orphan_frames: int = 0
    raw_clock_lines: int = 0
    lines: int = 0
    first_line: int = 1
    # (invalid UTF-8 sequences replaced, line of the first), set by the reader
    bad_utf8: tuple[int, int] | None = None


@lru_cache(maxsize=1)
def _templates() -> scan.TemplateTable:
    return scan.TemplateTable()


def _strings(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.LargeStringArray:
    offsets, data = scan.gather(buf, starts, ends)
    return pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data))


def _text(block: bytes, starts: np.ndarray, ends: np.ndarray, i: int) -> str:
    return block[starts[i] : ends[i]].decode("utf-8", "replace")


def parse_block(block: bytes, first_line: int) -> BlockResult:
    """Parse complete text lines; ``first_line`` is the 1-based number of the first."""
    buf = np.frombuffer(block, np.uint8)
    starts, ends = scan.line_bounds(buf)
    hdr, is_event = scan.scan_headers(buf, starts, ends)
    kind = hdr[0]
    rows = np.flatnonzero(is_event)
    h = hdr[:, rows]  # one contiguous row per header field
    result = BlockResult(events=_empty(), lines=len(starts))
    _other_lines(block, starts, ends, kind, first_line, result)
    if len(rows) == 0:
        return result
    marker = h[13] == 1
    has_sys = h[10] >= 0
    name_start = np.where(has_sys, h[10] + 1, h[8])
    names = _strings(buf, name_start, h[9])
    names = pc.if_else(pa.array(marker), STACK_EVENT, names)
    encoded = pc.dictionary_encode(names)
    uniq = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    table = _templates()
    event_id = np.array([table.event_index.get(n, -1) for n in uniq], np.int64)[codes]
    systems = pa.array([SYSTEM_OF.get(n) for n in uniq], pa.large_string()).take(encoded.indices)
    if has_sys.any():
        printed = _strings(buf, h[8], np.where(has_sys, h[10], h[8]))
        systems = pc.if_else(pa.array(has_sys), printed, systems)
    offsets, data = scan.build_args(
        buf,
        h[11],
        h[12],
        event_id,
        marker,
        table.lit,
        table.ev_tmpl,
        table.ev_slots,
        table.slots,
        table.tmpl,
        table.fields,
    )
    args = pa.LargeStringArray.from_buffers(len(rows), pa.py_buffer(offsets), pa.py_buffer(data))
    seq = rows.astype(np.int64) + first_line
    tgid = h[3]
    stack: pa.Array = pa.nulls(len(rows), pa.large_list(pa.large_string()))
    if (kind == scan.FRAME).any():
        stack, result.orphan_frames = _stacks(buf, starts, ends, kind, rows, h, first_line)
    result.raw_clock_lines = int(h[5].sum())
    result.events = pa.Table.from_arrays(
        [
            pa.array(seq),
            pa.array(h[4]),
            pa.array(h[1].astype(np.int32)),
            pa.array(h[2].astype(np.int32)),
            pa.array(tgid.astype(np.int32), mask=tgid < 0),
            _strings(buf, h[6], h[7]),
            systems,
            names,
            args,
            stack,
        ],
        schema=EVENT_SCHEMA,
    )
    return result


def _empty() -> pa.Table:
    return EVENT_SCHEMA.empty_table()


def _other_lines(
    block: bytes,
    starts: np.ndarray,
    ends: np.ndarray,
    kind: np.ndarray,
    first_line: int,
    result: BlockResult,
) -> None:
    """Lost-event markers, comments and metadata, and the count of lines not understood.

    Only lines starting with a character that can begin such a line are looked at
    in Python; the rest of the non-event lines are counted as not understood.
    """
    other = np.flatnonzero(kind == scan.OTHER)
    if len(other) == 0:
        return
    first = np.frombuffer(block, np.uint8)[starts[other]]
    maybe = np.isin(first, np.frombuffer(b"#Ccv ", np.uint8))
    bad = list(other[~maybe])
    for i in other[maybe]:
        text = _text(block, starts, ends, int(i))
        m = _LOST.match(text)
        if m:
            count = m.group(2) or m.group(3)
            result.lost.append(
                (int(m.group(1)), None, int(count) if count else None, first_line + int(i))
            )
        elif _METADATA.match(text):
            result.comments.append((first_line + int(i), text))
        else:
            bad.append(i)
    result.unparsed = len(bad)
    if bad:
        i = int(min(bad))
        result.first_unparsed = (first_line + i, _text(block, starts, ends, i))


def _stacks(
    buf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    kind: np.ndarray,
    rows: np.ndarray,
    h: np.ndarray,
    first_line: int,
) -> tuple[pa.Array, int]:
    """Stack column for the events of a block that has frame lines (a rare path).

    Frames belong to the nearest non-frame line above them; when that line is a
    stack entry (tracefs ``<stack trace>``, trace-cmd ``kernel_stack``) they also
    belong to the last ordinary event on the same CPU before it.
    """
    import polars as pl  # only traces with stack frames need it

    n = len(starts)
    is_frame = kind == scan.FRAME
    frame_idx = np.flatnonzero(is_frame)
    lines = pl.Series("line", _strings(buf, starts[frame_idx], ends[frame_idx]))
    frames = pl.DataFrame({"idx": frame_idx, "line": lines})
    sym = pl.coalesce(
        pl.col("line").str.extract(r"^\s*=>\s*(\S+)", 1),
        pl.col("line").str.extract(r"^\s+[0-9a-f]{8,16}\s+(\S+)", 1),
    ).str.replace(r"\+0x[0-9a-f]+(?:/0x[0-9a-f]+)?$", "")
    last_non_frame = np.maximum.accumulate(np.where(~is_frame, np.arange(n), -1))
    frames = frames.with_columns(sym=sym, holder=pl.Series(last_non_frame[frame_idx]))
    ev = pl.DataFrame({"holder": rows, "cpu": h[1], "is_marker": h[13] == 1})
    ev = ev.with_columns(
        owner=pl.when(~pl.col("is_marker")).then(pl.col("holder")).forward_fill().over("cpu")
    )
    ev = ev.with_columns(
        owner=pl.when(pl.col("is_marker")).then(pl.col("owner")).otherwise(pl.col("holder"))
    )
    frames = frames.join(ev.select("holder", "owner", "is_marker"), on="holder", how="left")
    orphans = int(frames["owner"].null_count())
    stacks = (
        frames.filter(pl.col("owner").is_not_null())
        .group_by("owner", maintain_order=True)
        .agg(stack=pl.col("sym"))
    )
    by_marker = (
        frames.filter(pl.col("is_marker").fill_null(False))
        .group_by("holder", maintain_order=True)
        .agg(mstack=pl.col("sym"))
    )
    out = (
        pl.DataFrame({"row": rows})
        .join(stacks, left_on="row", right_on="owner", how="left")
        .join(by_marker, left_on="row", right_on="holder", how="left")
        .select(stack=pl.coalesce("mstack", "stack"))
    )
    arrow = out.to_arrow().column("stack").combine_chunks()
    return arrow.cast(pa.large_list(pa.large_string())), orphans


__all__ = ["EVENT_COLUMNS", "STACK_EVENT", "BlockResult", "parse_block"]
