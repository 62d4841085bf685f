"""The ``args`` JSON core of every reader: one opcode table, the value writers, program parts.

Every reader stores an event's fields as one JSON object, keys in a fixed order
per event type. An event type's *program* is a list of ops, one per key: the
key's literal (``"key":``, after the first one ``,"key":``, from a
:class:`KeyTable`) and how its value is written (:class:`Op`). The compiled
writers here (:func:`put_number`, :func:`put_fragment`) and the primitives of
:mod:`.jsonbuf` write the values; each reader has its own loop because values
come from different encodings:

* tracefs records (trace.dat, perf.data; :mod:`..tracefs.record_args`): fields
  at fixed offsets of the raw record, read in place: copying every field to
  slots first would cost a pass over all of them;
* Perfetto (:mod:`..perfetto.args`): protobuf fields come in any order and may
  repeat, so a first pass puts each row's values in slots (the last occurrence
  wins) and the program runs over the slots;
* text (:mod:`..text.args`): values are parsed from the printed payload by the
  print-format templates, and a printed number keeps its printed sign.

Values only Python can render (kernel symbols, ``__print_symbolic`` /
``__print_flags`` names, floats, Perfetto's packed lists) are JSON *fragments*
of a :class:`FragmentTable`, written by the loops with :func:`put_fragment`.
The Python renderers of those values are here too, so every reader names
flags, CPU lists and task states the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

if TYPE_CHECKING:
    import polars as pl

from tracereplay.formats.common.jsonbuf import (
    put,
    put_bool,
    put_hex16,
    put_int,
    put_null,
    put_uint,
)

__all__ = [
    "NUMBER_BYTES",
    "FragmentTable",
    "Fragments",
    "KeyTable",
    "Op",
    "cpulist",
    "json_key",
    "json_str",
    "json_str_expr",
    "prev_state_text",
    "print_flags",
    "put_fragment",
    "put_number",
]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


class Op(IntEnum):
    """How one value is written (one numbering for every reader)."""

    NULL = 0  # null (a field the event lacks)
    UINT = 1  # unsigned decimal
    INT = 2  # signed decimal
    BOOL = 3  # true / false
    QUOTED = 4  # a decimal in quotes (a number the kernel prints as text: %s of an enum)
    PTR = 5  # "%016x" in quotes (%p: the raw pointer)
    FRAGMENT = 6  # a JSON fragment rendered in Python
    STR = 7  # a string: a fixed char array (tracefs), bytes (Perfetto), printed text
    DSTR = 8  # a __data_loc / __rel_loc string (tracefs)
    CPUMASK = 9  # a __data_loc bitmap as the kernel's %*pbl list (tracefs)
    ARR = 10  # a fixed array of integers (tracefs)
    DARR = 11  # a __data_loc array of integers (tracefs)
    ZIGZAG = 12  # a protobuf sint (Perfetto)
    HEX = 13  # an unsigned integer printed in hex without 0x (text)
    SYM = 14  # a %pS code pointer: the symbol name before "+" (text)
    HEXLIST = 15  # ", "-separated hex integers -> a JSON list (text: raw_syscalls args)


# plain ints of the same values: what compiled loops compare against
OP_NULL, OP_UINT, OP_INT, OP_BOOL = int(Op.NULL), int(Op.UINT), int(Op.INT), int(Op.BOOL)
OP_QUOTED, OP_PTR, OP_FRAGMENT, OP_STR = int(Op.QUOTED), int(Op.PTR), int(Op.FRAGMENT), int(Op.STR)
OP_DSTR, OP_CPUMASK, OP_ARR, OP_DARR = int(Op.DSTR), int(Op.CPUMASK), int(Op.ARR), int(Op.DARR)
OP_ZIGZAG, OP_HEX, OP_SYM, OP_HEXLIST = int(Op.ZIGZAG), int(Op.HEX), int(Op.SYM), int(Op.HEXLIST)

# the most bytes put_number writes: a quoted "-9223372036854775808" or 20 digits + quotes
NUMBER_BYTES = 23


class Fragments(NamedTuple):
    """JSON fragments: fragment ``k`` is ``data[offsets[k]:offsets[k + 1]]``; ``longest``
    bounds what a loop sized its output for (a longer fragment is written as null)."""

    offsets: npt.NDArray[np.int64]
    data: npt.NDArray[np.uint8]
    longest: int


@njit(cache=True, inline="always")
def put_number(out: np.ndarray, o: int, op: int, v: np.uint64, signed: bool) -> int:
    """The 64-bit value ``v`` (bit pattern) as ``op`` says; null for a non-numeric op.

    ``signed`` only matters to :attr:`Op.QUOTED` (the field's own signedness).
    At most :data:`NUMBER_BYTES` bytes.
    """
    if op == OP_UINT:
        return put_uint(out, o, v)
    if op == OP_INT:
        return put_int(out, o, np.int64(v))
    if op == OP_BOOL:
        return put_bool(out, o, v != np.uint64(0))
    if op == OP_QUOTED:
        out[o] = 34
        o = put_int(out, o + 1, np.int64(v)) if signed else put_uint(out, o + 1, v)
        out[o] = 34
        return o + 1
    if op == OP_PTR:
        return put_hex16(out, o, v)
    if op == OP_ZIGZAG:
        return put_int(out, o, np.int64(v >> np.uint64(1)) ^ -np.int64(v & np.uint64(1)))
    return put_null(out, o)


@njit(cache=True, inline="always")
def put_fragment(out: np.ndarray, o: int, frags: Fragments, k: int) -> int:
    """Fragment ``k`` (at most ``frags.longest`` bytes), or null when there is no such one."""
    offsets = frags.offsets
    if 0 <= k < offsets.shape[0] - 1:
        s = offsets[k]
        n = offsets[k + 1] - s
        if s >= 0 and 0 <= n <= frags.longest and s + n <= frags.data.shape[0]:
            return put(out, o, frags.data, s, n)
    return put_null(out, o)


# --- building programs (Python) ---------------------------------------------------------


class KeyTable:
    """The key literals of programs in one byte array: ``"key":``, or ``,"key":`` after the
    first key of an object (keys are escaped like values: Perfetto's come from the trace)."""

    def __init__(self) -> None:
        self._lit = bytearray()

    def add(self, key: str, first: bool) -> tuple[int, int]:
        """(offset, length) of the literal of ``key``."""
        data = (("" if first else ",") + json_key(key)).encode()
        at = len(self._lit)
        self._lit += data
        return at, len(data)

    def array(self) -> U8:
        return np.frombuffer(bytes(self._lit) + b"\0", np.uint8)


class FragmentTable:
    """Fragments added in batches; fragment ``k`` keeps its index once added."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.longest = 0

    def __len__(self) -> int:
        return len(self._parts)

    def add(self, fragments: Sequence[bytes]) -> int:
        """Index of the first of ``fragments``."""
        start = len(self._parts)
        self._parts.extend(fragments)
        self.longest = max([self.longest, *map(len, fragments)])
        return start

    def arrays(self) -> Fragments:
        offsets = np.zeros(len(self._parts) + 1, np.int64)
        if self._parts:
            np.cumsum([len(p) for p in self._parts], out=offsets[1:])
        data = np.frombuffer(b"".join(self._parts) + b"\0", np.uint8)
        return Fragments(offsets, data, self.longest)


# --- values rendered in Python ------------------------------------------------------------

_ESCAPES = {c: f"\\u{c:04x}" for c in range(32)}
_ESCAPES.update({9: "\\t", 34: '\\"', 92: "\\\\"})
_ESCAPES_NL = {**_ESCAPES, 10: "\\n", 13: "\\r"}


def json_str(text: str, *, short_newlines: bool = False) -> str:
    """JSON string literal of ``text``, escaped like the compiled writers (:mod:`.jsonbuf`):
    quote, backslash and tab by name, other controls as ``\\u00XX``; newlines by name
    too with ``short_newlines`` (the Perfetto reader's escaping)."""
    return '"' + text.translate(_ESCAPES_NL if short_newlines else _ESCAPES) + '"'


def json_key(key: str) -> str:
    """``"key":`` (escaped like a Perfetto value: names may come from the trace)."""
    return json_str(key, short_newlines=True) + ":"


def json_str_expr(e: pl.Expr, *, short_newlines: bool = True) -> pl.Expr:
    """:func:`json_str` of a polars text column."""
    import polars as pl  # the Perfetto reader's; the others never load polars (0.08 s)

    table = _ESCAPES_NL if short_newlines else _ESCAPES
    out = e.str.replace_all("\\", "\\\\", literal=True)
    for c, esc in table.items():
        if c != 92:
            out = out.str.replace_all(chr(c), esc, literal=True)
    return pl.concat_str([pl.lit('"'), out, pl.lit('"')])


def print_flags(value: int, delim: str, table: Sequence[tuple[int, str]]) -> str:
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


def prev_state_text(value: int, delim: str, table: Sequence[tuple[int, str]]) -> str:
    """sched_switch's ``prev_state`` as the kernel prints it: the flags of the reportable bits
    (``table``), ``R`` for none, and ``+`` when TASK_REPORT_MAX, one above the highest
    reportable bit, is set (preempted; 0x100 since 4.14, commit efb40f588b43)."""
    report = 0
    for mask, _ in table:
        report |= mask
    state = value & report
    text = print_flags(state, delim, table) if state else "R"
    return text + ("+" if value & (report + 1) else "")


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
