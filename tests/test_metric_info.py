"""Every reported metric has a unit and a basis rule that matches what the replay decides."""

from __future__ import annotations

import itertools

import numpy as np

from tracereplay.contract import BASES, METRICS
from tracereplay.metric_info import METRIC_INFO, metric_info, weakest_basis
from tracereplay.reconstruct.model import VmActivity
from tracereplay.replay.engine import _bases


def test_every_contract_metric_has_a_unit_and_basis_rule():
    for m in (*METRICS, "est_cpu_us", "mmtests_autonuma_cost"):
        info = metric_info(m)
        assert info.unit and info.meaning and info.basis_rule, m
    avoided = metric_info("kvm_unmap_calls_avoided")
    assert avoided.unit == "calls" and "baseline minus the policy" in avoided.meaning


def test_basis_rules_name_every_basis_the_replay_gives():
    """Over every kind of VM and process, each basis _bases() assigns is one the rule names."""
    seen: dict[str, set[str]] = {}
    for kind, source, faults, evidence, assumed_cov, baseline in itertools.product(
        ("vm", "process"),
        ("manifest", "inferred"),
        (None, 10),
        ({"stack": 3}, {"inferred": 3}),
        (False, True),
        (False, True),
    ):
        vm = VmActivity(
            tgid=1,
            name="x",
            source=source,
            guest_pages=1,
            pinned_pages=0,
            chunks={"guest_pages": np.zeros(1, np.int64)},
            kvm_page_faults=faults,
            evidence=evidence,
            kind=kind,
            user_faults=faults,
            coverage_assumed=assumed_cov,
        )
        for metric, basis in _bases(vm, baseline).items():
            seen.setdefault(metric, set()).add(basis)
    for metric, bases in seen.items():
        rule = METRIC_INFO[metric].basis_rule
        for basis in bases:
            assert basis in rule, (metric, basis, rule)


def test_weakest_basis():
    assert weakest_basis("observed", "assumed", "derived") == "assumed"
    assert weakest_basis("observed", "derived") == "derived"
    assert set(BASES) == {"observed", "derived", "assumed"}
