"""Reconstruction on real and hand-written traces: causes, tgids, pages, kernel model."""

from __future__ import annotations

import gzip
import json

import duckdb
import pytest
from conftest import FIXTURES, run_cli

from tracereplay.manifest import load_manifest
from tracereplay.reconstruct import kernel_model, reconstruct
from tracereplay.reconstruct.kernel import parse_sublevel
from tracereplay.store import ingest

KVM = FIXTURES / "kvm-pinned-6.18.txt.gz"
KVM_MANIFEST = FIXTURES / "kvm-pinned-6.18.txt.gz.manifest.toml"


def _db(tmp_path, trace, manifest=None, name="t.duckdb"):
    path = tmp_path / name
    ingest(str(trace), str(path), manifest=manifest)
    return duckdb.connect(str(path))


@pytest.mark.parametrize(
    "release, expected",
    [
        ("4.19.300", "none"),  # before v5.17: page_mapcount() test, pinned pages protected
        ("5.4.268", "none"),
        ("5.10.101", "none"),
        ("5.10.102", "cow"),  # stable backports of 80d47f5de5e3 (page_count() != 1)
        ("5.15.24", "none"),
        ("5.15.25", "cow"),
        ("5.15.94", "cow"),
        ("5.15.94-arch1-1", "cow"),  # a suffix keeps the stable sublevel meaningful
        ("5.15.0-91-generic", "none"),  # a distribution's sublevel 0 says nothing
        ("5.15", "none"),
        ("5.16.10", "none"),
        ("5.16.11", "cow"),
        ("5.17.0-rc4", "none"),  # merged for v5.17-rc5
        ("5.17.0-rc5", "cow"),
        ("5.17.0", "cow"),  # v5.17: COW mappings skip pages with other references
        ("6.8.12", "cow"),
        ("6.9.12", "cow"),
        ("6.10.0", "cow"),  # v6.10: folio_maybe_dma_pinned() in COW mappings
        ("6.18.44-fc-v669", "cow"),
        ("6.19.0", "all"),  # 6.19: all maybe-DMA-pinned folios, huge PMDs too
        ("7.1.0", "all"),
    ],
)
def test_kernel_model_by_release(release, expected):
    assert kernel_model(release).pin_skip == expected
    assert kernel_model(release).source == "release"


@pytest.mark.parametrize(
    "release, sublevel",
    [
        ("5.15.94", 94),
        ("5.15.94-arch1-1", 94),
        ("5.15.0-91-generic", 0),
        ("5.15", None),
        ("5.15.94x", 94),
        ("v5.15.94", None),
        ("5.15.", None),
        (None, None),
    ],
)
def test_parse_sublevel(release, sublevel):
    assert parse_sublevel(release) == sublevel


def test_kernel_model_says_when_a_backport_may_be_missed():
    """Before 5.17 "none" is an assumption: describe() names the commit and the way out."""
    for release in ("5.15.0-91-generic", "5.15.24", "5.4.268", "5.17.0-rc4"):
        text = kernel_model(release).describe()
        assert text.startswith("baseline pin skipping in change_pte_range: none (inferred")
        assert "80d47f5de5e3" in text and "--pin-skip cow" in text, text
        assert "5.10.102" in text and "5.15.25" in text and "5.16.11" in text
    assert "backport of commit 80d47f5de5e3" in kernel_model("5.15.94").describe()
    for release in ("5.17.0", "6.9.12", "6.18.44", "6.19.0"):
        assert "--pin-skip" not in kernel_model(release).describe()
    # an explicit choice is not second-guessed
    assert "--pin-skip" not in kernel_model("5.15.0-91-generic", pin_skip="none").describe()
    assert kernel_model("5.15.0-91-generic", pin_skip="cow").pin_skip == "cow"


def test_kernel_model_default_and_override():
    assert kernel_model(None).source == "default"
    assert kernel_model("6.18", pin_skip="none").pin_skip == "none"
    with pytest.raises(ValueError):
        kernel_model("6.18", pin_skip="some")


def test_inferred_causes_match_the_stacks(tmp_path):
    """Without stacks, the seed+chain rule reproduces the stack classification exactly."""
    with gzip.open(KVM, "rt") as f:
        lines = [ln for ln in f if "<stack trace>" not in ln and not ln.startswith(" => ")]
    bare = tmp_path / "nostack.txt"
    bare.write_text("".join(lines))
    truth = _db(tmp_path, KVM, name="truth.duckdb")
    con = _db(tmp_path, bare, name="bare.duckdb")
    reconstruct(con)
    expected = truth.execute(
        "SELECT hva_start, hva_end, ts, cause FROM kvm_unmaps ORDER BY ts"
    ).fetchall()
    got = con.execute("SELECT hva_start, hva_end, ts, cause FROM kvm_unmaps ORDER BY ts").fetchall()
    assert got == expected
    assert con.execute("SELECT DISTINCT cause_evidence FROM kvm_unmaps").fetchall() == [
        ("inferred",)
    ]


