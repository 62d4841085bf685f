"""Compressed inputs (issue 13): the bounded decompression path of every codec, corrupt and
truncated whole-file streams of the shipped fixtures, and the limits' overrides."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path

import pytest
import zstandard
from conftest import FIXTURES, run_cli

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common import inflate as inf
from tracereplay.formats.common.compression import TruncatedStream, iter_blocks, read_head
from tracereplay.formats.perfetto.protowire import len_field
from tracereplay.readers import open_trace

TEXT = (FIXTURES / "pinned-threads-6.18.txt").read_bytes()
COMPRESS = {
    "gzip": gzip.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "xz": lzma.compress,
    "bzip2": bz2.compress,
}
EXT = {"gzip": "gz", "zstd": "zst", "xz": "xz", "bzip2": "bz2"}
MIB = 1 << 20


def _zeros(codec: str, total: int) -> bytes:
    zeros = b"\0" * MIB
    if codec == "zstd":
        c = zstandard.ZstdCompressor(level=1).compressobj()
        return b"".join([*(c.compress(zeros) for _ in range(total // MIB)), c.flush()])
    z = zlib.compressobj(9, wbits={"gzip": 31, "zlib": 15, "deflate": -15}[codec])
    return b"".join([*(z.compress(zeros) for _ in range(total // MIB)), z.flush()])


# --- the decompression path itself ----------------------------------------------------------


@pytest.mark.parametrize("codec", [*COMPRESS, "zlib", "deflate"])
def test_every_codec_round_trips_in_pieces_and_reports_a_cut(codec):
    pack = COMPRESS.get(codec) or (
        zlib.compress if codec == "zlib" else lambda b: zlib.compress(b, wbits=-15)
    )
    blob = pack(TEXT)
    chunks = [blob[i : i + 4099] for i in range(0, len(blob), 4099)]
    assert b"".join(inf.pieces(codec, chunks, limit=0)) == TEXT
    assert inf.inflate(codec, blob, expected=len(TEXT)) == TEXT
    for cut in (1, len(blob) // 3, len(blob) - 1):
        got = bytearray()
        with pytest.raises(inf.Truncated) as info:
            for piece in inf.pieces(codec, [blob[:cut]], limit=0):
                got += piece
        assert info.value.decoded == len(got) and TEXT.startswith(bytes(got))


@pytest.mark.parametrize("codec", list(COMPRESS))
def test_concatenated_streams_and_zero_padding_are_one_file_garbage_is_not(codec):
    blob = COMPRESS[codec](TEXT[:5000]) + COMPRESS[codec](TEXT[5000:])
    assert b"".join(inf.pieces(codec, [blob + b"\0" * 512], limit=0)) == TEXT
    with pytest.raises(inf.CorruptData, match="after the end"):
        b"".join(inf.pieces(codec, [blob + b"garbage"], limit=0))


def test_stated_size_is_checked_both_ways():
    blob = zlib.compress(TEXT)
    with pytest.raises(inf.CorruptData, match="more than"):
        inf.inflate("zlib", blob, expected=len(TEXT) - 1)
    with pytest.raises(inf.CorruptData, match="decodes to"):
        inf.inflate("zlib", blob, expected=len(TEXT) + 1)
    small = zstandard.ZstdCompressor().compress(TEXT)
    with pytest.raises(inf.CorruptData, match="states"):
        inf.inflate("zstd", small, expected=len(TEXT) + 7)  # frame header says otherwise


@pytest.mark.parametrize("codec", ["zstd", "zlib", "gzip"])
def test_size_and_ratio_limits_and_their_overrides(codec, monkeypatch):
    bomb = _zeros(codec, 64 * MIB)
    with pytest.raises(inf.DecompressionLimit, match=inf.ENV_RATIO) as info:
        b"".join(inf.pieces(codec, [bomb], limit=0))
    assert info.value.kind == "ratio"
    monkeypatch.setenv(inf.ENV_MAX, "8M")
    with pytest.raises(inf.DecompressionLimit, match=inf.ENV_MAX):
        inf.inflate(codec, bomb)
    with pytest.raises(inf.DecompressionLimit, match=inf.ENV_MAX):
        inf.inflate(codec, bomb, expected=64 * MIB)  # refused before decoding
    monkeypatch.setenv(inf.ENV_MAX, "64M")
    monkeypatch.setenv(inf.ENV_RATIO, "0")
    assert len(inf.inflate(codec, bomb, expected=64 * MIB)) == 64 * MIB


@pytest.mark.parametrize("value", ["lots", "-5M"])
def test_a_limit_that_is_not_a_size_is_a_usage_error(value, monkeypatch, tmp_path):
    monkeypatch.setenv(inf.ENV_MAX, value)
    with pytest.raises(inf.LimitSettingError) as info:
        inf.limits()
    assert info.value.exit_code == 2
    gz = tmp_path / "t.txt.gz"
    gz.write_bytes(gzip.compress(TEXT))
    result = run_cli("ingest", str(gz), "-o", str(tmp_path / "t.duckdb"))
    assert result.exit_code == 2 and inf.ENV_MAX in result.stderr


def test_limit_sizes_parse():
    assert inf._size("512M", "X") == 512 * MIB
    assert inf._size("1.5G", "X") == 3 << 29
    assert inf._size("4GiB", "X") == 4 << 30
    assert inf._size("0", "X") == 0


# --- whole-file streams of the fixtures -----------------------------------------------------


def test_corrupt_deflate_in_a_gz_trace_is_a_clean_error(tmp_path):
    """17 of 40 byte flips of the .gz fixture let zlib.error escape read_head."""
    data = (FIXTURES / "kvm-pinned-6.18.txt.gz").read_bytes()
    out = tmp_path / "flip.txt.gz"
    failures = 0
    for k in range(40):
        bad = bytearray(data)
        at = 10 + (k * 7919) % (len(data) - 18)  # inside the deflate stream
        bad[at] ^= 0x5A
        out.write_bytes(bytes(bad))
        try:
            reader = open_trace(str(out))
            for _ in reader.batches():
                pass
        except TraceFormatError as e:
            assert str(out) in str(e)
            failures += 1
    assert failures >= 20  # deflate damage is detected (CRC, codes), not decoded as text


@pytest.mark.parametrize("codec", list(COMPRESS))
@pytest.mark.parametrize("cut", [300, 2000, 5000])
def test_cut_within_the_first_kilobytes_is_not_an_empty_file(tmp_path, codec, cut):
    blob = COMPRESS[codec](TEXT)
    path = tmp_path / f"cut.txt.{EXT[codec]}"
    path.write_bytes(blob[:cut])
    try:
        head = read_head(str(path))
    except TraceFormatError as e:
        assert "cut short" in e.detail and "empty" not in e.detail
        return
    assert head and TEXT.startswith(head)  # what decodes before the cut is returned
    # the events before the cut are a partial result; with none, the cut is the error
    reader = open_trace(str(path))
    try:
        for _ in reader.batches():
            pass
    except TraceFormatError as e:
        assert "cut short" in e.detail and "empty" not in e.detail
        assert reader.meta.event_count == 0
    else:
        assert reader.meta.event_count > 0 and reader.meta.partial
        assert any("cut short" in w for w in reader.meta.warnings)


@pytest.mark.parametrize("codec", list(COMPRESS))
def test_truncated_stream_reports_its_missing_end(tmp_path, codec):
    """A .zst cut at 60 % kept 1 962 of 10 778 events without a word."""
    blob = COMPRESS[codec](TEXT)
    path = tmp_path / f"cut.txt.{EXT[codec]}"
    path.write_bytes(blob[: len(blob) * 6 // 10])
    got = bytearray()
    with pytest.raises(TruncatedStream) as info:
        for block in iter_blocks(str(path), 1 << 16):
            got += block
    assert info.value.decoded == len(got) > 0 and TEXT.startswith(bytes(got))
    seen: list[TruncatedStream] = []
    again = b"".join(iter_blocks(str(path), 1 << 16, on_truncated=seen.append))
    assert again == got and len(seen) == 1
    # through a reader: an error naming the cut, or a partial result that says so
    try:
        reader = open_trace(str(path))
        for _ in reader.batches():
            pass
    except TraceFormatError as e:
        assert str(path) in str(e) and "cut short" in e.detail
    else:
        assert reader.meta.partial and any("cut short" in w for w in reader.meta.warnings)


def test_whole_file_bomb_streams_in_bounded_memory(tmp_path):
    """A Perfetto trace followed by 4 GiB of filler packets in a .zst of ~150 KB: refused by
    the ratio limit while streaming, never held in memory (measured in a child)."""
    from isolated import read_isolated

    trace = tmp_path / "t.perfetto-trace"
    assert run_cli("convert", str(FIXTURES / "pinned-threads-6.18.txt"), "-o", str(trace)).exit_code == 0
    filler = len_field(1, len_field(900, b"\0" * 122))  # a packet of one unknown field
    c = zstandard.ZstdCompressor(level=1).compressobj()
    bomb = tmp_path / "bomb.perfetto-trace.zst"
    with bomb.open("wb") as f:
        f.write(c.compress(trace.read_bytes()))
        block = filler * (MIB // len(filler))
        for _ in range(4096):
            f.write(c.compress(block))
        f.write(c.flush())
    assert bomb.stat().st_size < 1 << 20
    res = read_isolated(str(bomb))
    assert res["peak_rss_mb"] < 1024, res
    assert res.get("exit_code") == 3 and inf.ENV_RATIO in res["error"], res


def _read_all(path: Path) -> int:
    reader = open_trace(str(path))
    return sum(b.num_rows for b in reader.batches())


def test_compressed_fixtures_still_read_whole(tmp_path):
    for codec, pack in COMPRESS.items():
        path = tmp_path / f"whole.txt.{EXT[codec]}"
        path.write_bytes(pack(TEXT))
        assert _read_all(path) == 10_778


@pytest.mark.parametrize(
    "fixture", ["kvm-pinned-6.18.dat", "perf-tlb-pipe-6.18.data", "perf-tlb-callchain-6.18.data"]
)
@pytest.mark.parametrize("codec", ["gz", "zst", "xz"])
def test_compressed_binary_traces_read_like_the_plain_file(tmp_path, fixture, codec):
    """DESIGN §5: compressed inputs are read transparently by every command, binary ones too."""
    import gzip
    import lzma

    import zstandard

    from tracereplay.readers import open_trace

    raw = (FIXTURES / fixture).read_bytes()
    pack = {"gz": gzip.compress, "zst": zstandard.ZstdCompressor().compress, "xz": lzma.compress}
    packed = tmp_path / f"{fixture}.{codec}"
    packed.write_bytes(pack[codec](raw))

    def rows(path: str) -> list[tuple[object, ...]]:
        reader = open_trace(path)
        out = []
        for b in reader.batches():
            t = b.select(["ts", "cpu", "pid", "name", "args"]).to_pylist()
            out += [tuple(r.values()) for r in t]
        return out

    assert rows(str(packed)) == rows(str(FIXTURES / fixture))
