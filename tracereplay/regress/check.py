"""Analyze a trace as an expectation file says and evaluate the file: :func:`run_check`.

The library side of ``tracereplay check`` and of the pytest plugin::

    result = run_check("fixtures/kvm-pinned-6.18.txt.gz",
                       "fixtures/kvm-pinned-6.18.txt.gz.expect.toml")
    result.ok, [o.message() for o in result.failed]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from tracereplay.errors import TraceReplayError
from tracereplay.manifest import Manifest
from tracereplay.pipeline import analyze
from tracereplay.pipeline.analysis import Analysis
from tracereplay.policies import DEFAULT_POLICIES, load_plugins
from tracereplay.policies.base import check_policy_names, check_policy_params
from tracereplay.regress.expect import (
    ExpectationFile,
    ExpectationFileError,
    Outcome,
    evaluate,
    load_expectations,
)
from tracereplay.regress.table import table


@dataclass
class CheckResult:
    """The analysis, the expectation file and every outcome, in file order."""

    analysis: Analysis
    expectations: ExpectationFile
    outcomes: list[Outcome]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.held]

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, Any]:
        return {
            "trace": self.analysis.trace.path,
            "expect": self.expectations.path,
            "ok": self.ok,
            "held": len(self.outcomes) - len(self.failed),
            "failed": len(self.failed),
            "partial": self.analysis.partial,
            "results": [o.as_json() for o in self.outcomes],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=2) + "\n"

    def summary(self) -> str:
        n = len(self.outcomes)
        state = "all held" if self.ok else f"{n - len(self.failed)} held, {len(self.failed)} FAILED"
        return f"{n} expectation{'s' if n != 1 else ''}: {state}"

    def to_table(self, *, failed_only: bool = False) -> str:
        t = self.analysis.trace
        partial = "  [PARTIAL: figures are lower bounds]" if t.partial else ""
        lines = [
            f"Trace   {t.path}  ({t.format}){partial}",
            f"Expect  {self.expectations.path}",
            "",
        ]
        shown = self.failed if failed_only else self.outcomes
        rows = [
            [
                "ok" if o.held else "FAIL",
                o.expectation.entity,
                o.expectation.section,
                o.expectation.metric,
                o.expectation.expected,
                o.actual_text,
                o.detail,
            ]
            for o in shown
        ]
        if rows:
            lines += table(
                ["", "scope", "section", "metric", "expected", "actual", "detail"], rows, ""
            )
            lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)


def settings_of(expect: ExpectationFile) -> dict[str, Any]:
    """``analyze`` keyword arguments from the file's ``[analysis]`` table, checked (exit 3)."""
    load_plugins()
    policies = expect.policies or DEFAULT_POLICIES
    try:
        check_policy_names(policies)
        params = check_policy_params(expect.params)
    except TraceReplayError as e:  # the file's mistake, not the command line's: bad input
        raise ExpectationFileError(f"{expect.path}: [analysis]: {e}") from None
    known = ", ".join(policies)
    for x in expect.expectations:  # a policy name the analysis will not have is a typo
        if x.section not in ("observed", "trace", *policies):
            raise ExpectationFileError(
                f"{expect.path}: {x.where}: policy {x.section!r} is not replayed (policies: {known})"
            )
        cond = x.condition
        if cond is not None and cond.ref is not None and cond.ref[0] not in ("observed", *policies):
            raise ExpectationFileError(
                f"{expect.path}: {x.where}: {cond.text!r} refers to {cond.ref[0]!r}, "
                f"which is neither observed nor a replayed policy ({known})"
            )
    return {"policies": policies, "params": params, "pin_skip": expect.pin_skip}


def analyze_for(
    trace: str | os.PathLike[str],
    expect: ExpectationFile,
    manifest: Manifest | str | os.PathLike[str] | None = None,
) -> Analysis:
    """The analysis of ``trace`` with the file's policies, parameters and pin skipping."""
    return analyze(trace, manifest, **settings_of(expect))


def run_check(
    trace: str | os.PathLike[str],
    expect: str | ExpectationFile,
    manifest: Manifest | str | os.PathLike[str] | None = None,
    *,
    analysis: Analysis | None = None,
) -> CheckResult:
    """Analyze ``trace`` (or take ``analysis``) and evaluate the expectation file ``expect``."""
    ex = load_expectations(expect) if isinstance(expect, str) else expect
    if analysis is None:
        analysis = analyze_for(trace, ex, manifest)
    return CheckResult(analysis, ex, evaluate(analysis, ex))


__all__ = ["CheckResult", "analyze_for", "run_check", "settings_of"]
