"""How one value is written in the human-readable reports (terminal table, markdown).

Counts get thousands separators; identifiers do not: a tgid, pid, CPU number,
scan pass or timestamp is a name, and ``7,550`` or ``985,966,226,000`` reads as
a quantity. Sizes are in binary units, IPI callbacks by their kernel symbol.
"""

from __future__ import annotations

import re
from typing import Any

# a column holding identifiers, not quantities (query columns: tgid, cpu, start_ts, page_hva, ...)
_ID_COLUMN = re.compile(r"(^|_)(tgid|pid|tid|cpu|ts|id|hva|pass|timestamp)(_|$)")

BASIS_LETTER = {"observed": "o", "derived": "d", "assumed": "a"}
BASIS_KEY = "o observed, d derived, a assumed; (+x%) or (xN) change against baseline"


def is_id_column(name: str) -> bool:
    """Does a column of this name hold identifiers (no thousands separators)?"""
    return bool(_ID_COLUMN.search(name.lower()))


def count(v: Any) -> str:
    """A count: ``1,234``; other values as they are."""
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def cell(v: Any, column: str) -> str:
    """A value of the column ``column``: identifiers plain, counts with separators."""
    if v is None:
        return ""
    return str(v) if is_id_column(column) else count(v)


def plural(n: int, noun: str) -> str:
    """``1 CPU``, ``2 CPUs``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


_BINARY_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(n: float) -> str:
    """A size in binary units with one decimal: ``512.0 MiB``, ``1.0 TiB``; below 1 KiB ``0 B``."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    value = float(n)
    for unit in _BINARY_UNITS:
        value /= 1024
        if abs(value) < 1024 or unit == _BINARY_UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def mib(n: float) -> str:
    """Bytes as MiB, for a column whose header names the unit."""
    return f"{n / (1 << 20):,.1f}"


def callback_label(callback: str) -> str:
    """An IPI callback as a person reads it.

    ``0x0`` (NULL) is the reschedule IPI: ``smp_send_reschedule()`` traces
    ``ipi_send_cpu`` with a NULL callback because ``scheduler_ipi()`` is inline
    (include/linux/smp.h, since 6.4 where the ipi_send_cpu event was added).
    An address the trace could not resolve to a symbol, or none, is unknown.
    """
    text = callback.strip()
    if re.fullmatch(r"(0x)?0+", text):
        return "scheduler_ipi (reschedule, NULL callback)"
    if text in ("", "?"):
        return "unknown"
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return f"unknown ({text})"
    return text


def change(value: float, base: float | None) -> str:
    """`` (+12%)``, `` (x9,362)`` or `` (new)`` against the baseline; empty without one."""
    if base is None:
        return ""
    if base and value / base >= 10:
        return f" (x{value / base:,.0f})"
    if base:
        return f" ({(value - base) / base:+.0%})"
    return " (new)" if value else ""


def cost(v: float) -> str:
    """The mmtests AutoNUMA cost: one decimal, two significant digits below 1."""
    if v == 0:
        return "0"
    return f"{v:,.1f}" if abs(v) >= 1 else f"{v:.2g}"


__all__ = [
    "BASIS_KEY",
    "BASIS_LETTER",
    "callback_label",
    "cell",
    "change",
    "cost",
    "count",
    "human_bytes",
    "is_id_column",
    "mib",
    "plural",
]
