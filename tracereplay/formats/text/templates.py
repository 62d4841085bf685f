"""Print-format templates of the known events, compiled to the tables the text args loop reads.

Each event of :data:`~tracereplay.formats.common.known_events.TEXT_EVENTS` has
templates (``"pages:{pages} reason:{_reason_name} ({reason})"``) tried in order;
a template is a prefix, then per field the literal that ends it. Output fields
(*slots*) are the event's fields in order, each with its key literal and the
:class:`~tracereplay.formats.common.args_json.Op` its value is written with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from tracereplay.formats.common.args_json import Op, json_key
from tracereplay.formats.common.known_events import (
    SYM,
    TEXT_EVENTS,
    XL,
    B,
    EventFormat,
    I,
    S,
    U,
    X,
)

__all__ = [
    "CLOSED_EVENTS",
    "EV_GENERIC",
    "EV_SYSCALL_ENTER",
    "EV_SYSCALL_EXIT",
    "MAX_SLOTS",
    "Templates",
    "compile_templates",
    "parse_template",
]

I64 = npt.NDArray[np.int64]

# printed radix of a field
R_DEC, R_HEX, R_HEX0X = 0, 1, 2
# event ids of rows without a template (>= 0: an index into the templates' events)
EV_GENERIC, EV_SYSCALL_ENTER, EV_SYSCALL_EXIT = -1, -2, -3
# most output fields of one template (build_args keeps per-slot scratch of twice this)
MAX_SLOTS = 32

# how each field kind of the event table is written
_OPS = {U: Op.UINT, I: Op.INT, X: Op.HEX, S: Op.STR, SYM: Op.SYM, B: Op.BOOL, XL: Op.HEXLIST}
_RADIX = {None: R_DEC, "": R_DEC, "x": R_HEX, "#x": R_HEX0X}
_FIELD = re.compile(r"\{(\w+)(?::(#?x))?\}")


class EventTemplates(NamedTuple):
    """Per event: its templates ``first_tmpl + [0, n_tmpl)``, its slots
    ``first_slot + [0, n_slots)``, and the most bytes its keys and values add to a row
    beyond the payload."""

    first_tmpl: I64
    n_tmpl: I64
    first_slot: I64
    n_slots: I64
    bound: I64


class Slots(NamedTuple):
    """Per output field: its key literal (``"key":``) and the op of its value."""

    key_off: I64
    key_len: I64
    op: I64


class TemplateParts(NamedTuple):
    """Per template: its prefix literal and its fields ``first_field + [0, n_fields)``."""

    prefix_off: I64
    prefix_len: I64
    first_field: I64
    n_fields: I64


class TemplateFields(NamedTuple):
    """Per template field: its slot (-1: not kept), printed radix (R_*), and the literal
    that ends it (empty: the value runs to the end of the payload)."""

    slot: I64
    radix: I64
    sep_off: I64
    sep_len: I64


class Templates(NamedTuple):
    """Everything :func:`tracereplay.formats.text.args.build_args` reads; every literal
    (prefixes, separators, keys) is a range of ``lit``."""

    lit: npt.NDArray[np.uint8]
    events: EventTemplates
    slots: Slots
    templates: TemplateParts
    fields: TemplateFields


@cache
def parse_template(template: str) -> tuple[str, tuple[tuple[str, str | None, str], ...]]:
    """``"a={a} b={b}"`` -> (prefix ``"a="``, ((``"a"``, None, ``" b="``), (``"b"``, None, ``""``)))."""
    pieces = _FIELD.split(template)
    # split() alternates literal, name, hexflag, literal, name, hexflag, ..., literal
    prefix = pieces[0]
    fields = []
    for k in range(1, len(pieces), 3):
        fields.append((pieces[k], pieces[k + 1], pieces[k + 2]))
    return prefix, tuple(fields)


def _columns(rows: Sequence[tuple[int, ...]], width: int) -> list[I64]:
    table = np.array(rows, np.int64).reshape(-1, width)
    return [np.ascontiguousarray(c) for c in table.T]


@cache
def compile_templates() -> tuple[Templates, dict[str, int]]:
    """(the tables, event name -> its index in them)."""
    lit = bytearray()

    def add(text: str) -> tuple[int, int]:
        data = text.encode()
        off = len(lit)
        lit.extend(data)
        return off, len(data)

    index: dict[str, int] = {}
    events: list[tuple[int, int, int, int, int]] = []
    slots: list[tuple[int, int, int]] = []
    tmpl: list[tuple[int, int, int, int]] = []
    fields: list[tuple[int, int, int, int]] = []
    for e, (name, spec) in enumerate(TEXT_EVENTS.items()):
        index[name] = e
        order = list(spec.fields)
        if len(order) > MAX_SLOTS:
            raise ValueError(f"{name}: more than {MAX_SLOTS} fields")
        first_slot = len(slots)
        bound = 0
        for field in order:
            off, ln = add(json_key(field))
            slots.append((off, ln, int(_OPS[spec.fields[field]])))
            bound += 34 + ln  # the value (a number, or escaped text beyond the payload's 6x)
        events.append((len(tmpl), len(spec.templates), first_slot, len(order), bound))
        for template in spec.templates:
            prefix, parts = parse_template(template)
            p_off, p_len = add(prefix)
            tmpl.append((p_off, p_len, len(fields), len(parts)))
            for field, radix, after in parts:
                slot = order.index(field) if field in spec.fields else -1
                a_off, a_len = add(after)
                fields.append((slot, _RADIX[radix], a_off, a_len))
    tables = Templates(
        np.frombuffer(bytes(lit) or b"\0", np.uint8),
        EventTemplates(*_columns(events, 5)),
        Slots(*_columns(slots, 3)),
        TemplateParts(*_columns(tmpl, 4)),
        TemplateFields(*_columns(fields, 4)),
    )
    return tables, index


def _closed(spec: EventFormat) -> bool:
    """Every template ends with a literal ending in ")": a line that matches is complete."""
    for template in spec.templates:
        _prefix, parts = parse_template(template)
        if not parts or not parts[-1][2].endswith(")"):
            return False
    return True


# events whose text line provably ends where its format does (see the text reader)
CLOSED_EVENTS: frozenset[str] = frozenset(n for n, f in TEXT_EVENTS.items() if _closed(f))
