"""Reader for ftrace text: tracefs ``trace``/``trace_pipe``, ``trace-cmd report``, ``perf script``.

The file is streamed in blocks of whole lines (cut so a stack trace never
straddles two blocks) and each block is parsed by the vectorized
:func:`tracereplay.formats.ftrace_lines.parse_block`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ClassVar

import pyarrow as pa

from tracereplay.errors import TraceFormatError
from tracereplay.formats.compression import iter_blocks
from tracereplay.formats.ftrace_lines import BlockResult, parse_block
from tracereplay.readers.base import LostEvents, TraceMeta

BLOCK_SIZE = 16 << 20
_WORKERS = 2
_IN_FLIGHT = 3

# One ftrace event line, in any of the three layouts (used on a few lines only).
_EVENT_LINE = re.compile(
    rb"^\s*\S.*?[-\s]\d+(?:/\d+)?\s+(?:\(\s*[-\d]+\)\s+)?\[\s*\d+\]\s+(?:\S+\s+)?\d+(?:\.\d+)?:\s"
)
_FRAME_LINE = re.compile(rb"^\s*=>\s|^\s+[0-9a-f]{8,16}\s+\S")
_MARKER = re.compile(rb": (?:<stack trace>|kernel_stack:)")
_HEADER = re.compile(rb"^# tracer: |^cpus=\d+|^version = \d+")


class FtraceTextReader:
    """Text traces; see the module docstring for the layouts."""

    format_name: ClassVar[str] = "ftrace-text"

    def __init__(self, path: str, *, block_size: int = BLOCK_SIZE) -> None:
        self.path = path
        self.meta = TraceMeta(path=path, format=self.format_name)
        self._block_size = block_size

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if b"\x00" in head[:4096]:
            return False
        lines = head.split(b"\n")[:200]
        if any(_HEADER.match(line) for line in lines[:5]):
            return True
        return any(_EVENT_LINE.match(line) for line in lines[:-1] or lines)

    def _blocks(self) -> Iterator[tuple[bytes, int]]:
        """Whole-line blocks and the 1-based number of their first line."""
        carry = b""
        line_no = 1
        for chunk in iter_blocks(self.path, self._block_size):
            data = carry + chunk
            cut = _safe_cut(data)
            if cut <= 0:
                carry = data
                continue
            block, carry = data[:cut], data[cut:]
            yield block, line_no
            line_no += block.count(b"\n")
        if carry:
            yield carry, line_no

    def _parsed_blocks(self) -> Iterator[BlockResult]:
        """Parse blocks on two threads (the scanners release the GIL), in order.

        At most ``_IN_FLIGHT`` blocks are read ahead, which bounds memory.
        """
        with ThreadPoolExecutor(
            max_workers=_WORKERS, thread_name_prefix="tracereplay-parse"
        ) as pool:
            pending: deque[Future[BlockResult]] = deque()
            for block, first_line in self._blocks():
                pending.append(pool.submit(_parse, block, first_line))
                if len(pending) >= _IN_FLIGHT:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def batches(self) -> Iterator[pa.RecordBatch]:
        meta = self.meta
        unparsed = 0
        first_bad: tuple[int, str] | None = None
        orphans = 0
        raw_clock = 0
        last_line = 0
        bad_utf8_line: int | None = None
        bad_utf8 = 0
        for result in self._parsed_blocks():
            last_line = result.first_line + result.lines - 1
            self._absorb(result)
            unparsed += result.unparsed
            if first_bad is None and result.first_unparsed is not None:
                first_bad = result.first_unparsed
            orphans += result.orphan_frames
            raw_clock += result.raw_clock_lines
            if result.bad_utf8:
                bad_utf8 += result.bad_utf8[0]
                bad_utf8_line = bad_utf8_line or result.bad_utf8[1]
            if result.events.num_rows:
                meta.event_count += result.events.num_rows
                yield from result.events.to_batches()
        if meta.event_count == 0:
            if first_bad is not None:
                line, text = first_bad
                raise TraceFormatError(
                    self.path, f"not an ftrace text line: {text[:80]!r}", line=line
                )
            raise TraceFormatError(self.path, "no trace events found (empty trace)")
        if first_bad is not None:
            line, text = first_bad
            what = "truncated last line" if unparsed == 1 and line == last_line else "line"
            meta.warn(
                f"{self.path}:{line}: {unparsed} line(s) not understood and skipped "
                f"(first, a {what}: {text[:80]!r})",
                partial=True,
            )
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

    def _absorb(self, result: BlockResult) -> None:
        meta = self.meta
        for cpu, ts, count, seq in result.lost:
            meta.lost.append(LostEvents(cpu=cpu, ts=ts, count=count, seq=seq))
        for _line, text in result.comments:
            _read_comment(meta, text)


def _parse(block: bytes, first_line: int) -> BlockResult:
    """parse_block, after replacing invalid UTF-8 so every stored string is valid."""
    bad = None
    if not block.isascii():
        bad = _invalid_utf8(block)
        if bad is not None:
            block = block.decode("utf-8", "replace").encode()
    result = parse_block(block, first_line)
    result.first_line = first_line
    if bad is not None:
        result.bad_utf8 = (bad[0], first_line + bad[1])
    return result


_CPUS = re.compile(r"#P:(\d+)|^cpus=(\d+)")
_TRACER = re.compile(r"^# tracer: (\S+)")


def _read_comment(meta: TraceMeta, text: str) -> None:
    m = _CPUS.search(text)
    if m:
        meta.cpus = int(m.group(1) or m.group(2))
        return
    m = _TRACER.match(text)
    if m:
        meta.recorder_options["tracer"] = m.group(1)
        meta.recorder_options.setdefault("layout", "tracefs")
    elif text.startswith("cpus="):
        meta.recorder_options.setdefault("layout", "trace-cmd report")
    if "TGID" in text and "TASK-PID" in text:
        meta.recorder_options["record-tgid"] = True
    if "irqs-off" in text:
        meta.recorder_options["irq-info"] = True


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
