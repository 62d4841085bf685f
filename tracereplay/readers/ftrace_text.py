"""Reader for ftrace text: tracefs ``trace``/``trace_pipe``, ``trace-cmd report``, ``perf script``.

The file is streamed in blocks of whole lines (cut so a stack trace never
straddles two blocks, and at most ``MAX_BLOCK_LINES`` lines each, so memory
stays bounded whatever the line lengths) and each block is parsed by the
vectorized :func:`tracereplay.formats.text.block.parse_block`.

Damaged input (each rule has a regression test in tests/test_text_robustness.py):

* A line longer than :data:`~tracereplay.formats.text.block.MAX_LINE` (1 MiB)
  is an error naming the file and line; blank lines cost nothing.
* A cpu, pid, tgid or timestamp outside its column's range (int32, int64 ns)
  is an error naming the file and line, never a wrapped value; so is a CPU
  count (``#P:``, ``cpus=``) outside 1..2^31-1. A field value that does not
  fit its field (an address wider than 64 bits) is stored as null, flagged
  partial with the first line named.
* The kernel ends every event line with a newline (``trace`` and
  ``trace_pipe`` alike), so a last line without one was cut: it is dropped and
  the result flagged partial, unless it is provably complete, i.e. its format
  ends with a closing literal and that literal is there (``tlb_flush: ... (4)``,
  ``sys_enter: NR 28 (...)``, tracefs' ``sys_madvise(...)``). A ``trace_pipe``
  capture stopped between two events therefore loses nothing, and one stopped
  mid-line is flagged.
* A file cut at a line boundary: tracefs' header ``entries-in-buffer`` counts
  the entries (events and ``<stack trace>`` entries) the file holds; fewer
  read (events plus lines not understood) is flagged partial with the number
  missing. ``perf script --header`` gives the time of the last sample; an
  earlier last event is flagged. ``trace-cmd report`` prints no count (only
  ``cpus=N``), unless ``trace-cmd report --stat`` output comes first: its
  ``read events`` per CPU are then checked; without it a cut at a line boundary
  cannot be detected.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common.compression import TruncatedStream, iter_blocks
from tracereplay.formats.common.jit import announce_compile
from tracereplay.formats.common.known_events import SYSCALL_PREFIXES
from tracereplay.formats.text.block import COMPILED, MAX_LINE, STACK_EVENT, BlockResult, parse_block
from tracereplay.formats.text.line_scan import count_newlines, line_cuts
from tracereplay.formats.text.numbers import TextNumbers, plan
from tracereplay.formats.text.templates import CLOSED_EVENTS
from tracereplay.formats.tracefs.event_decoder import NumberSpec
from tracereplay.tracemeta import LostEvents, TraceMeta

BLOCK_SIZE = 16 << 20
# a cold first read compiles the decoder for about this long (docs/BENCHMARKS.md, First run)
COMPILE_SECONDS = 12
# most non-blank lines per parsed block (about): the scanner keeps ~150 bytes per
# line, so a block of very short lines must not hold millions of them
MAX_BLOCK_LINES = 1 << 18
# lines with no event line among them (stack frames, comments) are read on to
# keep a stack with its event, up to this much; then a block is cut at a newline
_FORCED_CUT = 64 << 20
_WORKERS = 2
_IN_FLIGHT = 3
_INT32_MAX = (1 << 31) - 1

# One ftrace event line, in any of the three layouts (used on a few lines only).
_EVENT_LINE = re.compile(
    rb"^\s*\S.*?[-\s]\d+(?:/\d+)?\s+(?:\(\s*[-\d]+\)\s+)?\[\s*\d+\]\s+(?:\S+\s+)?\d+(?:\.\d+)?:\s"
)
_FRAME_LINE = re.compile(rb"^\s*=>\s|^\s+[0-9a-f]{8,16}\s+\S")
_MARKER = re.compile(rb": (?:<stack trace>|kernel_stack:)")
_HEADER = re.compile(rb"^# tracer: |^cpus=\d+|^version = \d+")


@dataclass
class _Block:
    data: bytes
    first_line: int
    # the last line of the file, which has no newline
    cut: bool = False


class FtraceTextReader:
    """Text traces; see the module docstring for the layouts."""

    format_name: ClassVar[str] = "ftrace-text"

    def __init__(self, path: str, *, block_size: int = BLOCK_SIZE) -> None:
        self.path = path
        self.meta = TraceMeta(path=path, format=self.format_name)
        self._block_size = block_size
        # from the header comments: tracefs entries-in-buffer, perf's last sample (ns)
        self._entries: int | None = None
        self._last_sample: int | None = None
        # trace-cmd report --stat: events read from each CPU's buffer
        self._stat_cpu: int | None = None
        self._read_events: dict[int, int] = {}
        self._cut: TruncatedStream | None = None  # where a compressed stream ends early
        self._read = 0  # bytes of the file on disk read so far (progress)
        self._numbers: TextNumbers | None = None  # numbers_only()

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if b"\x00" in head[:4096]:
            return False
        lines = head.split(b"\n")[:200]
        if any(_HEADER.match(line) for line in lines[:5]):
            return True
        return any(_EVENT_LINE.match(line) for line in lines[:-1] or lines)

    def numbers_only(self, events: dict[str, NumberSpec]) -> None:
        """Give the rows of ``events`` (name -> spec) whose fields are all integers as
        columns instead of JSON, where the line allows (formats/text/numbers.py): they
        come last in their batch. Call before :meth:`batches`."""
        self._numbers = plan(events)

    def bytes_progress(self) -> tuple[int, int] | None:
        """(bytes of the file on disk read so far, its size), for progress bars."""
        try:
            return self._read, os.stat(self.path).st_size
        except OSError:
            return None

    def _stream_cut(self, e: TruncatedStream) -> None:
        # the events decoded before the cut are sound; the cut line itself is
        # dropped and flagged by the unterminated-line rule below
        self._cut = e
        self.meta.warn(str(e), partial=True)

    def _blocks(self) -> Iterator[_Block]:
        """Whole-line blocks with the 1-based number of their first line.

        A last line without a newline comes alone, marked ``cut``.
        """
        carry = b""
        line_no = 1
        def read_to(at: int) -> None:
            self._read = at

        for chunk in iter_blocks(
            self.path, self._block_size, on_truncated=self._stream_cut, on_read=read_to
        ):
            # a place to cut inside the chunk is the place _safe_cut(carry + chunk) finds
            # (it looks back from the end): the block is then copied once, not twice
            cut = _safe_cut(chunk)
            if cut > 0:
                block = b"".join((carry, memoryview(chunk)[:cut]))
                carry = chunk[cut:]
            else:
                data = carry + chunk
                cut = _safe_cut(data)
                if cut <= 0:
                    last_nl = data.rfind(b"\n")
                    self._check_unterminated(data, last_nl, line_no)
                    if last_nl < 0 or len(data) <= max(4 * self._block_size, _FORCED_CUT):
                        carry = data
                        continue
                    cut = last_nl + 1  # no event line to start a block at: cut at a newline
                block, carry = data[:cut], data[cut:]
            lines = _newlines(block)
            yield from self._split(block, line_no, lines)
            line_no += lines
        if carry:
            last_nl = carry.rfind(b"\n")
            self._check_unterminated(carry, last_nl, line_no)
            head, tail = carry[: last_nl + 1], carry[last_nl + 1 :]
            if head:
                lines = _newlines(head)
                yield from self._split(head, line_no, lines)
                line_no += lines
            if tail.strip():
                yield _Block(tail, line_no, cut=True)

    def _check_unterminated(self, data: bytes, last_nl: int, line_no: int) -> None:
        """The bytes after the last newline must not exceed MAX_LINE (bounded memory)."""
        if len(data) - last_nl - 1 > MAX_LINE:
            raise TraceFormatError(
                self.path,
                f"line longer than {MAX_LINE} bytes (no newline)",
                line=line_no + data.count(b"\n", 0, last_nl + 1),
            )

    def _split(self, block: bytes, first_line: int, lines: int) -> Iterator[_Block]:
        """``block`` (of ``lines`` lines) in pieces of about MAX_BLOCK_LINES non-blank lines
        (cut before events)."""
        if lines <= MAX_BLOCK_LINES:
            yield _Block(block, first_line)
            return
        start = 0
        for at in line_cuts(np.frombuffer(block, np.uint8), MAX_BLOCK_LINES).tolist():
            if at <= start or at >= len(block):
                continue
            piece = block[start:at]
            cut = _safe_cut(piece) or len(piece)
            yield _Block(piece[:cut], first_line)
            first_line += _newlines(piece, cut)
            start += cut
        if start < len(block):
            yield _Block(block[start:], first_line)

    def _parsed_blocks(self) -> Iterator[tuple[_Block, BlockResult]]:
        """Parse blocks on two threads (the scanners release the GIL), in order.

        At most ``_IN_FLIGHT`` blocks are read ahead, which bounds memory.
        """
        with ThreadPoolExecutor(
            max_workers=_WORKERS, thread_name_prefix="tracereplay-parse"
        ) as pool:
            pending: deque[tuple[_Block, Future[BlockResult]]] = deque()
            for block in self._blocks():
                # a cut last line keeps its JSON: whether it is complete is read from it
                numbers = None if block.cut else self._numbers
                pending.append(
                    (block, pool.submit(_parse, block.data, block.first_line, numbers))
                )
                if len(pending) >= _IN_FLIGHT:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()

    def batches(self) -> Iterator[pa.RecordBatch]:
        meta = self.meta
        announce_compile("text decoder", (*COMPILED, count_newlines), COMPILE_SECONDS)
        self._entries, self._last_sample, self._stat_cpu = None, None, None
        self._read_events = {}
        unparsed = 0
        first_bad: tuple[int, str] | None = None
        orphans = 0
        raw_clock = 0
        bad_utf8_line: int | None = None
        bad_utf8 = 0
        bad_values = 0
        bad_values_line = 0
        dropped = 0  # line of a cut last line that was dropped
        last_ts: int | None = None
        per_cpu: dict[int, int] = {}
        # each block's events wait for the next block: a stack entry at its start may
        # belong to an event at the end of this one (other CPUs' lines came between)
        held: pa.Table | None = None
        for block, result in self._parsed_blocks():
            self._check(result)
            if block.cut and not self._keep_cut_line(block, result):
                dropped = block.first_line
                continue
            if result.leading_stacks:
                held, unowned = _attach(held, result.leading_stacks)
                orphans += unowned
            if held is not None and held.num_rows:
                yield from held.to_batches()
            held = result.events
            self._absorb(result)
            unparsed += result.unparsed
            if first_bad is None and result.first_unparsed is not None:
                first_bad = result.first_unparsed
            orphans += result.orphan_frames
            raw_clock += result.raw_clock_lines
            if result.bad_utf8:
                bad_utf8 += result.bad_utf8[0]
                bad_utf8_line = bad_utf8_line or result.bad_utf8[1]
            if result.bad_values:
                bad_values += result.bad_values[0]
                bad_values_line = bad_values_line or result.bad_values[1]
            if result.events.num_rows:
                meta.event_count += result.events.num_rows
                top = pc.max(result.events.column("ts")).as_py()
                last_ts = top if last_ts is None else max(last_ts, top)
                if self._read_events:
                    counts = pc.value_counts(result.events.column("cpu")).to_pylist()
                    for c in counts:
                        per_cpu[c["values"]] = per_cpu.get(c["values"], 0) + c["counts"]
        if held is not None and held.num_rows:
            yield from held.to_batches()
        if meta.event_count == 0:
            if self._cut is not None:
                # nothing before the cut: an error, not an empty trace
                raise self._cut
            if dropped:
                raise TraceFormatError(
                    self.path,
                    "truncated last line (no newline) and no event before it",
                    line=dropped,
                )
            if first_bad is not None:
                line, text = first_bad
                raise TraceFormatError(
                    self.path, f"not an ftrace text line: {text[:80]!r}", line=line
                )
            raise TraceFormatError(self.path, "no trace events found (empty trace)")
        if first_bad is not None:
            line, text = first_bad
            meta.warn(
                f"{self.path}:{line}: {unparsed} line(s) not understood and skipped "
                f"(first: {text[:80]!r})",
                partial=True,
            )
        if bad_values:
            meta.warn(
                f"{self.path}:{bad_values_line}: {bad_values} field value(s) not understood or "
                "outside their field's range (e.g. wider than 64 bits) stored as null",
                partial=True,
            )
        self._check_counts(unparsed + (1 if dropped else 0), last_ts, per_cpu)
        if bad_utf8:
            meta.warn(
                f"{self.path}:{bad_utf8_line}: {bad_utf8} invalid UTF-8 byte sequence(s) "
                "replaced with U+FFFD (comm names are kept otherwise intact)"
            )
        if orphans:
            meta.warn(f"{orphans} stack frame line(s) had no event to attach to", partial=True)
        if raw_clock:
            meta.clock = meta.clock or "counter"
            meta.warn(
                f"{raw_clock} timestamps have no fractional part (counter or TSC clock): "
                "kept as raw clock units, not nanoseconds"
            )
        if meta.lost:
            total = sum(lost.count or 0 for lost in meta.lost)
            meta.warn(
                f"the tracer lost events: {len(meta.lost)} gap(s), {total} event(s) counted",
                partial=True,
            )

    def _check(self, result: BlockResult) -> None:
        """Raise the errors a block found (values out of range, an overlong line)."""
        if result.range_error is not None:
            line, what = result.range_error
            raise TraceFormatError(self.path, what, line=line)
        if result.long_line is not None:
            line, length = result.long_line
            raise TraceFormatError(
                self.path, f"line of {length} bytes, longer than {MAX_LINE}", line=line
            )

    def _keep_cut_line(self, block: _Block, result: BlockResult) -> bool:
        """Whether the last line, which has no newline, is provably complete (else warn)."""
        events = result.events
        if events.num_rows == 0 and (result.comments or result.lost):
            return True  # a comment or a lost-events marker: no event data lost
        text = block.data.decode("utf-8", "replace")
        if events.num_rows == 1 and _provably_complete(
            events.column("name")[0].as_py(), events.column("args")[0].as_py(), text
        ):
            return True
        self.meta.warn(
            f"{self.path}:{block.first_line}: truncated last line (no newline: the file was "
            f"cut) dropped: {_tail(text)!r}",
            partial=True,
        )
        return False

    def _check_counts(self, not_events: int, last_ts: int | None, per_cpu: dict[int, int]) -> None:
        """Flag a file cut at a line boundary, from the counts its header gives."""
        meta = self.meta
        short = {c: n - per_cpu.get(c, 0) for c, n in self._read_events.items()}
        short = {c: k for c, k in short.items() if k > 0}
        if short:
            meta.warn(
                f"{self.path}: trace-cmd's buffer statistics count more events than were read: "
                + ", ".join(f"CPU {c}: {k} missing" for c, k in sorted(short.items()))
                + " (the file is cut short?)",
                partial=True,
            )
        read = meta.event_count + not_events
        if self._entries is not None and read < self._entries:
            meta.warn(
                f"{self.path}: the header says {self._entries} entries are in the buffer, "
                f"{read} were read: {self._entries - read} missing (the file is cut short?)",
                partial=True,
            )
        if self._last_sample is not None and last_ts is not None and last_ts < self._last_sample:
            meta.warn(
                f"{self.path}: the header gives the last sample at "
                f"{self._last_sample / 1e9:.6f} s, the last event read is at "
                f"{last_ts / 1e9:.6f} s: the end is missing (the file is cut short, or "
                "perf script was given filters)",
                partial=True,
            )

    def _absorb(self, result: BlockResult) -> None:
        meta = self.meta
        for cpu, ts, count, seq in result.lost:
            meta.lost.append(LostEvents(cpu=cpu, ts=ts, count=count, seq=seq))
        for line, text in result.comments:
            self._read_comment(line, text)

    def _read_comment(self, line: int, text: str) -> None:
        meta = self.meta
        m = _CPUS.search(text)
        if m:
            value = m.group(1) or m.group(2)
            if len(value) > 10 or not 0 < int(value) <= _INT32_MAX:
                raise TraceFormatError(
                    self.path,
                    f"CPU count out of range (1..2^31-1): {text.strip()[:80]!r}",
                    line=line,
                )
            meta.cpus = int(value)
        m = _ENTRIES.match(text)
        if m:
            self._entries = (self._entries or 0) + int(m.group(1))
        m = _STAT_CPU.match(text)
        if m:
            self._stat_cpu = int(m.group(1))
        m = _READ_EVENTS.match(text)
        if m and self._stat_cpu is not None and int(m.group(1)):  # 0: not counted
            self._read_events[self._stat_cpu] = int(m.group(1))
        m = _LAST_SAMPLE.match(text)
        if m:
            self._last_sample = int(m.group(1)) * 1_000_000_000 + int(m.group(2).ljust(9, "0"))
            meta.recorder_options.setdefault("layout", "perf script")
        if m := _TRACER.match(text):
            meta.recorder_options["tracer"] = m.group(1)
            meta.recorder_options.setdefault("layout", "tracefs")
        elif text.startswith("cpus="):
            meta.recorder_options.setdefault("layout", "trace-cmd report")
        if "TGID" in text and "TASK-PID" in text:
            meta.recorder_options["record-tgid"] = True
        if "irqs-off" in text:
            meta.recorder_options["irq-info"] = True


def _parse(block: bytes, first_line: int, numbers: TextNumbers | None) -> BlockResult:
    """parse_block, after replacing invalid UTF-8 so every stored string is valid."""
    bad = None
    if not block.isascii():
        bad = _invalid_utf8(block)
        if bad is not None:
            block = block.decode("utf-8", "replace").encode()
    result = parse_block(block, first_line, numbers)
    result.first_line = first_line
    if bad is not None:
        result.bad_utf8 = (bad[0], first_line + bad[1])
    return result


_CPUS = re.compile(r"#P:(\d+)|^cpus=(\d+)")
_TRACER = re.compile(r"^# tracer: (\S+)")
_ENTRIES = re.compile(r"^# entries-in-buffer/entries-written: (\d{1,18})/")
_STAT_CPU = re.compile(r"^CPU: (\d{1,9})\s*$")
_READ_EVENTS = re.compile(r"^read events: (\d{1,18})\s*$")
# perf script --header
_LAST_SAMPLE = re.compile(r"^# time of last sample : (\d{1,10})\.(\d{1,9})\b")


def _attach(events: pa.Table | None, stacks: dict[int, list[str]]) -> tuple[pa.Table | None, int]:
    """Give each CPU's last ordinary event in ``events`` its stack; (events, frames unowned)."""
    if events is None or events.num_rows == 0:
        return events, sum(len(v) for v in stacks.values())
    import polars as pl  # only traces with stacks get here

    frame = pl.from_arrow(events.select(["seq", "cpu", "name"]))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_row_index("row").filter(pl.col("name") != STACK_EVENT)
    # the last by seq: rows given as numbers come last in a block, out of line order
    last = frame.group_by("cpu").agg(pl.col("row").sort_by("seq").last())
    rows = dict(last.iter_rows())
    unowned = sum(len(v) for c, v in stacks.items() if c not in rows)
    owned = [(rows[c], v) for c, v in stacks.items() if c in rows]
    if not owned:
        return events, unowned
    column = events.column("stack").combine_chunks()
    extra = pa.array([v for _, v in owned], column.type)
    take = np.arange(events.num_rows, dtype=np.int64)
    take[[r for r, _ in owned]] = events.num_rows + np.arange(len(owned))
    stack = pa.concat_arrays([column, extra]).take(pa.array(take))
    return events.set_column(events.schema.get_field_index("stack"), "stack", stack), unowned


