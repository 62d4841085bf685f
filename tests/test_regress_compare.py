"""``tracereplay compare`` of two synth recordings that differ only in the pinned fraction.

Every difference is asserted against the generator's own truth (``synth
--truth``), computed while simulating, never against our replay; the
per-second rates against the first and last timestamps of the trace text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_cli

from tracereplay.errors import EXIT_USAGE

SCENARIO = """
name = "pinned-{pinned}"
duration = 1.5
seed = 3
[host]
nodes = 1
cpus_per_node = 4
[numa_balancing]
scan_delay_ms = 500
scan_period_min_ms = 250
scan_size_mb = 256
[[vm]]
name = "qemu-system-x86"
ram = "1G"
pinned = {pinned}
vcpus = 3
"""
_TS = re.compile(r"\]\s+\S+\s+(\d+\.\d+): ")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A: a quarter of guest RAM pinned; B: three quarters (same seed, everything else equal)."""
    d = tmp_path_factory.mktemp("compare")
    out = {}
    for label, pinned in (("a", 0.25), ("b", 0.75)):
        scenario = d / f"{label}.toml"
        scenario.write_text(SCENARIO.format(pinned=pinned))
        trace, truth = d / f"{label}.txt", d / f"{label}.truth.json"
        r = run_cli("synth", str(scenario), "-o", str(trace), "--truth", str(truth))
        assert r.exit_code == 0, r.stderr
        out[label] = (str(trace), json.loads(truth.read_text()))
    return out


def _span_s(trace: str) -> float:
    """Last minus first timestamp of the trace text (the generator's clock, not ours)."""
    stamps = [float(m.group(1)) for line in Path(trace).read_text().splitlines() if (m := _TS.search(line))]
    return stamps[-1] - stamps[0]


@pytest.fixture(scope="module")
def compared(recordings):
    (a, _), (b, _) = recordings["a"], recordings["b"]
    r = run_cli("compare", a, b, "--policy", "per-vma-optout", "--format", "json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def _rows(pair, section):
    return {row["metric"]: row for row in pair["sections"][section]}


def test_the_vm_pairs_by_name(compared):
    (pair,) = compared["pairs"]
    assert pair["matched_by"] == "name"
    assert pair["a"]["name"] == pair["b"]["name"] == "qemu-system-x86"
    assert pair["a"]["ram_bytes"] == pair["b"]["ram_bytes"] == 1 << 30
    assert compared["only_a"] == compared["only_b"] == []


def test_baseline_differences_are_the_generators(compared, recordings):
    truth_a = recordings["a"][1]["vms"][0]["policies"]["baseline"]
    truth_b = recordings["b"][1]["vms"][0]["policies"]["baseline"]
    rows = _rows(compared["pairs"][0], "baseline")
    dur_a, dur_b = _span_s(recordings["a"][0]), _span_s(recordings["b"][0])
    assert compared["a"]["duration_s"] == pytest.approx(dur_a, abs=1e-6)
    assert compared["b"]["duration_s"] == pytest.approx(dur_b, abs=1e-6)
    assert truth_a.keys() <= rows.keys()
    moved = set()
    for metric, ta in truth_a.items():
        va, vb = ta["value"], truth_b[metric]["value"]
        row = rows[metric]
        assert (row["a"], row["b"], row["diff"]) == (va, vb, vb - va), metric
        assert row["a_per_s"] == pytest.approx(va / dur_a, rel=1e-6)
        assert row["b_per_s"] == pytest.approx(vb / dur_b, rel=1e-6)
        assert row["diff_per_s"] == pytest.approx(vb / dur_b - va / dur_a, rel=1e-6, abs=1e-6)
        assert (row["a_per_gib"], row["b_per_gib"]) == (va, vb)  # 1 GiB of guest RAM each
        if vb != va:
            moved.add(metric)
    # pinning more on 6.18 (COW mappings skip pinned pages): fewer PTE updates and hint faults
    assert {"numa_pte_updates", "numa_hint_faults"} <= moved
    assert rows["numa_pte_updates"]["diff"] < 0


def test_observed_differences_are_the_generators(compared, recordings):
    rows = _rows(compared["pairs"][0], "observed")
    for event, metric in (
        ("kvm_unmap_hva_range", "kvm_invalidations"),
        ("sched_skip_vma_numa", "vma_skips"),
    ):
        ca = recordings["a"][1]["trace"]["event_counts"][event]
        cb = recordings["b"][1]["trace"]["event_counts"][event]
        assert (rows[metric]["a"], rows[metric]["b"], rows[metric]["diff"]) == (ca, cb, cb - ca)


def test_prediction_on_a_against_observed_on_b(compared, recordings):
    predicted = recordings["a"][1]["vms"][0]["policies"]["per-vma-optout"]
    observed_b = recordings["b"][1]["vms"][0]["policies"]["baseline"]
    rows = _rows(compared["pairs"][0], "predicted:per-vma-optout")
    for metric in observed_b:
        assert (rows[metric]["a"], rows[metric]["b"]) == (
            predicted[metric]["value"],
            observed_b[metric]["value"],
        ), metric
    assert not any(m.endswith("_avoided") for m in rows)


def test_table_mapping_and_usage_errors(recordings):
    (a, _), (b, _) = recordings["a"], recordings["b"]
    r = run_cli("compare", a, b, "--map", "4242=qemu-system-x86", "--policy", "numa-protect")
    assert r.exit_code == 0, r.stderr
    assert (
        "VM qemu-system-x86 (A: tgid 4242, 1.00 GiB) ~ qemu-system-x86 (B: tgid 4242, 1.00 GiB, mapped)"
        in r.stdout
    )
    assert "predicted by numa-protect on A (column A) vs observed on B" in r.stdout
    header = next(line for line in r.stdout.splitlines() if line.strip().startswith("metric"))
    assert header.split() == [
        "metric",
        "A",
        "B",
        "B-A",
        "A",
        "/s",
        "B",
        "/s",
        "B-A",
        "/s",
        "A",
        "/GiB",
        "B",
        "/GiB",
    ]
    r = run_cli("compare", a, b, "--map", "qemu=qemu-system-x86")
    assert r.exit_code == EXIT_USAGE
    assert (
        "--map qemu=qemu-system-x86: no single VM or process 'qemu' in A (known: vm qemu-system-x86 (tgid 4242))"
        in r.stderr
    )
    r = run_cli("compare", a, b, "--map", "qemu")
    assert r.exit_code == EXIT_USAGE and "expected A_VM=B_VM" in r.stderr
    r = run_cli("compare", a, b, "--policy", "numa-protekt")
    assert (
        r.exit_code == EXIT_USAGE and "unknown policy 'numa-protekt' given to --policy" in r.stderr
    )
