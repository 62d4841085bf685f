"""Sizes as people write them: ``64M``, ``1.5GiB``, ``512 MB``, ``0x1000``, ``4096``.

The one size parser of the command line (``--guest-ram``, ``lab --mem``), the
scenario files and the lab workloads.
"""

from __future__ import annotations

import math

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes in ``text``: a number (decimal, ``0x`` hex or a decimal fraction), then
    optionally K, M, G or T (powers of 1024), then optionally B or iB.

    >>> parse_size("64M"), parse_size("2k"), parse_size("0x1000"), parse_size(4096)
    (67108864, 2048, 4096, 4096)
    >>> parse_size("1.5GiB"), parse_size("512 MB"), parse_size("100B")
    (1610612736, 536870912, 100)

    Raises ValueError for anything else.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a size")
    t = text.strip().lower().replace(" ", "")
    for suffix in ("ib", "b"):
        head = t[: -len(suffix)]
        if t.endswith(suffix) and head and (head[-1] in _UNITS or head.isdigit()):
            t = head
            break
    mult = 1
    if t and t[-1] in _UNITS:
        mult, t = _UNITS[t[-1]], t[:-1]
    try:
        return int(t, 0) * mult
    except ValueError:
        value = float(t)  # a ValueError names the text
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a size")
    return int(value * mult)


__all__ = ["parse_size"]
