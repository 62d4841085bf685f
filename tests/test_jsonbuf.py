"""The compiled JSON writers print what Python prints."""

from __future__ import annotations

import numpy as np
from numba import njit

from tracereplay.formats.common.jsonbuf import put, put_int, put_uint


@njit(cache=False)
def _uints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros(24 * values.shape[0], np.uint8)
    ends = np.zeros(values.shape[0], np.int64)
    o = 0
    for i in range(values.shape[0]):
        o = put_uint(out, o, values[i])
        ends[i] = o
    return out[:o], ends


@njit(cache=False)
def _ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros(24 * values.shape[0], np.uint8)
    ends = np.zeros(values.shape[0], np.int64)
    o = 0
    for i in range(values.shape[0]):
        o = put_int(out, o, values[i])
        ends[i] = o
    return out[:o], ends


def _split(out: np.ndarray, ends: np.ndarray) -> list[str]:
    text = out.tobytes().decode()
    starts = [0, *ends[:-1].tolist()]
    return [text[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]


def _edges() -> list[int]:
    edges = {0, 1, 9, 10, 11, 99, 100, 101, 2**63 - 1, 2**63, 2**64 - 1}
    for k in range(1, 20):
        edges |= {10**k - 1, 10**k, 10**k + 1}
    return sorted(e for e in edges if e < 2**64)


def test_put_uint_matches_str() -> None:
    rng = np.random.default_rng(1)
    values = _edges() + rng.integers(0, 2**64 - 1, 2000, dtype=np.uint64).tolist()
    values += (
        rng.integers(0, 2**64 - 1, 2000, dtype=np.uint64)
        >> rng.integers(0, 64, 2000).astype(np.uint64)
    ).tolist()
    arr = np.array(values, dtype=np.uint64)
    assert _split(*_uints(arr)) == [str(v) for v in values]


def test_put_int_matches_str() -> None:
    rng = np.random.default_rng(2)
    edges = [0, -1, 1, -(2**63), 2**63 - 1, -10, -9, -100]
    values = [*edges, *rng.integers(-(2**63), 2**63 - 1, 2000, dtype=np.int64).tolist()]
    arr = np.array(values, dtype=np.int64)
    assert _split(*_ints(arr)) == [str(v) for v in values]


@njit(cache=False)
def _copy(lit: np.ndarray, off: int, ln: int) -> np.ndarray:
    out = np.zeros(ln + 2, np.uint8)
    o = put(out, 1, lit, off, ln)
    return out[1:o]


def test_put_copies_a_slice() -> None:
    lit = np.frombuffer(b'"address":,"ip":', np.uint8)
    assert _copy(lit, 0, 10).tobytes() == b'"address":'
    assert _copy(lit, 11, 5).tobytes() == b'"ip":'
    assert _copy(lit, 3, 0).tobytes() == b""
