"""Reading back args JSON objects whose values are all unsigned integers, byte-exactly.

Every reader writes an event's ``args`` with the same writer (:mod:`.args_json`):
keys in the format file's order, no spaces, numbers in decimal without leading
zeros. For an event whose fields are all unsigned integers (``page_fault_user``:
``{"address":N,"ip":N,"error_code":N}``), the object is therefore fully given by
its numbers, and :func:`parse_uint_objects` recovers them, accepting a row only
when writing the numbers back would give the same bytes. The store uses it to
keep such events as numbers only and render their JSON when queried
(:mod:`tracereplay.store.split`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from numba import njit

from tracereplay.formats.common.jit import int64, readonly

__all__ = ["UintObject", "parse_uint_objects"]

U64 = npt.NDArray[np.uint64]
# 2^64 - 1 has 20 digits; a 20-digit number above it does not fit
_MAX_DIGITS = 20
_U64_MAX_DIV10 = np.uint64(0xFFFFFFFFFFFFFFFF) // np.uint64(10)


class UintObject:
    """The literal pieces of ``{"k1":N,"k2":N,...}``: ``{"k1":``, ``,"k2":``, ..., ``}``."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        pieces = [("{" if i == 0 else ",") + f'"{k}":' for i, k in enumerate(self.keys)] + ["}"]
        raw = [p.encode() for p in pieces]
        self.data = np.frombuffer(b"".join(raw), np.uint8)
        self.offsets = np.zeros(len(raw) + 1, np.int64)
        self.offsets[1:] = np.cumsum([len(r) for r in raw])

    def parse(
        self,
        offsets: npt.NDArray[np.int64],
        data: npt.NDArray[np.uint8],
        rows: npt.NDArray[np.int64],
    ) -> tuple[U64, npt.NDArray[np.bool_]]:
        """(values[key, i], ok[i]) of the strings ``rows`` of a string column given by
        its Arrow ``offsets`` and ``data``; ``ok`` false where the row is not exactly
        this object (its values are then undefined)."""
        values = np.empty((len(self.keys), len(rows)), np.uint64)
        ok = np.empty(len(rows), np.bool_)
        parse_uint_objects(
            readonly(int64(offsets)),
            readonly(data),
            int64(rows),
            self.offsets,
            readonly(self.data),
            values,
            ok,
        )
        return values, ok


@njit(cache=True, nogil=True)
def parse_uint_objects(
    offsets: np.ndarray,
    data: np.ndarray,
    rows: np.ndarray,
    piece_off: np.ndarray,
    pieces: np.ndarray,
    values: np.ndarray,
    ok: np.ndarray,
) -> None:
    """For each row ``rows[i]`` (a string ``data[offsets[r]:offsets[r+1]]``): ``ok[i]``
    when it is exactly pieces[0] N0 pieces[1] N1 ... pieces[k], each N a canonical
    unsigned decimal (no sign, no leading zero, fits in 64 bits), ``values[:, i]`` the Ns.

    Bounds are checked before every read or write: any input is safe.
    """
    nkeys = piece_off.shape[0] - 2
    n = rows.shape[0]
    if values.shape[0] < nkeys or values.shape[1] < n or ok.shape[0] < n:
        raise ValueError("parse_uint_objects: output arrays too small")
    if piece_off.shape[0] < 2 or piece_off[piece_off.shape[0] - 1] > pieces.shape[0]:
        raise ValueError("parse_uint_objects: pieces outside their buffer")
    nstr = offsets.shape[0] - 1
    for i in range(n):
        ok[i] = False
        r = rows[i]
        if r < 0 or r >= nstr:
            continue
        p = offsets[r]
        end = offsets[r + 1]
        if p < 0 or end > data.shape[0] or p > end:
            continue
        good = True
        for k in range(nkeys + 1):
            s = piece_off[k]
            ln = piece_off[k + 1] - s
            if end - p < ln:
                good = False
                break
            for t in range(ln):
                if data[p + t] != pieces[s + t]:
                    good = False
                    break
            if not good:
                break
            p += ln
            if k == nkeys:
                break
            # a canonical unsigned decimal: no sign, no leading zero, at most 2^64 - 1
            v = np.uint64(0)
            first = p
            while p < end:
                c = data[p]
                if c < 48 or c > 57:
                    break
                d = np.uint64(c - 48)
                if p - first >= _MAX_DIGITS - 1 and (
                    p - first >= _MAX_DIGITS
                    or v > _U64_MAX_DIV10
                    or (v == _U64_MAX_DIV10 and d > np.uint64(5))
                ):
                    good = False
                    break
                v = v * np.uint64(10) + d
                p += 1
            digits = p - first
            if not good or digits == 0 or (digits > 1 and data[first] == 48):
                good = False
                break
            values[k, i] = v
        ok[i] = good and p == end
