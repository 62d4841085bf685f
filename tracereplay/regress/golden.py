"""Write an expectation file from an :class:`Analysis`: every figure exact, with its basis.

``tracereplay check TRACE --expect E.toml --write-expect`` uses it; the file is
then edited by hand into tolerances, bounds and ratios where exact values are
too strict (docs/REGRESSION.md). ``<metric>_avoided`` figures are left out:
they are exactly the baseline's value minus the policy's, both written.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tracereplay.atomic import atomic_output
from tracereplay.pipeline.analysis import Analysis, Metric, ProcessAnalysis, VmAnalysis
from tracereplay.regress.expect import ExpectationFile, entity_names
from tracereplay.version import __version__

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _value(v: Any) -> str:
    """A TOML value: JSON's spelling is TOML's for these (strings, numbers, booleans, lists)."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(v)


def _metrics(metrics: dict[str, Metric]) -> list[str]:
    return [
        f"{_key(name)} = {_value({'value': m.shown, 'basis': m.basis})}"
        for name, m in metrics.items()
        if not name.endswith("_avoided")
    ]


def _selector(entity: VmAnalysis | ProcessAnalysis, pool: list[Any]) -> list[str]:
    """The entity's name when no other has it, else its tgid (stable across recordings: the name)."""
    name = entity.name if isinstance(entity, VmAnalysis) else (entity.name or entity.comm)
    if name and sum(name in entity_names(e) for e in pool) == 1:
        return [f"name = {_value(name)}  # tgid {entity.tgid}"]
    return [f"tgid = {entity.tgid}" + (f"  # {name}" if name else "")]


def expectations_text(analysis: Analysis, settings: ExpectationFile | None = None) -> str:
    """The expectation file for ``analysis``; ``settings``: the ``[analysis]`` table to keep."""
    t = analysis.trace
    lines = [
        f"# tracereplay expectations for {t.path}",
        f"# Written by `tracereplay check --write-expect` (tracereplay {__version__}): every",
        '# figure exactly as analyzed. Loosen what may move: a tolerance ("65536 ± 2 %"),',
        '# a bound (">= 100"), a ratio ("<= 0.8 × baseline"); see docs/REGRESSION.md.',
        "",
        "[analysis]",
        f"policies = {_value(list(analysis.policies))}",
    ]
    if settings is not None and settings.params:
        lines.append(f"params = {_value(settings.params)}")
    if settings is not None and settings.pin_skip:
        lines.append(f"pin_skip = {_value(settings.pin_skip)}")
    lines += [
        "",
        "[trace]",
        f"format = {_value(t.format)}",
        f"events = {t.events}",
        f"lost_events = {t.lost_events}",
        f"partial = {_value(t.partial)}",
        f"warnings = {_value(sorted({w.code for w in analysis.warnings}))}",
    ]
    if t.kernel:
        lines.insert(
            lines.index(f"format = {_value(t.format)}") + 1, f"kernel = {_value(t.kernel)}"
        )
    for vm in analysis.vms:
        lines += [
            "",
            "[[vm]]",
            *_selector(vm, analysis.vms),
            "",
            "[vm.observed]",
            *_metrics(vm.observed),
        ]
        for policy, metrics in vm.policies.items():
            lines += ["", f"[vm.policies.{_key(policy)}]", *_metrics(metrics)]
    replayed = [p for p in analysis.processes if p.replay is not None]
    for p in replayed:
        lines += ["", "[[process]]", *_selector(p, analysis.processes)]
        if p.observed:
            lines += ["", "[process.observed]", *_metrics(p.observed)]
        for policy, metrics in p.policies.items():
            lines += ["", f"[process.policies.{_key(policy)}]", *_metrics(metrics)]
    return "\n".join(lines) + "\n"


def write_expectations(
    analysis: Analysis, path: str, *, force: bool = False, settings: ExpectationFile | None = None
) -> str:
    """Write :func:`expectations_text` to ``path`` atomically (never over a file without ``force``)."""
    text = expectations_text(analysis, settings)
    with atomic_output(path, force=force, suffix=".toml") as tmp, open(tmp, "w") as f:
        f.write(text)
    return text


__all__ = ["expectations_text", "write_expectations"]
