"""Vectorized parsing of ftrace-style text lines into canonical events.

One function, :func:`parse_block`, turns a block of complete text lines into an
Arrow table of events, with no Python loop per line: the compiled scanners of
:mod:`tracereplay.formats.text.line_scan` find every header field and render the
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracereplay.formats.common.known_events import SYSCALL_PREFIXES, SYSCALL_SYSTEM, SYSTEM_OF
from tracereplay.formats.text import line_scan as scan
from tracereplay.formats.text.args import GivenNumbers, Payloads, build_args
from tracereplay.formats.text.numbers import TextNumbers, given_columns
from tracereplay.formats.text.templates import (
    EV_GENERIC,
    EV_SYSCALL_ENTER,
    EV_SYSCALL_EXIT,
    compile_templates,
)
from tracereplay.schema import EVENT_SCHEMA

# Name under which stack-trace entries are stored (trace-cmd's name for them).
STACK_EVENT = "kernel_stack"

_LOST = re.compile(
    r"^\s*CPU:\s*(\d+)\s+\[(?:LOST (\d+) EVENTS|LOST EVENTS|(\d+) EVENTS DROPPED|EVENTS DROPPED)\]"
)
_METADATA = re.compile(
    r"^(?:#|cpus=\d+|version\s*=\s*\d+|CPU \d+ is empty|\s*trace-cmd:"
    # trace-cmd report --stat: the kernel buffer statistics of each CPU
    r"|Kernel buffer statistics:|\s+Note: |\s+recorded in the trace data|CPU: \d+\s*$"
    r"|(?:entries|overrun|commit overrun|bytes|dropped events|read events): \d+\s*$"
    r"|(?:oldest event ts|now ts):\s+[\d.]+\s*$|CPU\d+ data recorded at offset="
    r"|\s+\d+ bytes in size\s*$|Buffer: \S+\s*$)"
)

EVENT_COLUMNS = [f.name for f in EVENT_SCHEMA]

# the compiled functions every text read runs (for the first-run compile notice)
COMPILED = (scan.line_bounds, scan.scan_headers, scan.gather, build_args)


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
    # (line, what): a header value outside its column's range (the reader raises)
    range_error: tuple[int, str] | None = None
    # (field values not understood or out of range, stored as null; line of the first)
    bad_values: tuple[int, int] | None = None
    # (line, length) of the longest line when it exceeds MAX_LINE (the reader raises)
    long_line: tuple[int, int] | None = None
    # cpu -> frames of a stack entry whose event is in the previous block
    leading_stacks: dict[int, list[str]] = field(default_factory=dict)


# Longest line accepted (a tracefs event line is at most a few KiB: the kernel's
# trace_seq is one page; stack traces are one frame per line).
MAX_LINE = 1 << 20

_RANGE_WHAT = {
    scan.RANGE_CPU: "CPU number",
    scan.RANGE_PID: "pid",
    scan.RANGE_TGID: "tgid",
    scan.RANGE_TS: "timestamp",
}
_RANGE_LIMIT = {
    scan.RANGE_CPU: "0..2^31-1",
    scan.RANGE_PID: "0..2^31-1",
    scan.RANGE_TGID: "0..2^31-1",
    scan.RANGE_TS: "below 2^63 ns (292 years)",
}


def _strings(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.LargeStringArray:
    offsets, data = scan.gather(buf, starts, ends)
    return pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data))


def _text(block: bytes, starts: np.ndarray, ends: np.ndarray, i: int) -> str:
    return block[starts[i] : ends[i]].decode("utf-8", "replace")


# build_args' plan when no row is given as numbers
_NO_NUMBERS = GivenNumbers(np.zeros(0, np.int64), np.zeros((0, 0), np.uint64))


def parse_block(block: bytes, first_line: int, numbers: TextNumbers | None = None) -> BlockResult:
    """Parse complete text lines; ``first_line`` is the 1-based number of the first.

    ``numbers``: the events whose rows to give as numbers where they can be
    (:mod:`tracereplay.formats.text.numbers`): those rows then come last, each event's
    together, with their values in columns named ``event.key``.
    """
    buf = np.frombuffer(block, np.uint8)
    starts, ends, index, nlines, longest, longest_at = scan.line_bounds(buf)
    result = BlockResult(events=_empty(), lines=nlines)
    if longest > MAX_LINE:
        result.long_line = (first_line + longest_at, longest)
        return result
    hdr = scan.scan_headers(buf, starts, ends)
    kind = hdr.kind
    out_of_range = np.flatnonzero(hdr.range_error)
    if len(out_of_range):
        i = int(out_of_range[0])
        code = int(hdr.range_error[i])
        result.range_error = (
            first_line + int(index[i]),
            f"{_RANGE_WHAT[code]} out of range ({_RANGE_LIMIT[code]}): "
            f"{_text(block, starts, ends, i)[:100]!r}",
        )
        return result
    rows = np.flatnonzero(kind == scan.EVENT)
    h = hdr.take(rows)
    _other_lines(block, starts, ends, index, kind, first_line, result)
    if len(rows) == 0:
        return result
    marker = h.marker == 1
    syscall = h.syscall
    has_sys = h.sys_end >= 0
    name_start = np.where(has_sys, h.sys_end + 1, h.name_start)
    names = _strings(buf, name_start, h.name_end)
    names = pc.if_else(pa.array(marker), STACK_EVENT, names)
    if syscall.any():
        names = _syscall_names(names, syscall)
    encoded = pc.dictionary_encode(names)
    uniq = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    tables, event_index = compile_templates()
    event_id = np.array([_event_id(event_index, n) for n in uniq], np.int64)[codes]
    systems = pa.array([_system_of(n) for n in uniq], pa.large_string()).take(encoded.indices)
    if has_sys.any():
        printed = _strings(buf, h.name_start, np.where(has_sys, h.sys_end, h.name_start))
        systems = pc.if_else(pa.array(has_sys), printed, systems)
    rows_b = Payloads(h.payload_start, h.payload_end, event_id, marker)
    plan = _NO_NUMBERS
    if numbers is not None:
        plan = numbers.rows(uniq, codes, systems, bool(has_sys.any()))
    # rows that may be given as numbers go last, each event's together, before args are
    # rendered: when all are given (the usual case) the args need no reordering after
    pre = _numbers_last(plan.elide, len(numbers.names)) if numbers is not None else None
    if pre is not None:
        rows_b = Payloads(*(np.ascontiguousarray(a[pre]) for a in rows_b))
        plan = GivenNumbers(np.ascontiguousarray(plan.elide[pre]), plan.maxima)
    offsets, data, bad, first_bad, values, given = build_args(buf, rows_b, tables, plan)
    if bad and pre is not None:  # damaged lines: name the first in line order
        first_bad = build_args(
            buf, Payloads(h.payload_start, h.payload_end, event_id, marker), tables, _NO_NUMBERS
        )[3]
    if bad:
        result.bad_values = (int(bad), first_line + int(index[rows[first_bad]]))
    args = pa.LargeStringArray.from_buffers(len(rows), pa.py_buffer(offsets), pa.py_buffer(data))
    seq = index[rows] + first_line
    stack: pa.Array = pa.nulls(len(rows), pa.large_list(pa.large_string()))
    if (kind == scan.FRAME).any():
        stack, result.orphan_frames = _stacks(
            buf, starts, ends, kind, rows, h, result.leading_stacks
        )
    result.raw_clock_lines = int(h.raw_clock.sum())
    columns = {
        "seq": seq,
        "ts": h.ts,
        "cpu": h.cpu,
        "pid": h.pid,
        "tgid": h.tgid,
        "comm_start": h.comm_start,
        "comm_end": h.comm_end,
    }
    extra: list[pa.Array] = []
    schema = EVENT_SCHEMA
    if pre is not None:
        assert numbers is not None
        order, extra, schema, keep_json = given_columns(numbers, plan.elide, given, values)
        if keep_json:
            args = _with_json(args, keep_json)
        if order is not None and not (order == np.arange(len(order))).all():
            args = args.take(pa.array(order))  # a row of the event rendered as JSON after all
            pre = pre[order]
        columns = {k: v[pre] for k, v in columns.items()}
        take = pa.array(pre)
        systems, names = systems.take(take), names.take(take)
        if stack.null_count != len(rows):
            stack = stack.take(take)
    tgid = columns["tgid"]
    result.events = pa.Table.from_arrays(
        [
            pa.array(columns["seq"]),
            pa.array(columns["ts"]),
            pa.array(columns["cpu"].astype(np.int32)),
            pa.array(columns["pid"].astype(np.int32)),
            pa.array(tgid.astype(np.int32), mask=tgid < 0),
            _strings(buf, columns["comm_start"], columns["comm_end"]),
            systems,
            names,
            args,
            stack,
            *extra,
        ],
        schema=schema,
    )
    return result


def _numbers_last(elide: np.ndarray, events: int) -> np.ndarray | None:
    """Row order putting the rows of each planned event (``elide`` k >= 0) last, event k
    after k - 1 (as :func:`~tracereplay.formats.tracefs.batches.elided_order` orders the
    rows given); None when no row may be given."""
    if not len(elide):
        return None
    return np.concatenate(
        [np.flatnonzero(elide < 0)] + [np.flatnonzero(elide == k) for k in range(events)]
    )


def _with_json(args: pa.Array, rows: list[tuple[int, str]]) -> pa.Array:
    """``args`` with the rows' JSON put back (rows build_args gave as numbers that their
    event's ``accept`` refused)."""
    mask = np.zeros(len(args), np.bool_)
    mask[[r for r, _ in rows]] = True
    texts = pa.array([text for _, text in sorted(rows)], pa.large_string())
    return pc.replace_with_mask(args, pa.array(mask), texts)


