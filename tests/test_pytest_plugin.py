"""The pytest plugin: registered through ``pytest11``, fixtures cached, failures readable.

A user's test suite is simulated with pytester: a test file using the
fixtures is run by a fresh pytest session, which loads the plugin the way a
user's does (the entry point of the installed package).
"""

from __future__ import annotations

import tomllib

from conftest import FIXTURES, REPO

import tracereplay.pytest_plugin as plugin

KVM = FIXTURES / "kvm-pinned-6.18.txt.gz"
GOLDEN = FIXTURES / "kvm-pinned-6.18.txt.gz.expect.toml"


def test_entry_point_declared_and_loaded(request):
    with open(REPO / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["entry-points"]["pytest11"] == {"tracereplay": "tracereplay.pytest_plugin"}
    # loaded once, by the entry point or (an install older than it) by tests/conftest.py
    pm = request.config.pluginmanager
    assert pm.is_registered(plugin)
    names = [name for name, p in pm.list_name_plugin() if p is plugin]
    assert len(names) == 1 and names[0] in ("tracereplay", "tracereplay.pytest_plugin")


def test_the_session_analyzes_a_trace_once(tracereplay_analyze):
    a = tracereplay_analyze(KVM)
    assert tracereplay_analyze(str(KVM)) is a  # same trace, same arguments: cached
    b = tracereplay_analyze(KVM, policies=["baseline", "numa-protect"])
    assert b is not a and b.policies == ["baseline", "numa-protect"]


def test_a_users_suite(pytester):
    pytester.makepyfile(
        test_user=f"""
        from tracereplay.pytest_plugin import assert_metric

        TRACE = {str(KVM)!r}

        def test_golden(tracereplay_check):
            result = tracereplay_check(TRACE, {str(GOLDEN)!r})
            assert result.ok

        def test_zaps_avoided(tracereplay_analyze):
            a = tracereplay_analyze(TRACE)
            assert_metric(a, vm="tr-kvm-vmm", policy="notifier-flag",
                          metric="kvm_pages_zapped", expect="<= 0.25 × baseline")

        def test_regressed(tracereplay_analyze):
            a = tracereplay_analyze(TRACE)
            assert_metric(a, vm="tr-kvm-vmm", policy="numa-protect",
                          metric="kvm_unmap_calls", expect="<= 1.5 × baseline")

        def test_golden_edited(tracereplay_check, tmp_path):
            text = open({str(GOLDEN)!r}).read().replace("events = 5849", "events = 5850")
            edited = tmp_path / "edited.toml"
            edited.write_text(text)
            tracereplay_check(TRACE, edited)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*1 of 1 expectations did not hold (assert_metric):",
            "*  vm tr-kvm-vmm · numa-protect · kvm_unmap_calls: FAILED: expected <= 1.5 × baseline, "
            "got 65536 (derived); 1.5 × baseline = 10.5",
            "*1 of 104 expectations did not hold (*edited.toml on *kvm-pinned-6.18.txt.gz):",
            "*  trace · events: FAILED: expected 5850, got 5849; off by -1",
        ]
    )
    # pytrace=False: the message, not a traceback into the plugin
    assert "pytest_plugin.py" not in result.stdout.str()
