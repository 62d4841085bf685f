"""pytest plugin (entry point ``pytest11``): analyze traces once per session, assert on them.

Installed with tracereplay, it gives every test suite two fixtures and a helper::

    def test_patch_avoids_zaps(tracereplay_analyze):
        a = tracereplay_analyze("traces/base.dat")         # analyzed once per session
        assert_metric(a, vm="qemu", policy="numa-protect",
                      metric="kvm_pages_zapped", expect="<= 0.8 × baseline")

    def test_golden(tracereplay_check):
        tracereplay_check("traces/base.dat", "traces/base.dat.expect.toml")

* ``tracereplay_analyze(trace, manifest=None, policies=None, params=None)``:
  :func:`tracereplay.analyze`, cached per session by its arguments (the
  :class:`~tracereplay.pipeline.Analysis` is shared: do not modify it);
* ``tracereplay_check(trace, expect, manifest=None)``: evaluates an expectation
  file (docs/REGRESSION.md) on the cached analysis and fails the test listing
  every expectation that did not hold;
* :func:`assert_metric` and :func:`assert_expectations`: the same failures for
  an analysis in hand (``from tracereplay.pytest_plugin import assert_metric``).

Failures read like ``tracereplay check``'s: the figure, what was expected,
what it was, and the resolved reference or the difference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from tracereplay.pipeline import Analysis, analyze
from tracereplay.regress.check import CheckResult, run_check, settings_of
from tracereplay.regress.expect import (
    ExpectationFile,
    Outcome,
    evaluate,
    load_expectations,
    parse_expectations,
)

_Cache = dict[str, Analysis]


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def _fail(outcomes: list[Outcome], where: str) -> None:
    failed = [o for o in outcomes if not o.held]
    if failed:
        lines = [f"{len(failed)} of {len(outcomes)} expectations did not hold ({where}):"]
        lines += [f"  {o.message()}" for o in failed]
        pytest.fail("\n".join(lines), pytrace=False)


def assert_expectations(
    analysis: Analysis, expect: str | ExpectationFile | Mapping[str, Any]
) -> list[Outcome]:
    """Evaluate an expectation file (a path, a parsed one, or its TOML as a dict); fail readably."""
    if isinstance(expect, str):
        ex = load_expectations(expect)
    elif isinstance(expect, ExpectationFile):
        ex = expect
    else:
        ex = parse_expectations(dict(expect), "<dict>")
    outcomes = evaluate(analysis, ex)
    _fail(outcomes, ex.path)
    return outcomes


def assert_metric(
    analysis: Analysis,
    *,
    metric: str,
    expect: Any,
    policy: str = "observed",
    vm: str | int | None = None,
    process: str | int | None = None,
    basis: str | None = None,
) -> Outcome:
    """One figure of a VM or process (by name or tgid; the only VM when neither is given).

    ``expect`` is a condition: a number, ``"65536 ± 2 %"``, ``">= 100"``,
    ``"<= 0.8 × baseline"``; ``policy`` the policy, or ``observed``.
    """
    scope, who = ("process", process) if process is not None else ("vm", vm)
    if who is None:
        if len(analysis.vms) != 1:
            names = ", ".join(f"{v.name} ({v.tgid})" for v in analysis.vms) or "none"
            pytest.fail(
                f"give vm= or process=: the trace has {len(analysis.vms)} VMs ({names})",
                pytrace=False,
            )
        who = analysis.vms[0].tgid
    entry: dict[str, Any] = {"tgid" if isinstance(who, int) else "name": who}
    value = {"value": expect, "basis": basis} if basis else expect
    if policy == "observed":
        entry["observed"] = {metric: value}
    else:
        entry["policies"] = {policy: {metric: value}}
    ex = parse_expectations({scope: [entry]}, "assert_metric")
    (outcome,) = evaluate(analysis, ex)
    _fail([outcome], "assert_metric")
    return outcome


@pytest.fixture(scope="session")
def _tracereplay_cache() -> Iterator[_Cache]:
    yield {}


@pytest.fixture(scope="session")
def tracereplay_analyze(_tracereplay_cache: _Cache) -> Callable[..., Analysis]:
    """``analyze(trace, manifest=None, policies=None, params=None)``, once per session per arguments."""

    def _analyze(
        trace: str | os.PathLike[str],
        manifest: str | os.PathLike[str] | None = None,
        policies: list[str] | tuple[str, ...] | None = None,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        pin_skip: str | None = None,
    ) -> Analysis:
        key = _key(
            os.path.abspath(os.fspath(trace)),
            manifest and os.path.abspath(os.fspath(manifest)),
            list(policies) if policies is not None else None,
            params,
            pin_skip,
        )
        if key not in _tracereplay_cache:
            _tracereplay_cache[key] = analyze(trace, manifest, policies, params, pin_skip=pin_skip)
        return _tracereplay_cache[key]

    return _analyze


@pytest.fixture(scope="session")
def tracereplay_check(tracereplay_analyze: Callable[..., Analysis]) -> Callable[..., CheckResult]:
    """``check(trace, expect, manifest=None)``: the expectation file on the (cached) analysis."""

    def _check(
        trace: str | os.PathLike[str],
        expect: str | os.PathLike[str],
        manifest: str | os.PathLike[str] | None = None,
    ) -> CheckResult:
        ex = load_expectations(os.fspath(expect))
        s = settings_of(ex)
        analysis = tracereplay_analyze(trace, manifest, s["policies"], s["params"], s["pin_skip"])
        result = run_check(trace, ex, analysis=analysis)
        _fail(result.outcomes, f"{ex.path} on {os.fspath(trace)}")
        return result

    return _check


__all__ = ["assert_expectations", "assert_metric"]