def _syscall_names(names: pa.Array, syscall: np.ndarray) -> pa.Array:
    """tracefs' ``sys_madvise(`` / ``sys_madvise ->`` rows -> sys_enter_madvise / sys_exit_madvise."""
    bare = pc.utf8_slice_codeunits(names, 4)  # without "sys_"
    sep = pa.scalar("", pa.large_string())
    enter = pc.binary_join_element_wise(pa.scalar("sys_enter_", pa.large_string()), bare, sep)
    leave = pc.binary_join_element_wise(pa.scalar("sys_exit_", pa.large_string()), bare, sep)
    out = pc.if_else(pa.array(syscall == scan.SC_ENTER), enter, names)
    return pc.if_else(pa.array(syscall == scan.SC_EXIT), leave, out)


def _event_id(index: dict[str, int], name: str) -> int:
    if name in index:
        return index[name]
    if name.startswith(SYSCALL_PREFIXES[0]):
        return EV_SYSCALL_ENTER
    if name.startswith(SYSCALL_PREFIXES[1]):
        return EV_SYSCALL_EXIT
    return EV_GENERIC


def _system_of(name: str) -> str | None:
    known = SYSTEM_OF.get(name)
    if known is None and name.startswith(SYSCALL_PREFIXES):
        return SYSCALL_SYSTEM
    return known


