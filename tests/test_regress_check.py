"""``tracereplay check``: expectation files against the real KVM fixture (and a synth process).

The committed expectation file fixtures/kvm-pinned-6.18.txt.gz.expect.toml is
the golden of the real recording; editing one value must fail with exit 5 and
name it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

from tracereplay.errors import EXIT_EXPECTATION_FAILED, EXIT_INPUT
from tracereplay.pytest_plugin import assert_metric
from tracereplay.regress import parse_condition, parse_expectations
from tracereplay.regress.expect import evaluate
from tracereplay.synth import generate, load_scenario

KVM = str(FIXTURES / "kvm-pinned-6.18.txt.gz")
GOLDEN = str(FIXTURES / "kvm-pinned-6.18.txt.gz.expect.toml")
KVM_DAT = str(FIXTURES / "kvm-pinned-6.18.dat")


# --- conditions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "actual", "ref", "held"),
    [
        (7, 7, None, True),
        (7, 7.0005, None, False),
        ("= 7", 8, None, False),
        ("100 ± 2 %", 102, None, True),
        ("100 ± 2 %", 102.5, None, False),
        ("100 +- 5", 95, None, True),
        ("100 +/- 5", 94.9, None, False),
        (">= 100", 100, None, True),
        ("≥ 100", 99, None, False),
        ("< 0", -65529, None, True),
        ("≤ -1", 0, None, False),
        ("<= 0.8 × baseline", 80, 100, True),
        ("<= 0.8 x baseline", 80.5, 100, False),
        ("> 2*notifier-flag.kvm_unmap_calls", 15, 7, True),
        ("0.5 × baseline ± 10 %", 55, 100, True),
        ("observed.tlb_flushes", 1183, 1183, True),
    ],
)
def test_conditions(text, actual, ref, held):
    assert parse_condition(text).holds(actual, ref) is held


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (">= 5 ± 1", "a tolerance (±) goes with an exact value"),
        ("about 7", "is no condition"),
        ("observed", "name the observed count"),
        (True, "is a boolean"),
        ("7 ± -1", "the tolerance must not be negative"),
    ],
)
def test_bad_conditions(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_condition(text)


# --- the golden of the real recording ------------------------------------------------------


def test_the_committed_expectations_hold_on_the_kvm_fixture(tracereplay_check):
    result = tracereplay_check(KVM, GOLDEN)
    assert result.ok and len(result.outcomes) > 100
    # the hand-written ratios of the file are among them, and resolve as documented
    held = {o.expectation.where: o for o in result.outcomes}
    ratio = held["vm[0].policies.notifier-flag.kvm_pages_zapped_avoided"]
    assert ratio.detail == "0.75 × baseline.kvm_pages_zapped = 243840"  # 0.75 × 325120
    assert ratio.actual == 259584


def test_check_command_passes_on_the_kvm_fixture():
    r = run_cli("check", KVM, "--expect", GOLDEN)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.rstrip().endswith("expectations: all held")
    assert "FAIL" not in r.stdout


def _edited_golden(tmp_path, old: str, new: str) -> str:
    text = Path(GOLDEN).read_text()
    assert text.count(old) >= 1
    # the first occurrence below [vm.policies.numa-protect]
    head, tail = text.split("[vm.policies.numa-protect]\n", 1)
    out = tmp_path / "edited.expect.toml"
    out.write_text(head + "[vm.policies.numa-protect]\n" + tail.replace(old, new, 1))
    return str(out)


def test_one_edited_value_fails_with_exit_5_naming_it(tmp_path):
    edited = _edited_golden(
        tmp_path,
        'kvm_unmap_calls = { value = 65536, basis = "derived" }',
        'kvm_unmap_calls = { value = 65537, basis = "derived" }',
    )
    r = run_cli("check", KVM, "--expect", edited)
    assert r.exit_code == EXIT_EXPECTATION_FAILED == 5
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1
    assert failed[0].split() == [
        "FAIL", "vm", "tr-kvm-vmm", "numa-protect", "kvm_unmap_calls",
        "65537", "(derived)", "65536", "(derived)", "off", "by", "-1",
    ]  # fmt: skip
    assert r.stderr.strip().endswith("check failed: 104 expectations: 103 held, 1 FAILED")

    r = run_cli("check", KVM, "--expect", edited, "--format", "json")
    assert r.exit_code == 5
    out = json.loads(r.stdout)
    assert (out["ok"], out["held"], out["failed"]) == (False, 103, 1)
    (bad,) = [x for x in out["results"] if not x["held"]]
    assert bad["where"] == "vm[0].policies.numa-protect.kvm_unmap_calls"
    assert (bad["actual"], bad["basis"], bad["detail"]) == (65536, "derived", "off by -1")
    assert (
        "tracereplay: vm tr-kvm-vmm · numa-protect · kvm_unmap_calls: FAILED: "
        "expected 65537 (derived), got 65536 (derived); off by -1"
    ) in r.stderr


def test_a_changed_basis_fails(tmp_path):
    edited = _edited_golden(
        tmp_path,
        'kvm_unmap_calls = { value = 65536, basis = "derived" }',
        'kvm_unmap_calls = { value = 65536, basis = "observed" }',
    )
    r = run_cli("check", KVM, "--expect", edited, "--failed-only")
    assert r.exit_code == 5
    assert "basis derived, expected observed" in r.stdout


# --- evaluation details, on the session's cached analysis ----------------------------------


@pytest.fixture
def kvm(tracereplay_analyze):
    return tracereplay_analyze(KVM)


def _one(analysis, data):
    (outcome,) = evaluate(analysis, parse_expectations(data))
    return outcome


def test_ratio_references_and_missing_things(kvm):
    def vm(section, metric, value, **select):
        body = (
            {"observed": {metric: value}}
            if section == "observed"
            else {"policies": {section: {metric: value}}}
        )
        return {"vm": [{**(select or {"name": "tr-kvm-vmm"}), **body}]}

    o = _one(kvm, vm("numa-protect", "kvm_remote_flushes", ">= 1000 × baseline"))
    assert o.held and o.detail == "1000 × baseline = 7000"
    o = _one(kvm, vm("observed", "ipis", "observed.ipi_targets"))
    assert o.held
    o = _one(kvm, vm("baseline", "kvm_unmap_calls", 7, tgid=7550))
    assert o.held
    o = _one(kvm, vm("baseline", "kvm_unmap_calls", 7, tgid=1))
    assert not o.held and o.detail.startswith(
        "no such vm in the trace (vms: tr-kvm-vmm (tgid 7550)"
    )
    o = _one(kvm, vm("numa-protekt", "kvm_unmap_calls", 7))
    assert not o.held and "policy 'numa-protekt' was not replayed (replayed: baseline," in o.detail
    o = _one(kvm, vm("baseline", "kvm_unmap_call", 7))
    assert (
        not o.held
        and "no metric 'kvm_unmap_call' in baseline (known: numa_invalidations," in o.detail
    )
    o = _one(kvm, vm("numa-protect", "kvm_unmap_calls", "<= 2 × per-mm.kvm_unmap_calls"))
    assert not o.held and o.detail.startswith("reference per-mm: policy 'per-mm' was not replayed")
    o = _one(kvm, {"trace": {"warnings": ["vmstat-disagreement"]}})
    assert not o.held and o.actual == frozenset()


def test_assert_metric_reads_like_check(kvm):
    assert_metric(
        kvm, policy="notifier-flag", metric="kvm_pages_zapped", expect="<= 0.25 × baseline"
    )
    with pytest.raises(pytest.fail.Exception) as e:
        assert_metric(
            kvm,
            policy="numa-protect",
            metric="kvm_unmap_calls",
            expect="65536 ± 0",
            basis="assumed",
        )
    assert str(e.value) == (
        "1 of 1 expectations did not hold (assert_metric):\n"
        "  vm tgid 7550 · numa-protect · kvm_unmap_calls: FAILED: expected 65536 ± 0 (assumed), "
        "got 65536 (derived); basis derived, expected assumed"
    )


def test_golden_checks_on_the_trace_dat_twin(tracereplay_analyze):
    """The .dat of the same recording, with a policy parameter: the RFC v2 figures, batched."""
    a = tracereplay_analyze(KVM_DAT, params={"numa-protect": {"batch": 16}})
    assert_metric(
        a, vm="tr-kvm-vmm", policy="numa-protect", metric="kvm_unmap_calls", expect=65536 / 16
    )
    assert_metric(
        a, vm="tr-kvm-vmm", policy="numa-protect", metric="kvm_unmap_calls_avoided", expect="< 0"
    )
    assert_metric(
        a, vm="tr-kvm-vmm", policy="pinned-longterm-mm", metric="numa_invalidations", expect=0
    )
    assert_metric(a, vm=7550, metric="kvm_invalidations", expect=94, basis="observed")


# --- bad expectation files: exit 3 naming the file and the key -----------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[vm\n", "not valid TOML: "),
        ('[[vm]]\nname = "x"\n[vm.policies.baseline]\nkvm_unmap_calls = "lots of"\n',
         "vm[0].policies.baseline.kvm_unmap_calls: 'lots of' is no condition"),
        ('[[vm]]\nname = "x"\n[vm.policies.baseline]\nkvm_unmap_calls = "< 2 × bsaeline"\n',
         "vm[0].policies.baseline.kvm_unmap_calls: '< 2 × bsaeline' refers to 'bsaeline', which is "
         "neither observed nor a replayed policy (baseline, notifier-flag, "),
        ('[[vm]]\nname = "x"\n[vm.policies.numa-protekt]\nkvm_unmap_calls = 1\n',
         "vm[0].policies.numa-protekt.kvm_unmap_calls: policy 'numa-protekt' is not replayed"),
        ("[[vm]]\n[vm.observed]\nipis = 1\n", "vm[0]: give the vm's name or tgid"),
        ("[trace]\nevnts = 1\n", "trace.evnts: unknown key"),
        ('[analysis]\npolicies = ["numa-protekt"]\n', "[analysis]: unknown policy 'numa-protekt'"),
        ('[analysis]\nparams = { numa-protect = { batch = 0 } }\n', "[analysis]: "),
        ('[[vm]]\nname = "x"\n[vm.observed]\nipis = { value = 1, basis = "guessed" }\n',
         "vm[0].observed.ipis.basis: expected one of observed, derived, assumed"),
    ],
)  # fmt: skip
def test_bad_expectation_files_are_bad_input(write, text, message):
    path = write("bad.expect.toml", text)
    r = run_cli("check", KVM, "--expect", path)
    assert r.exit_code == EXIT_INPUT, r.stdout
    line = r.stderr.strip()
    assert line.startswith(f"tracereplay: error: {path}: ") and message in line
    assert "\n" not in line and "Traceback" not in r.stderr


# --- --write-expect ------------------------------------------------------------------------


def test_write_expect_is_atomic_refuses_to_overwrite_and_keeps_the_settings(tmp_path):
    out = tmp_path / "k.expect.toml"
    out.write_text("[analysis]\nparams = { numa-protect = { batch = 16 } }\n")
    before = out.read_text()
    r = run_cli("check", KVM, "--expect", str(out), "--write-expect")
    assert r.exit_code == EXIT_INPUT and "already exists (use --force to replace it)" in r.stderr
    assert out.read_text() == before

    r = run_cli("check", KVM, "--expect", str(out), "--write-expect", "--force")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.startswith(f"{out}: 100 expectations written from {KVM}")
    text = out.read_text()
    assert "params = { numa-protect = { batch = 16 } }" in text
    protect = text.split("[vm.policies.numa-protect]\n", 1)[1]
    assert protect.splitlines()[1] == 'kvm_unmap_calls = { value = 4096, basis = "derived" }'
    assert os.listdir(tmp_path) == ["k.expect.toml"]  # no temporary file left
    r = run_cli("check", KVM, "--expect", str(out))
    assert r.exit_code == 0, r.stdout


def test_write_expect_covers_replayed_processes(tmp_path):
    """A synth GPU process: [[process]] entries are written, and hold."""
    trace = str(tmp_path / "gpu.txt")
    generate(load_scenario("gpu-pinned-buffers").with_overrides(duration=1.0), trace)
    expect = str(tmp_path / "gpu.expect.toml")
    assert run_cli("check", trace, "--expect", expect, "--write-expect").exit_code == 0
    text = Path(expect).read_text()
    assert (
        '[[process]]\nname = "gpu-worker"' in text and "[process.policies.per-vma-optout]" in text
    )
    r = run_cli("check", trace, "--expect", expect, "--format", "json")
    assert r.exit_code == 0, r.stdout
    results = json.loads(r.stdout)["results"]
    assert {x["scope"] for x in results} == {"trace", "process"}
