"""``top`` without root: a recorded ring buffer replayed through the live code path.

The pages of a fixture trace.dat are the pages ``trace_pipe_raw`` hands out
(same sub-buffer layout), so :class:`DatPageSource` cuts them into intervals
and :class:`LiveTop` analyzes each as it would a live one. Discovery runs on
fake /proc trees (tests/test_record_discovery.py's).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_record_discovery import fake_pid, proc  # noqa: F401 (fixture)

from tracereplay.live.discovery import Discovery, guest_ram_from_maps, pin_fds
from tracereplay.live.engine import CUMULATIVE_APPROXIMATION, LIVE_METRICS, LiveTop
from tracereplay.live.sources import DatPageSource, Interval
from tracereplay.manifest import load_manifest
from tracereplay.pipeline import steps
from tracereplay.readers.trace_dat import TraceDatReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DAT = str(FIXTURES / "kvm-pinned-6.18.dat")


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(DAT + ".manifest.toml")


@pytest.fixture(scope="module")
def whole(manifest):
    return steps.run(TraceDatReader(DAT), manifest=manifest)


def _policies(vms: list[dict]) -> dict[int, dict]:
    return {v["tgid"]: v["policies"] for v in vms}


def test_one_interval_is_exactly_analyze(manifest, whole):
    src = DatPageSource(DAT, 1)
    top = LiveTop(src, lambda: manifest)
    [report] = list(top.replay(src))
    got = report.as_json(top.cumulative)
    want = whole.as_json()
    assert got["trace"]["events"] == want["trace"]["events"] == 5849
    assert got["trace"]["format"] == "tracefs-raw"
    assert _policies(got["vms"]) == _policies(want["vms"])
    assert got["trace"]["event_counts"] == want["trace"]["event_counts"]
    # the cumulative sums of one interval are that interval
    assert _policies(got["cumulative"]["vms"]) == _policies(want["vms"])


def test_intervals_sum_to_the_whole_for_event_counted_metrics(manifest, whole):
    src = DatPageSource(DAT, 4)
    top = LiveTop(src, lambda: manifest)
    reports = list(top.replay(src, seconds=2.0))
    assert len(reports) == 4
    assert sum(r.analysis.trace.events for r in reports) == whole.trace.events
    assert any(r.analysis.trace.events == 0 for r in reports)  # a quiet interval is fine
    cum = _policies(top.cumulative.as_json()["vms"])
    want = _policies(whole.as_json()["vms"])
    tgid = whole.vms[0].tgid
    # counted from events (no page state involved): sums are exact
    for metric in ("numa_invalidations", "kvm_unmap_calls", "kvm_pages_zapped"):
        assert cum[tgid]["baseline"][metric]["value"] == want[tgid]["baseline"][metric]["value"]
    assert cum[tgid]["numa-protect"]["kvm_pages_zapped"] == want[tgid]["numa-protect"][
        "kvm_pages_zapped"
    ]
    assert top.cumulative.as_json()["approximation"]["basis"] == "assumed"


def test_json_has_the_analyze_shape_and_the_interval_fields(manifest):
    src = DatPageSource(DAT, 2)
    top = LiveTop(src, lambda: manifest)
    for report in top.replay(src, seconds=3.0):
        obj = json.loads(json.dumps(report.as_json(top.cumulative)))
        assert obj["interval_end"] - obj["interval_start"] == 3.0
        assert obj["lost_events"] == 0
        assert CUMULATIVE_APPROXIMATION in obj["assumptions"]
        assert {"cpu_seconds", "cpu_percent", "lost_events", "events"} <= set(obj["overhead"])
        for vm in obj["vms"]:
            for policy, metrics in vm["policies"].items():
                for m in LIVE_METRICS:
                    assert set(metrics[m]) == {"value", "basis"}, (policy, m)
                    assert metrics[m]["basis"] in ("observed", "derived", "assumed")


def test_a_page_with_the_missed_events_flag_is_counted_as_lost(manifest):
    src = DatPageSource(DAT, 1)
    [interval] = list(src)
    ps = src.page_size

    def room_for_count(data: bytes, at: int) -> bool:
        size = int.from_bytes(data[at + 8 : at + 16], "little") & ((1 << 27) - 1)
        return size + 8 <= ps - 16  # the kernel stores the count only where it fits

    cpu, at = next(
        (c, at)
        for c, p in interval.pages.items()
        for at in range(0, len(p), ps)
        if room_for_count(p, at)
    )
    pages = bytearray(interval.pages[cpu])
    commit_at = at + 8  # u64 timestamp, then the commit word (flags in its top bits)
    word = int.from_bytes(pages[commit_at : commit_at + 8], "little")
    # RB_MISSED_EVENTS (bit 31) and RB_MISSED_STORED (bit 30): the count follows the data
    size = word & ((1 << 27) - 1)
    pages[commit_at : commit_at + 8] = (word | (1 << 31) | (1 << 30)).to_bytes(8, "little")
    pages[at + 16 + size : at + 16 + size + 8] = (37).to_bytes(8, "little")
    flagged = Interval({**interval.pages, cpu: bytes(pages)})
    top = LiveTop(src, lambda: manifest)
    report = top.step(0, flagged, 0.0, 1.0)
    assert report.lost_events == 37
    assert report.analysis.trace.lost_events == 37
    assert top.cumulative.lost_events == 37


def test_kernel_overrun_counts_are_reported(manifest):
    src = DatPageSource(DAT, 1)
    [interval] = list(src)
    interval.lost, interval.lost_per_cpu = 12, {0: 12}
    report = LiveTop(src, lambda: manifest).step(0, interval, 0.0, 1.0)
    assert report.as_json()["lost_events"] == 12


def test_guest_ram_from_maps_takes_big_writable_anonymous_and_memfd_mappings():
    maps = "\n".join(
        [
            "7f0000000000-7f0010000000 rw-p 00000000 00:00 0 ",  # 256 MiB anon: RAM
            "7f1000000000-7f1008000000 rw-s 00000000 00:01 77 /memfd:pc.ram (deleted)",
            "7f2000000000-7f2000100000 rw-p 00000000 00:00 0 ",  # 1 MiB: too small
            "7f3000000000-7f3010000000 r--p 00000000 08:01 12 /usr/lib/big.so",  # a file
            "7f4000000000-7f4010000000 rw-p 00000000 08:01 13 /var/data.bin",  # file-backed
        ]
    )
    got = [(r.hva_start, r.size) for r in guest_ram_from_maps(maps)]
    assert got == [(0x7F0000000000, 256 << 20), (0x7F1000000000, 128 << 20)]


def test_discovery_assumes_and_says_so(proc, tmp_path):  # noqa: F811 (fixture)
    # a VMM with a VFIO group fd and 512 MiB of anonymous RAM, no lab layout, no QMP
    d = fake_pid(proc, 500, "qemu-kvm", fds={3: "anon_inode:kvm-vm", 9: "/dev/vfio/12"})
    (d / "maps").write_text("7f0000000000-7f0020000000 rw-p 00000000 00:00 0 \n")
    assert pin_fds(500, proc) == (["/dev/vfio/12"], False)
    disc = Discovery(scope={500, 300}, proc=proc, exclude=set())
    disc.refresh()
    [vm] = disc.vms
    assert vm.tgid == 500 and vm.pinned_all
    assert [(r.hva_start, r.size) for r in vm.memslots] == [(0x7F0000000000, 512 << 20)]
    assert any("VFIO" in a and "assumed" in a for a in disc.assumptions)
    assert any("maps" in a for a in disc.assumptions)
    assert [p.tgid for p in disc.processes] == [300]  # VmPin > 0
    m = disc.manifest({"kernel": "6.18.0"}, {"events": ["kvm:kvm_unmap_hva_range"]})
    [spec] = m.vms
    assert spec.pinned_all and spec.ranges[0].size == 512 << 20
    # the process went away: it leaves the discovery at the next refresh
    import shutil

    shutil.rmtree(proc / "500")
    disc.refresh()
    assert disc.vms == []


def test_page_timestamps_of_the_fixture_ascend_per_cpu():
    from tracereplay.live.pages import page_timestamps

    src = DatPageSource(DAT, 1)
    [interval] = list(src)
    for data in interval.pages.values():
        ts = page_timestamps(data, src.page_size)
        assert len(ts) == len(data) // src.page_size
        assert np.all(np.diff(ts.astype(np.int64)) >= 0)


def test_view_rows_sort_by_baseline_cost_and_render(manifest):
    from rich.console import Console

    from tracereplay.live.view import render, rows

    src = DatPageSource(DAT, 1)
    top = LiveTop(src, lambda: manifest)
    [report] = list(top.replay(src, seconds=2.0))
    entries = rows(report, top.cumulative)
    assert [e["cost"] for e in entries] == sorted((e["cost"] for e in entries), reverse=True)
    vm = entries[0]
    base = vm["policies"]["baseline"]["kvm_pages_zapped"]
    assert base["rate"] == report.analysis.vms[0].policies["baseline"]["kvm_pages_zapped"].value / 2
    protect = vm["policies"]["numa-protect"]["kvm_pages_zapped"]
    assert protect["avoided"] == pytest.approx(1 - 65536 / 325120)
    assert protect["cumulative_avoided"] == pytest.approx(protect["avoided"])
    console = Console(width=160, record=True)
    console.print(render(report, top.cumulative))
    text = console.export_text()
    assert "pages zapped/s" in text and "numa-protect" in text and "tool CPU" in text


def test_top_rejects_bad_options():
    from conftest import run_cli

    for args in (["--interval", "0"], ["--seconds", "-1"], ["--buffer-kb", "8"]):
        result = run_cli("top", *args)
        assert result.exit_code == 2, result.output
