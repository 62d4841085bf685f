"""The report front ends: series that sum to the metrics, the HTML report, the Perfetto export."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from conftest import FIXTURES, run_cli

import tracereplay
from tracereplay.readers import open_trace
from tracereplay.replay.series import SERIES_METRICS
from tracereplay.report import plots
from tracereplay.report.aggregate import ADDR_BINS, TIME_BINS
from tracereplay.report.timeline import TRACK_PREFIX

KVM = FIXTURES / "kvm-pinned-6.18.txt.gz"
THREADS = FIXTURES / "pinned-threads-6.18.txt"  # pinned non-VM processes (kind process)


@pytest.fixture(scope="module")
def kvm_session():
    with tracereplay.open_session(str(KVM)) as s:
        s.replay()
        yield s


@pytest.mark.parametrize("trace", [KVM, THREADS], ids=["vm", "processes"])
def test_series_sum_to_the_metrics(trace):
    with tracereplay.open_session(str(trace)) as s:
        a = s.replay()
        entries = {e.tgid: e for e in [*a.vms, *a.processes] if e.replay is not None}
        checked = 0
        for cs in s.chunk_series():
            for policy, metrics in cs.values.items():
                for m in SERIES_METRICS:
                    total = entries[cs.tgid].policies[policy][m].value
                    assert metrics[m].sum() == pytest.approx(total, abs=1e-6), (cs.tgid, policy, m)
                    checked += 1
        assert checked >= len(SERIES_METRICS) * 2
        assert np.all(np.diff(cs.ts) >= 0)


def test_report_html_is_self_contained(tmp_path):
    out = tmp_path / "r.html"
    r = run_cli("report", str(KVM), "-o", str(out))
    assert r.exit_code == 0, r.output
    html = out.read_text()
    for section in (
        "vms",
        "processes",
        "over-time",
        "avoided",
        "heatmap",
        "scan-passes",
        "vmstat",
        "warnings",
        "provenance",
    ):
        assert f'id="{section}"' in html
    # nothing to fetch: no script, stylesheet, font or image from anywhere
    assert not re.search(r"<script|<link|<img|<iframe|url\(|@import", html, re.I)
    assert set(re.findall(r"https?://[^\"' <]+", html)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in html
    # the charts: 4 lines + 4 bars + 4 heat maps + 1 scan-pass timeline for the one VM
    assert html.count("<svg") == 13
    assert html.count("<polyline") == 4 * 6
    # the fixture's numbers, and the command that made the report
    assert "325,120" in html and "97.1%" in html
    assert "tracereplay report" in html and tracereplay.__version__ in html


def test_report_compare_must_be_replayed(tmp_path):
    r = run_cli(
        "report",
        str(KVM),
        "--policy",
        "baseline",
        "--policy",
        "numa-protect",
        "--compare",
        "per-mm-optout",
        "-o",
        str(tmp_path / "r.html"),
    )
    assert r.exit_code == 2
    assert "--compare per-mm-optout" in r.output
    assert not (tmp_path / "r.html").exists()


def test_chart_size_does_not_grow_with_the_data():
    """Aggregated inputs have fixed shapes; the densest heat map stays small."""
    rng = np.random.default_rng(1)
    grid = rng.random((ADDR_BINS, TIME_BINS)) * 1e6
    svg = plots.heatmap(grid, title="t", x_range=(0, 1), y_range=(0, 1), x_label="x", y_label="y")
    assert len(svg) < 150_000
    xs = np.linspace(0, 100, TIME_BINS + 1)
    lines = [(f"p{i}", np.cumsum(rng.random(TIME_BINS + 1))) for i in range(8)]
    assert len(plots.line_chart(xs, lines, title="t", x_label="s")) < 40_000


def test_heat_maps_count_the_pages_the_replay_zapped(kvm_session):
    from tracereplay.report.aggregate import Axis, GuestLayout, zap_grid

    r = kvm_session.result.vms[0]
    axis = Axis.of(kvm_session.con)
    layout = GuestLayout.of(kvm_session.con, r.vm.tgid)
    for policy in ("baseline", "notifier-flag", "per-mm-optout"):
        grid = zap_grid(r, policy, layout, axis)
        assert grid.sum() == pytest.approx(r.policies[policy]["kvm_pages_zapped"].value)
    # notifier-flag leaves the pinned part (the low 384 MiB of the 512) alone
    flag = zap_grid(r, "notifier-flag", layout, axis)
    assert flag[: ADDR_BINS * 384 // 512 - 1].sum() == 0
    assert zap_grid(r, "baseline", layout, axis)[: ADDR_BINS * 384 // 512 - 1].sum() > 0


def test_perfetto_export_reads_back_with_the_policy_tracks(tmp_path, kvm_session):
    out = tmp_path / "kvm.perfetto-trace"
    r = run_cli("export", str(KVM), "--perfetto", "-o", str(out))
    assert r.exit_code == 0, r.output
    df = pl.concat([pl.from_arrow(b) for b in open_trace(str(out)).batches()])
    original = df.filter(pl.col("system") != "track_event")
    assert original.height == 5849  # every event of the trace
    tracks = df.filter(pl.col("system") == "track_event")
    tracks = tracks.with_columns(
        a=pl.Series([json.loads(x) for x in tracks["args"]], dtype=pl.Object)
    )
    names = {a["track"] for a in tracks["a"]}
    a = kvm_session.analysis
    for policy in a.policies:
        assert TRACK_PREFIX + policy in names
        assert f"{TRACK_PREFIX}{policy}: kvm_pages_zapped (running total)" in names
    vm = a.vms[0]
    assert set(tracks["tgid"].to_list()) == {vm.tgid}
    # the slices of notifier-flag add up to what it avoids; the counters end at its totals
    begins = [x for x in tracks["a"] if x["type"] == "slice_begin"]
    flag = [x for x in begins if x["track"] == TRACK_PREFIX + "notifier-flag"]
    assert (
        sum(x["kvm_pages_zapped_avoided"] for x in flag)
        == vm.policies["notifier-flag"]["kvm_pages_zapped_avoided"].value
    )
    for policy in a.policies:
        counter = [
            x["value"]
            for x in tracks["a"]
            if x["track"] == f"{TRACK_PREFIX}{policy}: kvm_remote_flushes (running total)"
        ]
        assert counter[-1] == vm.policies[policy]["kvm_remote_flushes"].value
    # same timeline: the tracks lie within the trace's events
    ts = tracks["ts"]
    assert original["ts"].min() <= ts.min() and ts.max() <= original["ts"].max() + 1_000_000


def test_export_needs_perfetto_flag_and_a_trace(tmp_path, kvm_session):
    r = run_cli("export", str(KVM), "-o", str(tmp_path / "x.perfetto-trace"))
    assert r.exit_code == 2