def _empty() -> pa.Table:
    return EVENT_SCHEMA.empty_table()


def _other_lines(
    block: bytes,
    starts: np.ndarray,
    ends: np.ndarray,
    index: np.ndarray,
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
    maybe = np.isin(first, np.frombuffer(b"#BCKbcdenorv ", np.uint8))
    bad = list(other[~maybe])
    for i in other[maybe]:
        text = _text(block, starts, ends, int(i))
        line = first_line + int(index[i])
        m = _LOST.match(text)
        if m and int(m.group(1)) < 1 << 31:
            count = m.group(2) or m.group(3)
            n = int(count) if count else None
            # a count beyond the column (a damaged line) is an unknown count, still a gap
            result.lost.append(
                (int(m.group(1)), None, n if n is None or n < 1 << 63 else None, line)
            )
        elif _METADATA.match(text):
            result.comments.append((line, text))
        else:
            bad.append(i)
    result.unparsed = len(bad)
    if bad:
        i = int(min(bad))
        result.first_unparsed = (first_line + int(index[i]), _text(block, starts, ends, i))


def _stacks(
    buf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    kind: np.ndarray,
    rows: np.ndarray,
    h: scan.Headers,
    leading: dict[int, list[str]],
) -> tuple[pa.Array, int]:
    """Stack column for the events of a block that has frame lines (a rare path).

    Frames belong to the nearest non-frame line above them; when that line is a
    stack entry (tracefs ``<stack trace>``, trace-cmd ``kernel_stack``) they also
    belong to the last ordinary event on the same CPU before it. ``leading`` gets,
    per CPU, the frames of a stack entry that comes before any event of its CPU.
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
    ev = pl.DataFrame({"holder": rows, "cpu": h.cpu, "is_marker": h.marker == 1})
    ev = ev.with_columns(
        owner=pl.when(~pl.col("is_marker")).then(pl.col("holder")).forward_fill().over("cpu")
    )
    ev = ev.with_columns(
        owner=pl.when(pl.col("is_marker")).then(pl.col("owner")).otherwise(pl.col("holder"))
    )
    frames = frames.join(ev.select("holder", "owner", "is_marker", "cpu"), on="holder", how="left")
    # a stack entry before any event of its CPU in this block: its event ended the
    # previous block (another CPU's lines came between them); the reader attaches it
    lead = frames.filter(pl.col("is_marker").fill_null(False) & pl.col("owner").is_null())
    for cpu in lead["cpu"].unique(maintain_order=True).to_list():
        holder = lead.filter(pl.col("cpu") == cpu)["holder"].min()
        leading[int(cpu)] = lead.filter(pl.col("holder") == holder)["sym"].to_list()
    orphans = int(frames["owner"].null_count()) - sum(len(v) for v in leading.values())
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


__all__ = ["COMPILED", "EVENT_COLUMNS", "MAX_LINE", "STACK_EVENT", "BlockResult", "parse_block"]
