"""Parser for tracefs event ``format`` files (``events/<system>/<event>/format``).

Binary readers (trace.dat, perf.data) embed these files verbatim; they give each
event's id, its fields (offset, size, signedness, arrays, ``__data_loc`` /
``__rel_loc`` dynamic fields) and its ``print fmt``. From the print fmt we keep
only what is needed to render fields the way the kernel's text output does:
the ``__print_symbolic`` and ``__print_flags`` tables (e.g. ``tlb_flush``'s
reason, ``sched_skip_vma_numa``'s reason, ``mm_migrate_pages``' mode).

Example::

    >>> fmt = parse_format(open("/sys/kernel/tracing/events/tlb/tlb_flush/format").read())
    >>> fmt.name, [f.name for f in fmt.fields]
    ('tlb_flush', ['reason', 'pages'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["FieldFormat", "FormatError", "TraceEventFormat", "parse_format", "parse_header_page"]


class FormatError(ValueError):
    """A format file that does not parse (the caller names the file and offset)."""


# A record is at most one ring-buffer sub-buffer (1 MiB with buffer_subbuf_size_kb) and a
# perf raw sample at most 64 KiB: a field beyond that is a damaged format file.
MAX_RECORD = 1 << 20


@dataclass(frozen=True)
class FieldFormat:
    """One field of an event record."""

    name: str
    type: str
    offset: int
    size: int
    signed: bool
    # "data_loc" / "rel_loc": a u32 (offset | length << 16) pointing at the payload
    dynamic: str | None = None
    # number of elements of a fixed array (None when not an array)
    array_len: int | None = None

    @property
    def is_string(self) -> bool:
        """``char name[N]`` and ``__data_loc char[]`` fields hold text."""
        base = self.type.replace("__data_loc", "").replace("__rel_loc", "").strip()
        return base.startswith(("char", "const char", "unsigned char")) and (
            self.array_len is not None or self.dynamic is not None or "[" in base
        )

    @property
    def is_cpumask(self) -> bool:
        return self.dynamic is not None and ("cpumask" in self.type or "bitmask" in self.type)

    @property
    def is_pointer(self) -> bool:
        return "*" in self.type and self.dynamic is None

    @property
    def elem_size(self) -> int:
        if self.array_len:
            return self.size // self.array_len
        return self.size


@dataclass
class TraceEventFormat:
    """One event type: id, name, system, fields (common ones apart), print fmt tables."""

    id: int
    name: str
    system: str | None
    fields: list[FieldFormat]
    common: list[FieldFormat]
    print_fmt: str
    # field name -> {value: symbol} from __print_symbolic(REC->field, ...)
    symbolic: dict[str, dict[int, str]] = field(default_factory=dict)
    # field name -> (delimiter, [(mask, name), ...]) from __print_flags(REC->field, ...)
    flags: dict[str, tuple[str, list[tuple[int, str]]]] = field(default_factory=dict)

    def field_named(self, name: str) -> FieldFormat | None:
        for f in self.fields:
            if f.name == name:
                return f
        for f in self.common:
            if f.name == name:
                return f
        return None


_FIELD_LINE = re.compile(
    r"^\s*field:\s*(?P<decl>[^;]*);\s*offset:\s*(?P<off>\d+);\s*size:\s*(?P<size>\d+);"
    r"(?:\s*signed:\s*(?P<signed>\d+);)?"
)
_DECL = re.compile(r"^(?P<type>.*?)\s*(?P<name>\w+)\s*(?:\[(?P<len>[^\]]*)\])?\s*$")
_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->(\w+)\s*,")
_FLAGS = re.compile(r"__print_flags\(\s*(?:\(\w+\s*\)\s*)?REC->(\w+)")
_PAIR = re.compile(r"\{\s*(-?(?:0x[0-9a-fA-F]+|\d+))[uUlL]*\s*,\s*\"((?:[^\"\\]|\\.)*)\"\s*\}")


def _parse_field(line: str) -> FieldFormat | None:
    m = _FIELD_LINE.match(line)
    if not m:
        return None
    decl = m.group("decl").strip()
    dynamic = None
    for key, kind in (("__data_loc", "data_loc"), ("__rel_loc", "rel_loc")):
        if decl.startswith(key):
            dynamic = kind
    d = _DECL.match(decl)
    if not d:
        raise FormatError(f"field declaration not understood: {decl!r}")
    size = int(m.group("size"))
    offset = int(m.group("off"))
    if offset + size > MAX_RECORD:
        raise FormatError(f"field {decl!r} at offset {offset}, size {size}: past any record")
    array_len: int | None = None
    length = d.group("len")
    ftype = d.group("type")
    if length is not None:
        if dynamic is not None:
            ftype += "[]"  # __data_loc char[] name
        elif length.strip().isdigit() and 0 < int(length) <= max(size, 1):
            array_len = int(length)
        else:
            ftype += f"[{length}]"
    signed_text = m.group("signed")
    signed = bool(int(signed_text)) if signed_text is not None else not ftype.startswith("u")
    return FieldFormat(
        name=d.group("name"),
        type=ftype,
        offset=offset,
        size=size,
        signed=signed,
        dynamic=dynamic,
        array_len=array_len,
    )


def _balanced_args(text: str, start: int) -> str:
    """Text of the call whose '(' is before ``start``, up to its matching ')'."""
    depth = 1
    i = start
    in_str = False
    while i < len(text) and depth:
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        i += 1
    return text[start : i - 1]


def _int(text: str) -> int:
    # C literals: "0x1f", "-1", and zero-padded decimals such as "00000100"
    neg = text.startswith("-")
    digits = text.lstrip("-")
    value = int(digits, 16) if digits.lower().startswith("0x") else int(digits, 10)
    return -value if neg else value


def _pairs(body: str) -> list[tuple[int, str]]:
    return [(_int(v), s) for v, s in _PAIR.findall(body)]


def parse_print_tables(
    print_fmt: str,
) -> tuple[dict[str, dict[int, str]], dict[str, tuple[str, list[tuple[int, str]]]]]:
    """The ``__print_symbolic`` and ``__print_flags`` tables of a print fmt, by field."""
    symbolic: dict[str, dict[int, str]] = {}
    flags: dict[str, tuple[str, list[tuple[int, str]]]] = {}
    for m in _SYMBOLIC.finditer(print_fmt):
        body = _balanced_args(print_fmt, m.end())
        symbolic.setdefault(m.group(1), dict(_pairs(body)))
    for m in _FLAGS.finditer(print_fmt):
        body = _balanced_args(print_fmt, m.end())
        delim = re.search(r"\"((?:[^\"\\]|\\.)*)\"", body)
        flags.setdefault(m.group(1), (delim.group(1) if delim else "|", _pairs(body)))
    return symbolic, flags


def parse_format(text: str, system: str | None = None) -> TraceEventFormat:
    """Parse one ``format`` file; raises :class:`FormatError` when it is not one."""
    name = None
    event_id = None
    fields: list[FieldFormat] = []
    common: list[FieldFormat] = []
    print_fmt = ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("name:"):
            name = s[5:].strip()
        elif s.startswith("ID:"):
            try:
                event_id = int(s[3:].strip())
            except ValueError:
                raise FormatError(f"bad ID line {s!r}") from None
        elif s.startswith("field:"):
            f = _parse_field(s)
            if f is None:
                raise FormatError(f"field line not understood: {s[:80]!r}")
            (common if f.name.startswith("common_") else fields).append(f)
        elif s.startswith("print fmt:"):
            print_fmt = "\n".join([s[10:].strip(), *lines[i + 1 :]])
            break
    if name is None or event_id is None:
        raise FormatError("format file without name or ID")
    if not common and not fields:
        raise FormatError(f"format of {name} has no fields")
    symbolic, flags = parse_print_tables(print_fmt)
    return TraceEventFormat(
        id=event_id,
        name=name,
        system=system,
        fields=fields,
        common=common,
        print_fmt=print_fmt,
        symbolic=symbolic,
        flags=flags,
    )


def parse_header_page(text: str) -> tuple[int, int]:
    """(offset of the page data, size of the ``commit`` field) from ``events/header_page``."""
    data_off = 16
    commit_size = 8
    for line in text.splitlines():
        f = _parse_field(line.replace("field: ", "field:"))
        if f is None:
            continue
        if f.name == "commit":
            commit_size = f.size
        elif f.name == "data":
            data_off = f.offset
    # u64 timestamp, then a long (4 or 8 bytes) commit, then the data
    if commit_size not in (4, 8) or not 8 + commit_size <= data_off <= 64:
        raise FormatError(f"header_page with commit size {commit_size}, data at {data_off}")
    return data_off, commit_size
