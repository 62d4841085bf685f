"""trace.dat built from the recorded fixtures, then damaged as issue 13 describes: every
mutation ends in a clean error naming the file and offset, or a flagged partial result,
and decompression bombs stay under 1 GiB of RSS (measured in a child process)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
import tracedat_craft as tc
import zstandard
from conftest import FIXTURES
from isolated import read_isolated

from tracereplay.errors import TraceFormatError
from tracereplay.formats.common.kallsyms import Symbols
from tracereplay.readers.trace_dat import TraceDatReader

SRC = FIXTURES / "pinned-threads-6.18.dat"
EVENTS = 10_778  # trace-cmd report of the fixture (counts.json)
MIB = 1 << 20


def _read(path: Path) -> TraceDatReader:
    reader = TraceDatReader(str(path))
    for _ in reader.batches():
        pass
    return reader


def _mutated(tmp_path: Path, edit, name: str = "bad.dat", src: bytes | None = None) -> Path:
    data = bytearray(SRC.read_bytes() if src is None else src)
    edit(data)
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


def _error(path: Path) -> TraceFormatError:
    with pytest.raises(TraceFormatError) as info:
        _read(path)
    assert str(path) in str(info.value) and "@ byte" in str(info.value)
    return info.value


@pytest.mark.parametrize("page_size", [0, 1, 0x80000000, 0xFFFFFFFF])
def test_buffer_option_page_size_out_of_range_is_an_error(tmp_path, page_size):
    """page_size 0 raised ZeroDivisionError; 0x80000000 asked numpy for 512 GiB."""
    page_at, _cpus = tc.buffer_layout(SRC.read_bytes())
    bad = _mutated(tmp_path, lambda d: tc.put(d, page_at, "I", page_size))
    assert "page size" in _error(bad).detail


@pytest.mark.parametrize("cpu", [2**31 - 1, 0xFFFFFFFF, 1])
def test_cpu_id_out_of_range_or_repeated_is_an_error(tmp_path, cpu):
    _page_at, cpus = tc.buffer_layout(SRC.read_bytes())
    bad = _mutated(tmp_path, lambda d: tc.put(d, cpus[0].cpu_at, "I", cpu))
    assert "CPU id" in _error(bad).detail


@pytest.mark.parametrize("count", [0, 2**31 - 1, 0xFFFFFFFF])
def test_cpucount_out_of_range_is_an_error(tmp_path, count):
    at = tc.option(SRC.read_bytes(), tc.OPT_CPUCOUNT).at
    bad = _mutated(tmp_path, lambda d: tc.put(d, at, "I", count))
    assert "CPU count" in _error(bad).detail


def test_cpu_data_size_past_the_file_is_flagged(tmp_path):
    """A size of 2^62 was accepted as it was."""
    _page_at, cpus = tc.buffer_layout(SRC.read_bytes())
    bad = _mutated(tmp_path, lambda d: tc.put(d, cpus[1].size_at, "Q", 1 << 62))
    reader = _read(bad)
    assert reader.meta.partial
    assert any("CPU 1" in w and "truncated" in w for w in reader.meta.warnings)
    assert reader.meta.event_count == EVENTS  # the data itself is whole


def test_cpu_data_offset_past_the_end_keeps_the_other_cpu(tmp_path):
    _page_at, cpus = tc.buffer_layout(SRC.read_bytes())
    bad = _mutated(tmp_path, lambda d: tc.put(d, cpus[1].offset_at, "Q", 1 << 40))
    reader = _read(bad)
    assert reader.meta.partial and 0 < reader.meta.event_count < EVENTS


def test_kallsyms_line_wider_than_an_address_is_skipped_and_flagged(tmp_path):
    """A damaged kallsyms section raised OverflowError (address of 17 hex digits).

    Now the line is skipped, every event is still read, and the trace is flagged
    partial with a note naming the damaged symbol table.
    """
    data = SRC.read_bytes()
    opt = tc.option(data, tc.SEC_KALLSYMS)
    body = tc.section_body(data, tc.get(data, opt.at, "Q"))
    size = tc.get(body, 0, "I")
    text = body[4 : 4 + size].replace(b"\n", b"\n1ffffffff81000000 T damaged\n", 1)
    new_body = len(text).to_bytes(4, "little") + text

    def edit(d: bytearray) -> None:
        tc.put(d, opt.at, "Q", tc.append_section(d, tc.SEC_KALLSYMS, new_body, "zstd"))

    reader = _read(_mutated(tmp_path, edit))
    assert reader.meta.event_count == EVENTS and reader.meta.partial
    assert any("kallsyms" in w for w in reader.meta.warnings), reader.meta.warnings
    syms = Symbols.from_kallsyms("1ffffffff81000000 T damaged\nffffffff81000000 T _stext\n")
    assert len(syms) == 1 and syms.damaged == 1


def test_zlib_file_reads_like_the_zstd_one(tmp_path):
    z = tmp_path / "zlib.dat"
    z.write_bytes(tc.to_zlib(SRC.read_bytes()))
    reader = _read(z)
    assert reader.compression == "zlib" and reader.meta.event_count == EVENTS


def _zeros_zstd(total: int) -> bytes:
    c = zstandard.ZstdCompressor(level=1).compressobj()
    zeros = b"\0" * MIB
    return b"".join([*(c.compress(zeros) for _ in range(total // MIB)), c.flush()])


def _zeros_zlib(total: int) -> bytes:
    c = zlib.compressobj(9)
    zeros = b"\0" * MIB
    return b"".join([*(c.compress(zeros) for _ in range(total // MIB)), c.flush()])


@pytest.fixture(scope="module")
def zstd_bomb() -> bytes:
    blob = _zeros_zstd(2 << 30)
    assert len(blob) < 70_000  # the 67 KB chunk expanding to 2 GiB
    return blob


@pytest.fixture(scope="module")
def zlib_bomb() -> bytes:
    blob = _zeros_zlib(1 << 30)
    assert len(blob) < 1_100_000  # 1 MB expanding to 1 GiB
    return blob


def _bomb_cpu0(data: bytes, chunk: bytes, usize: int) -> bytes:
    """CPU 0 starts with the bomb chunk, then its real chunks; CPU 1 untouched."""
    out = bytearray(data)
    _page_at, cpus = tc.buffer_layout(data)
    real = tc.cpu_chunks(data, tc.get(data, cpus[0].offset_at, "Q"))
    off, size = tc.append_cpu_data(out, [(chunk, usize), *real])
    tc.put(out, cpus[0].offset_at, "Q", off)
    tc.put(out, cpus[0].size_at, "Q", size)
    return bytes(out)


@pytest.mark.parametrize("usize", [2 << 30, 65536], ids=["states-2GiB", "states-64KiB"])
def test_zstd_chunk_bomb_is_partial_in_bounded_memory(tmp_path, zstd_bomb, usize):
    bad = tmp_path / "zstd-bomb.dat"
    bad.write_bytes(_bomb_cpu0(SRC.read_bytes(), zstd_bomb, min(usize, 0xFFFFFFFF)))
    res = read_isolated(str(bad))
    assert res["peak_rss_mb"] < 1024, res
    assert res["partial"] and 0 < res["events"] < EVENTS  # CPU 1 is still there
    assert any("CPU 0 chunk 0" in w for w in res["warnings"]), res["warnings"]


@pytest.mark.parametrize("usize", [1 << 30, 65536], ids=["states-1GiB", "states-64KiB"])
def test_zlib_chunk_bomb_is_partial_in_bounded_memory(tmp_path, zlib_bomb, usize):
    bad = tmp_path / "zlib-bomb.dat"
    bad.write_bytes(_bomb_cpu0(tc.to_zlib(SRC.read_bytes()), zlib_bomb, usize))
    res = read_isolated(str(bad))
    assert res["peak_rss_mb"] < 1024, res
    assert res["partial"] and 0 < res["events"] < EVENTS
    assert any("CPU 0 chunk 0" in w for w in res["warnings"]), res["warnings"]


def test_decompression_limit_names_its_override_and_the_override_works(tmp_path):
    """64 MiB of empty ring-buffer pages in one chunk (6 KB compressed): past a 16M size
    limit, and past the default 500-fold ratio; read whole when both are raised."""
    bad = tmp_path / "big-chunk.dat"
    bad.write_bytes(_bomb_cpu0(SRC.read_bytes(), _zeros_zstd(64 * MIB), 64 * MIB))
    low = read_isolated(str(bad), {"TRACEREPLAY_MAX_DECOMPRESSED": "16M"})
    assert low["partial"]
    assert any("TRACEREPLAY_MAX_DECOMPRESSED" in w for w in low["warnings"]), low["warnings"]
    ratio = read_isolated(str(bad), {"TRACEREPLAY_MAX_DECOMPRESSED": "128M"})
    assert ratio["partial"]
    assert any("TRACEREPLAY_MAX_RATIO" in w for w in ratio["warnings"]), ratio["warnings"]
    high = read_isolated(
        str(bad), {"TRACEREPLAY_MAX_DECOMPRESSED": "128M", "TRACEREPLAY_MAX_RATIO": "0"}
    )
    assert not high["partial"] and high["events"] == EVENTS, high


def test_compressed_section_bomb_is_an_error(tmp_path, zstd_bomb):
    """A metadata section whose content states 2 GiB: refused before anything is allocated."""
    data = SRC.read_bytes()
    opt = tc.option(data, tc.SEC_KALLSYMS)

    def edit(d: bytearray) -> None:
        at = len(d)
        d += b"".join(
            [
                (tc.SEC_KALLSYMS).to_bytes(2, "little") + b"\1\0" + b"\0" * 4,
                (8 + len(zstd_bomb)).to_bytes(8, "little"),
                len(zstd_bomb).to_bytes(4, "little") + (0xFFFFFFFF).to_bytes(4, "little"),
                zstd_bomb,
            ]
        )
        tc.put(d, opt.at, "Q", at)

    bad = _mutated(tmp_path, edit)
    res = read_isolated(str(bad))
    assert res["peak_rss_mb"] < 1024 and res["exit_code"] == 3, res
    assert str(bad) in res["error"] and "limit" in res["error"]


@pytest.fixture(scope="module")
def v6(tmp_path_factory) -> Path:
    """The fixture as an uncompressed v6 file (trace-cmd report reads it: 10 778 events)."""
    path = tmp_path_factory.mktemp("v6") / "v6.dat"
    path.write_bytes(tc.to_v6(SRC.read_bytes()))
    return path


def test_v6_copy_of_the_fixture_reads_whole(v6):
    reader = _read(v6)
    assert reader.meta.recorder_options["trace_dat_version"] == 6
    assert reader.meta.event_count == EVENTS and not reader.meta.partial


@pytest.mark.parametrize("keep", [0.35, 0.5, 0.75, 0.999])
def test_truncated_cpu_buffers_keep_the_sound_part(tmp_path, v6, keep):
    data = v6.read_bytes()
    reader = TraceDatReader(str(v6))
    reader.parse()
    first = reader.buffers[0].cpus[0].offset
    cut = first + int((len(data) - first) * keep)
    cut -= cut % 4096 if keep < 0.9 else 0  # whole pages, and one cut inside a page
    reader = _read(_mutated(tmp_path, lambda d: d.__delitem__(slice(cut, None)), src=data))
    assert reader.meta.partial and 0 < reader.meta.event_count < EVENTS
    assert any("truncated" in w for w in reader.meta.warnings)


@pytest.mark.parametrize("count", [0, 2**31 - 1, 0xFFFFFFFF])
def test_v6_cpu_count_out_of_range_is_an_error(tmp_path, v6, count):
    data = v6.read_bytes()
    at = data.index(b"options  \0") - 4
    bad = _mutated(tmp_path, lambda d: tc.put(d, at, "I", count), src=data)
    assert "CPU count" in _error(bad).detail
