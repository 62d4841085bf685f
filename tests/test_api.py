"""The Python API: ``tracereplay.analyze`` and the pipeline steps, with their documented examples."""

from __future__ import annotations

import doctest
import json
import shutil

import duckdb
import pytest
from conftest import FIXTURES, REPO, run_cli

import tracereplay
from tracereplay import pipeline
from tracereplay.errors import ManifestError
from tracereplay.manifest import load_manifest
from tracereplay.pipeline import steps
from tracereplay.policies.base import UnknownPolicyError

KVM = FIXTURES / "kvm-pinned-6.18.txt.gz"
MANIFEST = FIXTURES / "kvm-pinned-6.18.txt.gz.manifest.toml"


def _vm_figures(a: pipeline.Analysis) -> dict:
    return {vm.tgid: vm.as_json()["policies"] for vm in a.vms}


@pytest.fixture(scope="module")
def with_sibling() -> pipeline.Analysis:
    return tracereplay.analyze(str(KVM))


def test_documented_examples_run(monkeypatch):
    """The docstring examples of tracereplay.analyze (they use paths relative to the repo)."""
    monkeypatch.chdir(REPO)
    result = doctest.testmod(steps, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10
    assert result.failed == 0


def test_sibling_manifest_is_picked_up(with_sibling):
    assert with_sibling.trace.manifest == str(MANIFEST)
    (vm,) = with_sibling.vms
    assert vm.guest_ram_bytes == 512 << 20 and vm.replay is not None
    assert vm.replay.source == "manifest"


def test_manifest_path_and_object_give_the_sibling_result(tmp_path, with_sibling):
    alone = tmp_path / KVM.name
    shutil.copyfile(KVM, alone)  # no sibling manifest here
    by_path = tracereplay.analyze(alone, manifest=str(MANIFEST))
    by_object = tracereplay.analyze(str(alone), manifest=load_manifest(str(MANIFEST)))
    assert by_path.trace.manifest == by_object.trace.manifest == str(MANIFEST)
    assert _vm_figures(by_path) == _vm_figures(by_object) == _vm_figures(with_sibling)


def test_without_a_manifest_vms_are_inferred_and_said_so(tmp_path):
    alone = tmp_path / KVM.name
    shutil.copyfile(KVM, alone)
    a = tracereplay.analyze(str(alone))
    assert a.trace.manifest is None
    assert any(note.startswith("no manifest") for note in a.assumptions)
    assert all(vm.replay is None or vm.replay.source == "inferred" for vm in a.vms)


def test_missing_manifest_file_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest file"):
        tracereplay.analyze(str(KVM), manifest=str(tmp_path / "absent.toml"))


def test_unknown_policy_is_refused():
    with pytest.raises(UnknownPolicyError, match="unknown policy 'no-such-policy'"):
        tracereplay.analyze(str(KVM), policies=["baseline", "no-such-policy"])


def test_api_and_cli_json_agree(with_sibling):
    r = run_cli("analyze", str(KVM), "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(json.dumps(with_sibling.as_json(), default=str))


def test_metrics_carry_basis_and_unit(with_sibling):
    (vm,) = with_sibling.vms
    base = vm.policies["baseline"]
    assert base["kvm_pages_zapped"].unit == "pages"
    assert base["est_cpu_us"].unit == "us"
    assert vm.policies["numa-protect"]["est_cpu_us_avoided"].unit == "us"
    assert vm.observed["kvm_invalidated_bytes"] == pipeline.Metric(1566208000, "observed", "bytes")
    with pytest.raises(ValueError, match="basis"):
        pipeline.Metric(1, "guessed")
    with pytest.raises(ValueError, match="warning code"):
        pipeline.AnalysisWarning("no-such-code", "x")


def test_steps_one_by_one_equal_run(tmp_path, with_sibling):
    manifest = load_manifest(str(MANIFEST))
    db = tmp_path / "kvm.duckdb"
    reader = pipeline.open_input(str(KVM))
    con = duckdb.connect(str(db))
    try:
        meta = pipeline.ingest(con, reader, manifest)
        assert meta.event_count == with_sibling.trace.events
        model = pipeline.reconstruct(con, manifest)
        result = pipeline.replay(con, model)
        a = pipeline.summarize(con, model, result, manifest)
        stored = con.execute("SELECT count(*) FROM replay_metrics").fetchone()
    finally:
        con.close()
    assert a.as_json() == with_sibling.as_json()
    assert stored is not None and stored[0] > 0


def test_db_is_kept_and_not_replaced_without_replace(tmp_path):
    db = tmp_path / "kvm.duckdb"
    a = tracereplay.analyze(str(KVM), db=str(db))
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    assert row is not None and row[0] == a.trace.events
    with pytest.raises(tracereplay.TraceReplayError, match="already exists"):
        tracereplay.analyze(str(KVM), db=str(db))
    tracereplay.analyze(str(KVM), db=str(db), replace=True)