def test_invalidation_pages_equal_an_independent_computation(tmp_path):
    manifest = load_manifest(str(KVM_MANIFEST))
    con = _db(tmp_path, KVM, manifest)
    model = reconstruct(con, kernel_release="6.18")
    (vm,) = model.vms
    (slot,) = manifest.vms[0].ranges
    (pin,) = manifest.vms[0].pinned
    ranges = con.execute(
        "SELECT hva_start, hva_end FROM kvm_unmaps WHERE cause = 'numa_scan' ORDER BY ts, seq"
    ).fetchall()

    def overlap(a, b, c, d):
        return max(0, min(b, d) - max(a, c)) // 4096

    guest = [overlap(s, e, slot.hva_start, slot.hva_end) for s, e in ranges]
    pinned = [overlap(s, e, pin.hva_start, pin.hva_end) for s, e in ranges]
    assert list(vm.chunks["guest_pages"]) == guest
    assert list(vm.chunks["pinned_pages"]) == pinned
    assert sum(guest) == 325_120 and sum(guest) - sum(pinned) == 65_536


def test_tgids_are_filled_from_thread_creation(tmp_path, write):
    text = (
        "# tracer: nop\n"
        "            qemu-100     [000]  10.000001: task_newtask: pid=101 comm=qemu clone_flags=3d0f00 oom_score_adj=0\n"
        "            qemu-100     [000]  10.000002: task_newtask: pid=200 comm=qemu clone_flags=1200011 oom_score_adj=0\n"
        "          vcpu-0-101     [001]  10.000003: kvm_unmap_hva_range: mmu notifier unmap range: 0x1000 -- 0x3000\n"
    )
    con = _db(tmp_path, write("t.txt", text))
    reconstruct(con)
    # 0x3d0f00 has CLONE_THREAD: thread 101 belongs to process 100; 200 is a new process
    assert con.execute("SELECT tgid FROM kvm_unmaps").fetchall() == [(100,)]
    assert con.execute("SELECT count(*) FROM events WHERE pid = 200").fetchall() == [(0,)]


def test_vms_are_inferred_without_a_manifest(tmp_path):
    con = _db(tmp_path, KVM)
    model = reconstruct(con)
    (vm,) = model.vms
    assert vm.tgid == 7550 and vm.source == "inferred"
    # guest RAM inferred from ranges scanned twice or more (>= 64 MiB): the three big chunks
    slots = con.execute("SELECT hva_start, hva_end FROM memslots").fetchall()
    assert slots == [(0x7FCCCA200000, 0x7FCCEAA00000)]
    assert any("taken as a VM" in a for a in model.assumptions)


def test_manifest_vm_without_memslots_gets_its_guest_ram_inferred(tmp_path):
    """The recorder may name a VM (tgid, threads) but leave its memslots for inference."""
    manifest = tmp_path / "m.toml"
    manifest.write_text('[[vm]]\ntgid = 7550\nname = "tr-kvm-vmm"\n')
    r = run_cli("analyze", str(KVM), "--manifest", str(manifest), "--format", "json")
    assert r.exit_code == 0, r.stderr
    (vm,) = json.loads(r.stdout)["vms"]
    assert vm["guest_ram_bytes"] == 0x7FCCEAA00000 - 0x7FCCCA200000
    assert vm["source"] == "manifest, guest RAM inferred"
    assert vm["policies"]["baseline"]["kvm_unmap_calls"]["basis"] == "assumed"


def test_guest_ram_is_inferred_without_stacks_or_tgids(tmp_path):
    """Causes are classified before guest RAM is inferred from the NUMA-scan ranges."""
    from test_processes import strip_tgids

    bare = strip_tgids(KVM, tmp_path / "bare.txt")
    text = bare.read_text().splitlines(keepends=True)
    bare.write_text(
        "".join(ln for ln in text if "<stack trace>" not in ln and not ln.startswith(" => "))
    )
    con = _db(tmp_path, bare)
    model = reconstruct(con)
    (vm,) = model.vms
    assert vm.tgid == 7550 and vm.guest_pages == (0x7FCCEAA00000 - 0x7FCCCA200000) // 4096
