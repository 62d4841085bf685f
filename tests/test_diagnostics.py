"""analyze's warnings: codes and messages a user cannot miss, in JSON, CSV and the table."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from conftest import FIXTURES, SHARED, run_cli

from tracereplay.contract import WARNING_CODES

PUBLIC = SHARED / "traces" / "public"
PUBLIC_TRACES = sorted(PUBLIC.glob("*.dat")) if PUBLIC.is_dir() else []
KVM = FIXTURES / "kvm-pinned-6.18.txt.gz"
PINNED = FIXTURES / "pinned-threads-6.18.txt"


def warnings_of(*args: str) -> list[dict]:
    r = run_cli("analyze", *args, "--format", "json")
    assert r.exit_code == 0, r.stderr
    warnings = json.loads(r.stdout)["warnings"]
    assert all(set(w) == {"code", "message"} and w["code"] in WARNING_CODES for w in warnings)
    return warnings


def codes(warnings: list[dict]) -> list[str]:
    return [w["code"] for w in warnings]


@pytest.mark.skipif(not PUBLIC_TRACES, reason=f"public traces not found under {PUBLIC}")
@pytest.mark.parametrize("trace", PUBLIC_TRACES, ids=lambda p: p.name)
def test_public_traces_say_nothing_to_replay_and_why(trace):
    (w,) = warnings_of(str(trace))
    assert w["code"] == "nothing-to-replay"
    # the events it lacks are named, with how to record them
    for event in ("kvm_unmap_hva_range", "sched_skip_vma_numa"):
        assert event in w["message"]
    assert "-e kvm:kvm_unmap_hva_range" in w["message"]
    assert "tracereplay record" in w["message"]


def test_clean_recording_has_no_warnings():
    assert warnings_of(str(KVM)) == []


def test_manifest_entry_without_events(tmp_path):
    manifest = tmp_path / "m.toml"
    manifest.write_text(
        re.sub(
            r"^tgid = 7550$",
            "tgid = 7555",
            (FIXTURES / (KVM.name + ".manifest.toml")).read_text(),
            flags=re.M,
        )
    )
    warnings = warnings_of(str(KVM), "--manifest", str(manifest))
    w = next(w for w in warnings if w["code"] == "manifest-entry-without-events")
    assert "7555" in w["message"] and "7550" in w["message"]  # names the busy process


def test_threads_without_process_carry_their_kvm_invalidations(tmp_path):
    """A tgid-less trace whose vCPU thread nothing ties to a process."""
    from test_processes import HEADER, _line

    unmap = "kvm_unmap_hva_range: mmu notifier unmap range: 0x7f0000000000 -- 0x7f0000200000"
    trace = tmp_path / "t.txt"
    trace.write_text(HEADER + "".join(_line(77, None, 0, 1.0 + k, unmap) for k in range(3)))
    manifest = tmp_path / "m.toml"
    manifest.write_text(
        '[[vm]]\ntgid = 4242\nname = "other"\n[[vm.memslot]]\nhva_start = 0x1000000\n'
        "size = 0x1000000\n"
    )
    warnings = warnings_of(str(trace), "--manifest", str(manifest))
    w = next(w for w in warnings if w["code"] == "threads-without-process")
    assert "1 thread(s)" in w["message"] and "77 (t77): 3 KVM invalidations" in w["message"]
    assert "tids" in w["message"]
    assert "manifest-entry-without-events" in codes(warnings)


def test_vmstat_disagreement_names_its_likely_cause():
    """pinned-threads: 3 072 PTE updates in the region vs 5 024 host-wide (the interpreter's own)."""
    warnings = warnings_of(str(PINNED))
    (w,) = [w for w in warnings if w["code"] == "vmstat-disagreement"]
    assert "numa_pte_updates: derived 3,072 vs vmstat 5,024 (61%)" in w["message"]
    assert "outside their regions" in w["message"]


def test_warnings_lead_the_table_and_appear_in_csv(tmp_path):
    trace = PUBLIC_TRACES[0] if PUBLIC_TRACES else None
    if trace is None:
        pytest.skip(f"public traces not found under {PUBLIC}")
    table = run_cli("analyze", str(trace)).stdout
    head = table.split("Event counts")[0]
    assert "WARNINGS" in head and "[nothing-to-replay]" in head
    rows = list(csv.reader(io.StringIO(run_cli("analyze", str(trace), "--format", "csv").stdout)))
    assert rows[1][:4] == ["warning", "", "", "nothing-to-replay"]


def test_missing_events_are_named_with_the_flags_that_add_them(tmp_path):
    """A manifest [[process]] in a trace without sched_skip_vma_numa / page_fault_user."""
    text = "".join(
        line
        for line in PINNED.read_text().splitlines(keepends=True)
        if "sched_skip_vma_numa" not in line and "page_fault_user" not in line
    )
    trace = tmp_path / "t.txt"
    trace.write_text(text)
    manifest = (FIXTURES / (PINNED.name + ".manifest.toml")).read_text()
    manifest = re.sub(r"^events = .*$", "", manifest, flags=re.M)
    (tmp_path / "t.txt.manifest.toml").write_text(manifest)
    (w,) = [
        w for w in warnings_of(str(trace)) if w["code"] in ("missing-events", "nothing-to-replay")
    ]
    assert w["code"] == "nothing-to-replay"
    assert "sched_skip_vma_numa" in w["message"] and "page_fault_user" in w["message"]
    assert "-e sched:sched_skip_vma_numa -e exceptions:page_fault_user" in w["message"]
