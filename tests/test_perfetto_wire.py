"""protowire: vectorized varints, run finding and lock-step walking agree with the scalar walker."""

from __future__ import annotations

import numpy as np
import pytest

from tracereplay.formats.perfetto.protowire import (
    WireError,
    as_array,
    encode_varints,
    find_run,
    iter_fields,
    len_field,
    packed_varints,
    read_varint,
    varint_bytes,
    varint_field,
    varints_at,
    walk_messages,
)


def test_varints_roundtrip() -> None:
    rng = np.random.default_rng(1)
    values = [
        0,
        1,
        127,
        128,
        300,
        (1 << 63),
        (1 << 64) - 1,
        *rng.integers(0, 1 << 62, 200).tolist(),
    ]
    blob = b"".join(varint_bytes(v) for v in values)
    starts, pos = [], 0
    for _ in values:
        starts.append(pos)
        pos = read_varint(blob, pos, len(blob))[1]
    got, lengths = varints_at(as_array(blob), np.array(starts, dtype=np.int64))
    assert got.tolist() == values
    assert packed_varints(blob).tolist() == values
    mat, ln = encode_varints(np.array(values, dtype=np.uint64))
    assert b"".join(mat[i, : ln[i]].tobytes() for i in range(len(values))) == blob
    assert lengths.tolist() == ln.tolist()


def test_find_run_ignores_stray_tag_bytes() -> None:
    # payloads full of 0x12 bytes (the run's own tag) must not confuse the chain
    entries = [bytes([0x12] * (i % 5) + [0x08, i % 128]) for i in range(300)]
    msg = varint_field(1, 3) + b"".join(len_field(2, e) for e in entries) + varint_field(3, 1)
    buf = as_array(msg)
    start = len(varint_field(1, 3))
    offs, lens, after = find_run(buf, start, len(msg), 0x12)
    assert [msg[o : o + n] for o, n in zip(offs.tolist(), lens.tolist(), strict=True)] == entries
    assert next(iter(iter_fields(msg, after)))[:3] == (3, 0, 1)


def test_find_run_truncated() -> None:
    msg = len_field(2, b"\x08\x01") + b"\x12\x40\x08"
    with pytest.raises(WireError):
        find_run(as_array(msg), 0, len(msg), 0x12)


def test_walk_messages_matches_scalar() -> None:
    msgs = [
        varint_field(1, 5) + len_field(3, b"abc") + varint_field(2, 1 << 40),
        b"",
        varint_field(7, 1),
    ]
    blob = b"".join(msgs)
    starts = np.cumsum([0] + [len(m) for m in msgs[:-1]]).astype(np.int64)
    ends = starts + np.array([len(m) for m in msgs], dtype=np.int64)
    f = walk_messages(as_array(blob), starts, ends)
    got = sorted(zip(f.msg.tolist(), f.field.tolist(), f.value.tolist(), strict=True))
    assert got == [(0, 1, 5), (0, 2, 1 << 40), (0, 3, 3), (2, 7, 1)]


@pytest.mark.parametrize(
    "bad",
    [
        b"\x0b\x01",
        b"\x0a\x05ab",
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        b"\x0a\xff\xff\xff\xff\x0f",
    ],
)
def test_walk_messages_rejects(bad: bytes) -> None:
    with pytest.raises(WireError):
        walk_messages(as_array(bad), np.array([0]), np.array([len(bad)]))
    with pytest.raises(WireError):
        list(iter_fields(bad))


def test_packed_truncated() -> None:
    with pytest.raises(WireError):
        packed_varints(b"\x01\x80")


def test_compiled_walks_match_scalar() -> None:
    from tracereplay.formats.perfetto import walk as pf

    rng = np.random.default_rng(7)
    msg = b"".join(
        varint_field(int(f), int(v)) if k % 3 else len_field(int(f), bytes(int(v) % 40))
        for k, (f, v) in enumerate(
            zip(rng.integers(1, 5000, 300), rng.integers(0, 1 << 62, 300), strict=True)
        )
    )
    fno, wire, val, pos, at, code, _ = pf.bundle_fields(as_array(msg), 0, len(msg))
    assert at == -1 and code == pf.E_NONE
    got = list(zip(fno.tolist(), wire.tolist(), val.tolist(), pos.tolist(), strict=True))
    assert got == list(iter_fields(msg))
    # events: timestamp, pid, one payload; and the errors the vectorized walker reports
    ev = varint_field(1, 123) + varint_field(2, (1 << 64) - 5) + len_field(70000, b"\x08\x01")
    ts, pid, ok, et, so, sl, at, _, _ = pf.walk_events(
        as_array(ev), np.array([0]), np.array([len(ev)]), 64
    )
    assert (ts[0], pid[0], ok[0], et[0], so[0], sl[0]) == (123, -5, True, 70000, len(ev) - 2, 2)
    for bad in (b"\x0b\x01", b"\x0a\x05ab", b"\x08" + b"\xff" * 10 + b"\x01"):
        at, code = pf.walk_events(as_array(bad), np.array([0]), np.array([len(bad)]), 64)[6:8]
        assert at == 0 and code != pf.E_NONE
    keys = np.array([5, 3, 5, 9, 3, 3], dtype=np.int64)
    uniq, inv = pf.sorted_codes(keys)
    assert uniq.tolist() == [3, 5, 9] and uniq[inv].tolist() == keys.tolist()


def test_json_text_matches_compiled_strings() -> None:
    import json

    from tracereplay.formats.common.args_json import json_str
    from tracereplay.formats.common.jsonbuf import put_text

    samples = [b"plain", b'q"b\\s', b"\t\n\r\x00\x1f\x7f", "é€😀".encode(), b"bad \xff\xc3("]
    out = np.zeros(256, dtype=np.uint8)
    for raw in samples:
        buf = as_array(raw)
        n = put_text(out, 0, buf, 0, len(raw))
        text = raw.decode("utf-8", "replace")
        assert out[:n].tobytes().decode() == json_str(text, short_newlines=True)
        assert json.loads(json_str(text, short_newlines=True)) == text
