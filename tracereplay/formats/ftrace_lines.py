"""Vectorized parsing of ftrace-style text lines into canonical events.

One function, :func:`parse_block`, turns a block of complete text lines into an
events frame, with no Python loop per line: lines are split by polars' CSV
reader (one column, no quoting) and every field is cut out with literal splits
and short anchored regexes over whole columns. It understands the three text
layouts kernel developers have:

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

import io
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from tracereplay.formats.text_events import KNOWN_EVENTS, SYSTEM_OF, generic_args, known_args

# Names under which the stack-trace pseudo events appear in text outputs.
STACK_EVENT = "kernel_stack"
_STACK_MARKERS = ("<stack trace>", "kernel_stack")

_FRAME = r"^\s*=>\s|^\s+[0-9a-f]{8,16}\s+\S"
_LOST = (
    r"^\s*CPU:\s*(\d+)\s+\[(?:LOST (\d+) EVENTS|LOST EVENTS|(\d+) EVENTS DROPPED|EVENTS DROPPED)\]"
)

EVENT_COLUMNS = ["seq", "ts", "cpu", "pid", "tgid", "comm", "system", "name", "args", "stack"]


@dataclass
class BlockResult:
    """What one block of lines contained besides its events."""

    events: pl.DataFrame
    lost: list[tuple[int, int | None, int | None, int]] = field(default_factory=list)
    # (line number, text) of comment and metadata lines: few, read by the reader
    comments: list[tuple[int, str]] = field(default_factory=list)
    unparsed: int = 0
    first_unparsed: tuple[int, str] | None = None
    orphan_frames: int = 0
    raw_clock_lines: int = 0
    lines: int = 0


def read_lines(block: bytes) -> pl.DataFrame:
    """One string column ``line`` per text line (empty lines become null)."""
    if not block:
        return pl.DataFrame({"line": pl.Series([], dtype=pl.String)})
    return pl.read_csv(
        io.BytesIO(block),
        has_header=False,
        separator="\x1f",
        quote_char=None,
        new_columns=["line"],
        schema_overrides={"line": pl.String},
        infer_schema=False,
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
    )


_PREFIX = r"^\s*(.*?)[-\s](\d+)(?:/(\d+))?\s+(?:\(\s*([-\d]+)\)\s+)?\[\s*(\d+)$"


def _split_header(lines: pl.DataFrame) -> pl.DataFrame:
    """Cut every line into header fields; ``is_event`` marks the event lines.

    Each step is materialized once (a lazy chain with one split per column);
    polars would otherwise recompute a shared split for every field using it.
    """
    line = pl.col("line")
    work = (
        lines.lazy()
        .with_columns(head=line.str.splitn("] ", 2))
        .with_columns(pre=pl.col("head").struct[0], rest=pl.col("head").struct[1])
        .with_columns(
            parts=pl.col("rest").str.splitn(": ", 3),
            who=pl.col("pre").str.extract_groups(_PREFIX),
        )
        .with_columns(
            fts=pl.col("parts").struct[0],
            rawname=pl.col("parts").struct[1].str.strip_chars_end(":"),
            payload=pl.col("parts").struct[2],
            comm=pl.col("who").struct[0].str.strip_chars_end(),
            pid_a=pl.col("who").struct[1].str.to_integer(strict=False),
            pid_b=pl.col("who").struct[2].str.to_integer(strict=False),
            tgid_p=pl.col("who").struct[3].str.to_integer(strict=False),
            cpu=pl.col("who").struct[4].str.to_integer(strict=False).cast(pl.Int32),
        )
        # the timestamp is the last blank-separated token before ": name"
        .with_columns(tsparts=pl.col("fts").str.split(" ").list.last().str.splitn(".", 2))
        .with_columns(
            sec=pl.col("tsparts").struct[0].str.to_integer(strict=False),
            frac=pl.col("tsparts").struct[1],
        )
        .with_columns(
            is_event=(
                pl.col("cpu").is_not_null()
                & pl.col("sec").is_not_null()
                & pl.col("pid_a").is_not_null()
                & (pl.col("rawname").str.len_bytes() > 0)
            ).fill_null(False)
        )
        .with_columns(
            # frames are rare: only lines that are not events can be frames
            is_frame=(~pl.col("is_event") & line.str.contains(_FRAME)).fill_null(False)
        )
        .drop("head", "parts", "who", "tsparts", "rest", "pre")
    )
    return work.collect()


def _events_frame(df: pl.DataFrame) -> pl.DataFrame:
    ev = df.filter(pl.col("is_event"))
    frac9 = pl.col("frac").str.slice(0, 9).str.pad_end(9, "0").str.to_integer(strict=False)
    has_sys = pl.col("rawname").str.contains(":", literal=True)
    sysname = pl.col("rawname").str.splitn(":", 2)
    is_marker = pl.col("rawname").is_in(_STACK_MARKERS)
    name = (
        pl.when(is_marker)
        .then(pl.lit(STACK_EVENT))
        .when(has_sys)
        .then(sysname.struct[1])
        .otherwise(pl.col("rawname"))
    )
    ev = ev.select(
        pl.col("seq"),
        ts=pl.when(pl.col("frac").is_not_null())
        .then(pl.col("sec") * 1_000_000_000 + frac9)
        .otherwise(pl.col("sec")),
        raw_clock=pl.col("frac").is_null(),
        cpu=pl.col("cpu"),
        # perf prints "pid/tid"; ftrace and trace-cmd print the task (thread) id
        pid=pl.coalesce(pl.col("pid_b"), pl.col("pid_a")).cast(pl.Int32),
        tgid=pl.when(pl.col("pid_b").is_not_null())
        .then(pl.col("pid_a"))
        .otherwise(pl.col("tgid_p"))
        .cast(pl.Int32),
        comm=pl.col("comm"),
        system=pl.when(has_sys).then(sysname.struct[0]).otherwise(pl.lit(None, dtype=pl.String)),
        name=name,
        # the stack itself is the content of a stack entry: no fields
        payload=pl.when(is_marker)
        .then(None)
        .otherwise(pl.col("payload").str.strip_chars_start(" ")),
        is_marker=is_marker,
    )
    return ev.with_columns(
        system=pl.coalesce(
            pl.col("system"),
            pl.col("name").replace_strict(SYSTEM_OF, default=None, return_dtype=pl.String),
        )
    )


def _args(ev: pl.DataFrame) -> pl.DataFrame:
    """Add the JSON ``args`` column: one vectorized pass per known event type.

    Rows are gathered per event name and the results put back in place with one
    permutation (cheaper than partitioning and re-sorting the frame).
    """
    if ev.is_empty():
        return ev.with_columns(args=pl.lit(None, dtype=pl.String))
    names = ev["name"]
    payload = ev.select("payload")
    pieces: list[pl.Series] = []
    where: list[pl.Series] = []
    present = set(names.unique().to_list())
    for name in sorted(present & KNOWN_EVENTS.keys()):
        idx = (names == name).arg_true()
        pieces.append(known_args(name, payload[idx]))
        where.append(idx)
    rest = (~names.is_in(list(KNOWN_EVENTS))).arg_true()
    if rest.len():
        pieces.append(payload[rest].select(generic_args(pl.col("payload"))).to_series())
        where.append(rest)
    order = np.empty(ev.height, dtype=np.int64)
    order[pl.concat(where).to_numpy()] = np.arange(ev.height)
    args = pl.concat(pieces).gather(order)
    return ev.with_columns(args=args.alias("args"))


def _frame_symbols(frames: pl.DataFrame) -> pl.DataFrame:
    line = pl.col("line")
    sym = pl.coalesce(
        line.str.extract(r"^\s*=>\s*(\S+)", 1),
        line.str.extract(r"^\s+[0-9a-f]{8,16}\s+(\S+)", 1),
    )
    return frames.with_columns(sym=sym.str.replace(r"\+0x[0-9a-f]+(?:/0x[0-9a-f]+)?$", ""))


def _attach_stacks(df: pl.DataFrame, ev: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Give each event the frames printed after it (see module docstring)."""
    if not df["is_frame"].any():
        return ev.with_columns(stack=pl.lit(None, dtype=pl.List(pl.String))), 0
    # holder: the nearest non-frame line above each frame line
    rows = df.select(
        "seq",
        "is_frame",
        "line",
        holder=pl.when(~pl.col("is_frame")).then(pl.col("seq")).forward_fill(),
    )
    frames = _frame_symbols(rows.filter(pl.col("is_frame")))
    # a stack marker belongs to the last real event on its CPU before it
    owners = ev.select(
        "seq",
        "is_marker",
        owner=pl.when(~pl.col("is_marker")).then(pl.col("seq")).forward_fill().over("cpu"),
    )
    holder_info = owners.select(
        holder=pl.col("seq"),
        owner=pl.when(pl.col("is_marker")).then(pl.col("owner")).otherwise(pl.col("seq")),
        marker=pl.when(pl.col("is_marker")).then(pl.col("seq")),
    )
    frames = frames.join(holder_info, on="holder", how="left")
    orphans = int(frames["owner"].null_count())
    by_owner = (
        frames.filter(pl.col("owner").is_not_null())
        .group_by("owner", maintain_order=True)
        .agg(stack=pl.col("sym"))
        .rename({"owner": "seq"})
    )
    by_marker = (
        frames.filter(pl.col("marker").is_not_null())
        .group_by("marker", maintain_order=True)
        .agg(mstack=pl.col("sym"))
        .rename({"marker": "seq"})
    )
    ev = ev.join(by_owner, on="seq", how="left").join(by_marker, on="seq", how="left")
    ev = ev.with_columns(stack=pl.coalesce(pl.col("mstack"), pl.col("stack"))).drop("mstack")
    return ev, orphans


