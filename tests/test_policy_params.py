"""Policies declare their parameters and explain themselves; --param and --costs are checked alike."""

from __future__ import annotations

import duckdb
import pytest
from conftest import FIXTURES, run_cli
from traces import TRACEFS_PLAIN

from tracereplay import pipeline
from tracereplay.errors import EXIT_INPUT, EXIT_USAGE, TraceReplayError
from tracereplay.manifest import load_manifest
from tracereplay.params import Param, ParamError, check_params
from tracereplay.policies import DEFAULT_POLICIES, REGISTRY
from tracereplay.policies.base import UnknownPolicyError, check_policy_params
from tracereplay.replay import load_costs

KVM = str(FIXTURES / "kvm-pinned-6.18.txt.gz")


def test_param_parsing_types_and_ranges():
    batch = Param("batch", int, 1, "pages per call", min=1, max=4096)
    assert batch.parse("16") == 16 and batch.parse("0x10") == 16 and batch.parse(8) == 8
    for bad, why in (("0", ">= 1"), ("abc", "integer"), ("1.5", "integer"), (True, "integer")):
        with pytest.raises(ValueError, match=why):
            batch.parse(bad)
    with pytest.raises(ValueError, match="<= 4096"):
        batch.parse("5000")
    assert Param("on", bool, False, "").parse("yes") is True
    assert Param("x", float, 0.0, "", min=0).parse("2.5") == 2.5
    with pytest.raises(ValueError, match="finite"):
        Param("x", float, 0.0, "").parse("nan")
    mode = Param("mode", str, "cow", "", choices=("none", "cow", "all"))
    with pytest.raises(ValueError, match="none, cow, all"):
        mode.parse("some")
    assert batch.describe() == "integer >= 1, <= 4096, default 1"


def test_check_params_fills_defaults_and_names_the_valid_list():
    declared = (Param("batch", int, 1, ""),)
    assert check_params("p", declared, {}) == {"batch": 1}
    with pytest.raises(ParamError, match=r"unknown parameter p\.batchx \(known: p\.batch\)"):
        check_params("p", declared, {"batchx": "1"})
    assert ParamError("x").exit_code == EXIT_USAGE


def test_every_policy_declares_itself():
    for name in DEFAULT_POLICIES:
        cls = REGISTRY[name]
        assert cls.proposal and cls.rules and cls.legend.startswith(name + ":"), name
        assert "\n" not in cls.legend and len(cls.legend) <= 120, name
        cls()  # the defaults of its declared parameters are valid
        for p in cls.parameters:
            assert p.help and p.parse(p.default) == p.default
    assert [p.name for p in REGISTRY["numa-protect"].parameters] == ["batch"]


def test_policy_params_are_checked_against_the_declarations():
    assert check_policy_params({"numa-protect": {"batch": "16"}}) == {"numa-protect": {"batch": 16}}
    with pytest.raises(UnknownPolicyError, match=r"unknown policy 'nosuch'.*known: baseline"):
        check_policy_params({"nosuch": {"x": 1}})
    with pytest.raises(ParamError, match=r"numa-protect\.batch"):
        REGISTRY["numa-protect"](batch=0)


@pytest.mark.parametrize(
    "param, needle",
    [
        ("numa-protect.batch=0", "must be >= 1"),
        ("numa-protect.batch=abc", "expected an integer"),
        ("numa-protect.batchx=16", "known: numa-protect.batch"),
        ("nosuchpolicy.x=1", "known: baseline, notifier-flag"),
    ],
)
def test_bad_param_is_a_usage_error(write, param, needle):
    result = run_cli("analyze", write("t.txt", TRACEFS_PLAIN), "--param", param)
    assert result.exit_code == EXIT_USAGE, result.output
    assert needle in result.stderr and "internal error" not in result.stderr


def test_unknown_policy_is_a_usage_error(write):
    result = run_cli("analyze", write("t.txt", TRACEFS_PLAIN), "--policy", "nope")
    assert result.exit_code == EXIT_USAGE and "unknown policy 'nope'" in result.stderr


def test_costs_file_is_checked_like_params(write):
    """Same checker, same message shape; a file is input (exit 3), a flag usage (exit 2)."""
    assert (
        load_costs(write("ok.toml", "[costs]\nkvm_unmap_call = 1\n")).costs_us["kvm_unmap_call"]
        == 1.0
    )
    for text, needle in (
        ("[costs]\nnope = 1\n", "unknown parameter costs.nope (known: costs.numa_pte_update"),
        ("[costs]\nkvm_unmap_call = -1\n", "costs.kvm_unmap_call=-1: must be >= 0"),
        ('[costs]\nkvm_unmap_call = "x"\n', "expected a number"),
        ("[other]\nx = 1\n", "unknown table or key other"),
    ):
        path = write("c.toml", text)
        with pytest.raises(TraceReplayError, match=r"c\.toml") as e:
            load_costs(path)
        assert needle in str(e.value) and getattr(e.value, "exit_code", None) == EXIT_INPUT


def _replay_kvm(tmp_path, *, pinned: bool):
    manifest = load_manifest(KVM + ".manifest.toml")
    if not pinned:
        for spec in manifest.vms:
            spec.pinned = []
    con = duckdb.connect(str(tmp_path / f"pinned-{pinned}.duckdb"))
    try:
        pipeline.ingest(con, pipeline.open_input(KVM), manifest)
        result = pipeline.replay(con, pipeline.reconstruct(con, manifest))
    finally:
        con.close()
    (vm,) = result.vms
    return vm


def test_why_a_policy_changed_nothing(tmp_path):
    unpinned = _replay_kvm(tmp_path, pinned=False)
    # without a pin, the pin-driven policies replay as the baseline, and say why
    assert set(unpinned.unchanged) >= {"pinned-longterm-mm", "per-vma-optout"}
    assert "no long-term pin" in unpinned.unchanged["pinned-longterm-mm"]
    assert "no pinned memory" in unpinned.unchanged["per-vma-optout"]
    assert "per-mm-optout" not in unpinned.unchanged  # it removes every scan
    # a policy replaying the baseline's own outcome gives exactly the baseline's counts
    assert unpinned.policies["pinned-longterm-mm"]["tlb_shootdown_ipis"].value == (
        unpinned.policies["baseline"]["tlb_shootdown_ipis"].value
    )
    pinned = _replay_kvm(tmp_path, pinned=True)
    assert "pinned-longterm-mm" not in pinned.unchanged