def _tail(text: str, keep: int = 60) -> str:
    """The end of a cut line (where it was cut is what tells the user most)."""
    text = text.rstrip("\r\n")
    return text if len(text) <= keep else "..." + text[-keep:]


def _provably_complete(name: str, args: str, text: str) -> bool:
    """A line whose print format ends with a closing literal, and that literal is there."""
    try:
        values = json.loads(args)
    except ValueError:
        return False
    if not isinstance(values, dict) or "_text" in values or None in values.values():
        return False
    if name in CLOSED_EVENTS:
        return True  # the template matched, so its final ")" ends the line
    # tracefs' "sys_madvise(start: 0x.., behavior: 4)" (and a closed user string)
    return name.startswith(SYSCALL_PREFIXES[0]) and text.rstrip().endswith(")")


def _newlines(data: bytes, stop: int = -1) -> int:
    """The newlines in the first ``stop`` bytes of ``data`` (all of it when negative)."""
    return int(count_newlines(np.frombuffer(data, np.uint8, count=stop)))


def _safe_cut(data: bytes) -> int:
    """Offset just after a newline where the next block may start.

    The next block must start with an ordinary event line, so that stack frames
    and ``<stack trace>`` entries stay in the block of the event they belong to.
    Returns 0 when no such place exists (the caller reads on).
    """
    end = data.rfind(b"\n")
    if end < 0:
        return 0
    pos = end  # candidate cut: after data[pos]
    for _ in range(4096):
        prev = data.rfind(b"\n", 0, pos)
        line = data[prev + 1 : pos]
        if (
            _EVENT_LINE.match(line)
            and not _MARKER.search(line)
            and not _FRAME_LINE.match(line)
            and prev >= 0
        ):
            return prev + 1
        if prev < 0:
            return 0
        pos = prev
    # no ordinary event line in the last 4096 lines: cut at the last newline
    return end + 1


def _invalid_utf8(block: bytes) -> tuple[int, int] | None:
    """(invalid sequences, line offset of the first) or None when valid."""
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as e:
        text = block.decode("utf-8", "replace")
        return text.count("\ufffd"), block[: e.start].count(b"\n")
    return None