def parse_block(block: bytes, first_line: int) -> BlockResult:
    """Parse complete text lines; ``first_line`` is the 1-based number of the first."""
    lines = (
        read_lines(block)
        .with_row_index("seq", offset=first_line)
        .with_columns(pl.col("seq").cast(pl.Int64))
    )
    df = _split_header(lines)
    ev = _events_frame(df)
    ev, orphans = _attach_stacks(df, ev)
    ev = _args(ev)
    result = BlockResult(events=ev, orphan_frames=orphans, lines=lines.height)
    result.raw_clock_lines = int(ev["raw_clock"].sum()) if ev.height else 0
    result.events = ev.select(EVENT_COLUMNS)

    other = df.filter(~pl.col("is_event") & ~pl.col("is_frame")).select("seq", "line")
    other = other.filter(pl.col("line").is_not_null() & (pl.col("line").str.strip_chars() != ""))
    if other.height:
        lost = other.with_columns(m=pl.col("line").str.extract_groups(_LOST))
        is_lost = pl.col("line").str.contains(_LOST)
        for seq, m in lost.filter(is_lost).select("seq", "m").iter_rows():
            count = m["2"] or m["3"]
            result.lost.append((int(m["1"]), None, int(count) if count else None, int(seq)))
        rest = other.filter(~is_lost)
        is_comment = pl.col("line").str.starts_with("#") | pl.col("line").str.contains(
            r"^(?:cpus=\d+|version\s*=\s*\d+|CPU \d+ is empty|\s*trace-cmd:)"
        )
        result.comments = [(int(s), str(t)) for s, t in rest.filter(is_comment).iter_rows()]
        bad = rest.filter(~is_comment)
        result.unparsed = bad.height
        if bad.height:
            s, t = bad.row(0)
            result.first_unparsed = (int(s), str(t))
    return result


__all__ = ["EVENT_COLUMNS", "STACK_EVENT", "BlockResult", "parse_block", "read_lines"]
