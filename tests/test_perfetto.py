"""Perfetto traces: format parity with the text fixtures, hand-built encodings, bad input."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
import zstandard
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from tests.conftest import FIXTURES, run_cli
from tracereplay.errors import TraceFormatError
from tracereplay.formats.perfetto import schema as ps
from tracereplay.formats.perfetto.protowire import len_field, varint_field
from tracereplay.readers import open_trace
from tracereplay.readers.perfetto import PerfettoReader
from tracereplay.writers import write_perfetto

COLS = ["ts", "cpu", "pid", "tgid", "comm", "system", "name", "args", "stack"]
FIXTURE_TRACES = ["pinned-threads-6.18.txt", "kvm-pinned-6.18.txt.gz"]


def rows(path: str) -> tuple[pl.DataFrame, Any]:
    reader = open_trace(path)
    table = pa.Table.from_batches(list(reader.batches()))
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(["ts", "cpu", "seq"]).select(COLS), reader.meta


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = {}
    d = tmp_path_factory.mktemp("perfetto")
    for name in FIXTURE_TRACES:
        target = str(d / (name.split(".")[0] + ".perfetto-trace"))
        write_perfetto(str(FIXTURES / name), target)
        out[name] = target
    return out


# ------------------------------------------------------------------ format parity


@pytest.mark.parametrize("name", FIXTURE_TRACES)
def test_events_parity_with_text(converted: dict[str, str], name: str) -> None:
    text, text_meta = rows(str(FIXTURES / name))
    perf, meta = rows(converted[name])
    assert meta.format == "perfetto"
    assert not meta.partial and meta.warnings == []
    assert perf.equals(text)
    assert meta.cpus == text_meta.cpus and meta.clock == text_meta.clock
    assert meta.recorder_options == text_meta.recorder_options


@pytest.mark.parametrize("name", FIXTURE_TRACES)
def test_analyze_json_parity(converted: dict[str, str], name: str) -> None:
    manifest = str(FIXTURES / name) + ".manifest.toml"
    results = []
    for trace in (str(FIXTURES / name), converted[name]):
        res = run_cli("analyze", trace, "--manifest", manifest, "--format", "json")
        assert res.exit_code == 0, res.stderr
        out = json.loads(res.stdout)
        del out["trace"]["path"], out["trace"]["format"]
        results.append(out)
    assert results[0] == results[1]


def test_stacks_survive(converted: dict[str, str]) -> None:
    perf, _ = rows(converted["kvm-pinned-6.18.txt.gz"])
    unmaps = perf.filter(pl.col("name") == "kvm_unmap_hva_range")
    assert unmaps.height == 94 and unmaps["stack"].null_count() == 0


def test_convert_cli(tmp_path: Path) -> None:
    out = tmp_path / "t.perfetto-trace"
    src = str(FIXTURES / "pinned-threads-6.18.txt")
    assert run_cli("convert", src, "-o", str(out)).exit_code == 0
    assert (tmp_path / "t.perfetto-trace.manifest.toml").exists()
    again = run_cli("convert", src, "-o", str(out))
    assert again.exit_code == 3 and "already exists" in again.stderr
    assert run_cli("convert", src, "-o", str(out), "--force").exit_code == 0
    bad = run_cli("convert", src, "-o", str(tmp_path / "t.json"))
    assert bad.exit_code == 2
    assert not list(tmp_path.glob(".tracereplay-*"))


# ------------------------------------------------------------------ hand-built encodings


def trace_bytes(*packets: bytes) -> bytes:
    return b"".join(len_field(1, p) for p in packets)


def bundle_packet(bundle: pb.FtraceEventBundle, **fields: Any) -> bytes:
    pkt = pb.TracePacket(ftrace_events=bundle, trusted_packet_sequence_id=1, **fields)
    return pkt.SerializeToString()


def read(path: Path, data: bytes) -> tuple[list[dict[str, Any]], Any]:
    path.write_bytes(data)
    reader = PerfettoReader(str(path))
    table = pa.Table.from_batches(list(reader.batches()))
    return table.to_pylist(), reader.meta


def tree(*threads: tuple[int, int, str]) -> bytes:
    t = pb.ProcessTree(
        threads=[pb.ProcessTree.Thread(tid=a, tgid=b, name=c) for a, b, c in threads]
    )
    return pb.TracePacket(process_tree=t).SerializeToString()


def test_legacy_generic_event(tmp_path: Path) -> None:
    ev = pb.FtraceEvent(timestamp=5_000, pid=42)
    ev.generic.event_name = "tlb_flush"
    ev.generic.field.add(name="reason", int_value=3)
    ev.generic.field.add(name="pages", uint_value=(1 << 64) - 1)
    other = pb.FtraceEvent(timestamp=6_000, pid=42)
    other.generic.event_name = "my_event"
    other.generic.field.add(name="msg", str_value='say "hi"')
    other.generic.field.add(name="delta", int_value=-7)
    b = pb.FtraceEventBundle(cpu=3, event=[ev, other])
    got, meta = read(tmp_path / "t.pftrace", trace_bytes(tree((42, 40, "qemu")), bundle_packet(b)))
    assert [(r["name"], r["system"], r["cpu"], r["comm"], r["tgid"]) for r in got] == [
        ("tlb_flush", "tlb", 3, "qemu", 40),
        ("my_event", None, 3, "qemu", 40),
    ]
    assert json.loads(got[0]["args"]) == {"reason": 3, "pages": (1 << 64) - 1}
    assert json.loads(got[1]["args"]) == {"msg": 'say "hi"', "delta": -7}
    assert meta.clock == "boot" and not meta.partial


def _dense_ipi(field_id: int, ts: int, callsite_iid: int, callback_iid: int) -> pb.FtraceEvent:
    ev = pb.FtraceEvent(timestamp=ts, pid=7)
    body = varint_field(1, 1) + varint_field(2, callsite_iid) + varint_field(3, callback_iid)
    ev.MergeFromString(len_field(field_id, body))  # unknown field: the dense encoding
    return ev


def _ipi_descriptor(field_id: int) -> pb.FtraceEventBundle.GenericEventDescriptor:
    layout = ps.EventLayout(
        field_id,
        "ipi_send_cpu",
        "ipi",
        (
            ps.ProtoField(1, "cpu", ps.T_UINT64),
            ps.ProtoField(2, "callsite", ps.T_UINT64),
            ps.ProtoField(3, "callback", ps.T_UINT64),
        ),
        False,
    )
    d = pb.FtraceEventBundle.GenericEventDescriptor()
    d.ParseFromString(ps.encode_descriptor(layout))
    return d


def test_dense_generic_with_interned_symbols(tmp_path: Path) -> None:
    interned = pb.InternedData(
        kernel_symbols=[
            pb.InternedString(iid=1, str=b"on_each_cpu_cond_mask"),
            pb.InternedString(iid=2, str=b"flush_tlb_func"),
        ]
    )
    b = pb.FtraceEventBundle(
        cpu=1,
        event=[_dense_ipi(65536, 100, 1, 2), _dense_ipi(65536, 200, 2, 9)],
        generic_event_descriptors=[_ipi_descriptor(65536)],
    )
    pkt = bundle_packet(b, interned_data=interned, sequence_flags=ps.SEQ_INCREMENTAL_STATE_CLEARED)
    got, meta = read(tmp_path / "t.pftrace", trace_bytes(pkt))
    assert json.loads(got[0]["args"]) == {
        "cpu": 1,
        "callsite": "on_each_cpu_cond_mask",
        "callback": "flush_tlb_func",
    }
    assert json.loads(got[1]["args"])["callback"] is None  # iid 9 never interned
    assert meta.partial and any("kernel symbol" in w for w in meta.warnings)


def _compact_bundle(cpu: int) -> pb.FtraceEventBundle:
    b = pb.FtraceEventBundle(cpu=cpu)
    c = b.compact_sched
    c.intern_table.extend(["swapper/0", "qemu"])
    c.switch_timestamp.extend([1000, 10, 5])  # delta encoded: 1000, 1010, 1015
    c.switch_prev_state.extend([0, 1, 0x100])
    c.switch_next_pid.extend([42, 0, 42])
    c.switch_next_prio.extend([120, 120, 120])
    c.switch_next_comm_index.extend([1, 0, 1])
    c.waking_timestamp.extend([1012])
    c.waking_pid.extend([43])
    c.waking_target_cpu.extend([1])
    c.waking_prio.extend([110])
    c.waking_comm_index.extend([1])
    c.waking_common_flags.extend([1])
    return b


def test_compact_sched(tmp_path: Path) -> None:
    got, _ = read(tmp_path / "t.pftrace", trace_bytes(bundle_packet(_compact_bundle(0))))
    assert [(r["ts"], r["name"], r["pid"]) for r in got] == [
        (1000, "sched_switch", None),
        (1010, "sched_switch", 42),
        (1012, "sched_waking", 0),
        (1015, "sched_switch", 0),
    ]
    first, second = json.loads(got[0]["args"]), json.loads(got[1]["args"])
    assert first["prev_pid"] is None and first["next_comm"] == "qemu" and first["prev_state"] == "R"
    assert second == {
        "prev_comm": "qemu",
        "prev_pid": 42,
        "prev_prio": 120,
        "prev_state": "S",
        "next_comm": "swapper/0",
        "next_pid": 0,
        "next_prio": 120,
    }
    assert json.loads(got[3]["args"])["prev_state"] == "R+"
    assert json.loads(got[2]["args"]) == {"comm": "qemu", "pid": 43, "prio": 110, "target_cpu": 1}


@pytest.mark.parametrize("kind", ["deflate", "zlib", "zstd"])
def test_compressed_packets(tmp_path: Path, kind: str) -> None:
    inner = trace_bytes(bundle_packet(_compact_bundle(2)))
    if kind == "zstd":
        pkt = pb.TracePacket(zstd_compressed_packets=zstandard.ZstdCompressor().compress(inner))
    else:
        co = zlib.compressobj(wbits=-15 if kind == "deflate" else 15)
        pkt = pb.TracePacket(compressed_packets=co.compress(inner) + co.flush())
    got, meta = read(tmp_path / "t.pftrace", trace_bytes(pkt.SerializeToString()))
    assert len(got) == 4 and {r["cpu"] for r in got} == {2} and not meta.partial


def test_typed_kvm_exit_warns_and_gzip_file(tmp_path: Path) -> None:
    ev = pb.FtraceEvent(timestamp=1, pid=5)
    ev.kvm_exit.esr_ec = 3
    ev.kvm_exit.vcpu_pc = 0x1000
    unmap = pb.FtraceEvent(timestamp=2, pid=5)
    unmap.kvm_unmap_hva_range.start = 0x7F0000000000
    unmap.kvm_unmap_hva_range.end = 0x7F0000200000
    data = trace_bytes(bundle_packet(pb.FtraceEventBundle(cpu=0, event=[ev, unmap])))
    path = tmp_path / "t.pftrace.gz"
    path.write_bytes(gzip.compress(data))
    reader = open_trace(str(path))
    got = pa.Table.from_batches(list(reader.batches())).to_pylist()
    assert json.loads(got[0]["args"]) == {"esr_ec": 3, "vcpu_pc": 0x1000}
    assert json.loads(got[1]["args"]) == {"start": 0x7F0000000000, "end": 0x7F0000200000}
    assert got[1]["system"] == "kvm"
    assert any("arm64" in w for w in reader.meta.warnings)


def test_lost_events_and_stats(tmp_path: Path) -> None:
    b = pb.FtraceEventBundle(
        cpu=1,
        lost_events=True,
        event=[_dense_ipi(65536, 5, 1, 1)],
        generic_event_descriptors=[_ipi_descriptor(65536)],
    )
    stats = [
        pb.TracePacket(
            ftrace_stats=pb.FtraceStats(
                phase=phase, cpu_stats=[pb.FtraceCpuStats(cpu=1, overrun=n)]
            )
        )
        for phase, n in ((1, 10), (2, 52))
    ]
    got, meta = read(
        tmp_path / "t.pftrace",
        trace_bytes(stats[0].SerializeToString(), bundle_packet(b), stats[1].SerializeToString()),
    )
    assert len(got) == 1
    assert [(x.cpu, x.count) for x in meta.lost] == [(1, 42)]
    assert meta.partial


# ------------------------------------------------------------------ bad input


@pytest.fixture
def good(converted: dict[str, str]) -> bytes:
    return Path(converted["kvm-pinned-6.18.txt.gz"]).read_bytes()


def test_truncated_file_is_partial(tmp_path: Path, good: bytes) -> None:
    got, meta = read(tmp_path / "t.pftrace", good[: len(good) * 2 // 3])
    assert 0 < len(got) < 5849
    assert meta.partial and any("cut short" in w or "truncated" in w for w in meta.warnings)


def test_truncated_first_packet_is_an_error(tmp_path: Path, good: bytes) -> None:
    with pytest.raises(TraceFormatError, match=r"@ byte 0"):
        read(tmp_path / "t.pftrace", good[:200])


def test_wrong_wire_type_at_top_level(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match=r"t.pftrace @ byte \d+"):
        read(tmp_path / "t.pftrace", b"\x0d\x01\x02\x03\x04" + b"\x00" * 64)


def test_absurd_length_prefix(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="absurd packet length"):
        read(tmp_path / "t.pftrace", b"\x0a\xff\xff\xff\xff\xff\xff\xff\x7f" + b"\x08\x01" * 8)


def test_bad_bundle_inside_good_trace_is_skipped(tmp_path: Path) -> None:
    ok = bundle_packet(_compact_bundle(0))
    # an event whose length runs past the end of its bundle, then a wrong wire type
    bad1 = len_field(ps.PKT_FTRACE_EVENTS, varint_field(1, 0) + b"\x12\x50\x08\x01")
    bad2 = len_field(ps.PKT_FTRACE_EVENTS, varint_field(1, 0) + b"\x12\x03\x0b\x01\x02")
    got, meta = read(tmp_path / "t.pftrace", trace_bytes(ok, bad1, bad2, ok))
    assert len(got) == 8
    assert meta.partial and len([w for w in meta.warnings if "skipped" in w]) >= 1


def test_dense_event_without_descriptor(tmp_path: Path) -> None:
    b = pb.FtraceEventBundle(cpu=0, event=[_dense_ipi(70000, 1, 1, 1), _dense_ipi(70000, 2, 1, 1)])
    got, meta = read(
        tmp_path / "t.pftrace", trace_bytes(bundle_packet(_compact_bundle(0)), bundle_packet(b))
    )
    assert len(got) == 4
    assert meta.partial and any("2 × dense generic event id 70000" in w for w in meta.warnings)


def test_corrupt_compressed_packet(tmp_path: Path) -> None:
    broken = pb.TracePacket(compressed_packets=b"\x78\x9c not deflate at all").SerializeToString()
    bomb = pb.TracePacket(zstd_compressed_packets=b"\x28\xb5\x2f\xfd garbage").SerializeToString()
    got, meta = read(
        tmp_path / "t.pftrace", trace_bytes(bundle_packet(_compact_bundle(0)), broken, bomb)
    )
    assert len(got) == 4
    assert meta.partial and sum("corrupt packet skipped" in w for w in meta.warnings) == 2


def test_garbage_is_not_a_trace(tmp_path: Path) -> None:
    p = tmp_path / "noise.bin"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(TraceFormatError):
        list(PerfettoReader(str(p)).batches())
