"""Expectation files: parse them, and evaluate them against an :class:`Analysis`.

The shape mirrors ``analyze --format json`` (docs/REGRESSION.md has the full
reference and an example)::

    [analysis]                      # how to analyze (optional)
    policies = ["baseline", "numa-protect"]
    params = { numa-protect = { batch = 16 } }
    pin_skip = "cow"

    [trace]
    events = 5654
    partial = false
    warnings = []                   # the warning codes, as a set

    [[vm]]
    name = "qemu-system-x86"        # and/or tgid = 4242
    [vm.observed]
    kvm_invalidations = ">= 90"
    [vm.policies.numa-protect]
    kvm_pages_zapped = "<= 0.8 × baseline"
    kvm_unmap_calls = { value = 65536, basis = "derived" }

    [[process]]                     # replayed non-VM processes, the same way
    name = "gpu-worker"

Every value is a condition (:mod:`tracereplay.regress.expr`), or an inline
table ``{ value = CONDITION, basis = "observed|derived|assumed" }``. A problem
with the file itself is an :class:`ExpectationFileError` (exit 3) naming the
file and the key; a figure that differs is a failed :class:`Outcome`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

from tracereplay.contract import BASES
from tracereplay.errors import TraceReplayError
from tracereplay.pipeline.analysis import Analysis, Metric, ProcessAnalysis, VmAnalysis
from tracereplay.regress.expr import Condition, ConditionError, parse_condition

# [trace] keys: numbers take conditions, the rest are compared as they are
TRACE_NUMBERS = ("events", "lost_events", "lost_event_gaps", "cpus")
TRACE_LITERALS = ("format", "kernel", "partial", "warnings")
ANALYSIS_KEYS = ("policies", "params", "pin_skip")

Entity = VmAnalysis | ProcessAnalysis


class ExpectationFileError(TraceReplayError):
    """The expectation file cannot be read or says something that is no expectation (exit 3)."""


@dataclass(frozen=True)
class Expectation:
    """One expected figure: in ``scope`` (trace | vm | process), ``section`` (observed | a policy)."""

    scope: str
    select: tuple[tuple[str, Any], ...]  # (("name", "x"), ("tgid", 42)): which VM / process
    section: str  # "observed", a policy name, or "trace"
    metric: str
    where: str  # the key in the file: vm[0].policies.numa-protect.kvm_unmap_calls
    condition: Condition | None = None  # numbers
    literal: Any = None  # [trace] format / kernel / partial / warnings
    basis: str | None = None

    @property
    def entity(self) -> str:
        """``vm tr-kvm-vmm`` / ``process tgid 42`` / ``trace``."""
        if self.scope == "trace":
            return "trace"
        return f"{self.scope} " + " ".join(
            str(v) if k == "name" else f"tgid {v}" for k, v in self.select
        )

    @property
    def expected(self) -> str:
        text = self.condition.text if self.condition else _literal_text(self.literal)
        return f"{text} ({self.basis})" if self.basis else text


@dataclass(frozen=True)
class Outcome:
    """An expectation evaluated: whether it held, the actual figure, and why not."""

    expectation: Expectation
    held: bool
    actual: Any = None
    basis: str | None = None
    detail: str = ""  # what the condition resolved to, or why it failed

    @property
    def actual_text(self) -> str:
        if self.actual is None:
            return "-"
        text = _literal_text(self.actual)
        return f"{text} ({self.basis})" if self.basis else text

    def message(self) -> str:
        """One line: ``vm x · numa-protect · kvm_pages_zapped: expected ..., got ...``."""
        e = self.expectation
        head = (
            f"{e.entity} · {e.section} · {e.metric}"
            if e.scope != "trace"
            else f"trace · {e.metric}"
        )
        status = "held" if self.held else "FAILED"
        tail = f"; {self.detail}" if self.detail else ""
        return f"{head}: {status}: expected {e.expected}, got {self.actual_text}{tail}"

    def as_json(self) -> dict[str, Any]:
        e = self.expectation
        return {
            "scope": e.scope,
            "select": dict(e.select),
            "section": e.section,
            "metric": e.metric,
            "expected": e.expected,
            "actual": sorted(self.actual) if isinstance(self.actual, frozenset) else self.actual,
            "basis": self.basis,
            "held": self.held,
            "detail": self.detail,
            "where": e.where,
        }


@dataclass
class ExpectationFile:
    """A parsed expectation file: the analysis settings and every expectation."""

    path: str
    expectations: list[Expectation]
    policies: tuple[str, ...] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    pin_skip: str | None = None


def _literal_text(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list | tuple | set | frozenset):
        return "[" + ", ".join(sorted(str(x) for x in v)) + "]"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(round(v, 3))
    return str(v)


# --- parsing -------------------------------------------------------------------------------


def load_expectations(path: str) -> ExpectationFile:
    """Parse the expectation file at ``path``; :class:`ExpectationFileError` naming what is wrong."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ExpectationFileError(f"{path}: no such expectation file") from None
    except OSError as e:
        raise ExpectationFileError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ExpectationFileError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ExpectationFileError(f"{path} @ byte {e.start}: not UTF-8 text") from None
    return parse_expectations(data, path)


def parse_expectations(data: dict[str, Any], path: str = "<expectations>") -> ExpectationFile:
    def fail(where: str, message: str) -> ExpectationFileError:
        return ExpectationFileError(f"{path}: {where}: {message}")

    extra = set(data) - {"analysis", "trace", "vm", "process"}
    if extra:
        raise fail(
            ", ".join(sorted(extra)),
            "unknown top-level key (known: analysis, trace, vm, process)",
        )
    out = ExpectationFile(path=path, expectations=[])
    analysis = _table(data.get("analysis", {}), "analysis", fail)
    unknown = set(analysis) - set(ANALYSIS_KEYS)
    if unknown:
        raise fail(
            f"analysis.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(ANALYSIS_KEYS)})"
        )
    if "policies" in analysis:
        pols = analysis["policies"]
        if not isinstance(pols, list) or not all(isinstance(p, str) for p in pols) or not pols:
            raise fail("analysis.policies", "expected a list of policy names")
        out.policies = tuple(pols)
    params = _table(analysis.get("params", {}), "analysis.params", fail)
    for policy, values in params.items():
        out.params[policy] = dict(_table(values, f"analysis.params.{policy}", fail))
    if "pin_skip" in analysis:
        if analysis["pin_skip"] not in ("none", "cow", "all"):
            raise fail("analysis.pin_skip", 'expected "none", "cow" or "all"')
        out.pin_skip = analysis["pin_skip"]

    trace = _table(data.get("trace", {}), "trace", fail)
    for key, value in trace.items():
        where = f"trace.{key}"
        if key in TRACE_NUMBERS:
            out.expectations.append(
                Expectation(
                    "trace", (), "trace", key, where, condition=_condition(value, where, fail)
                )
            )
        elif key in TRACE_LITERALS:
            out.expectations.append(
                Expectation(
                    "trace",
                    (),
                    "trace",
                    key,
                    where,
                    literal=_trace_literal(key, value, where, fail),
                )
            )
        else:
            known = ", ".join((*TRACE_NUMBERS, *TRACE_LITERALS))
            raise fail(where, f"unknown key (known: {known})")

    for scope in ("vm", "process"):
        entries = data.get(scope, [])
        if not isinstance(entries, list):
            raise fail(scope, f"expected [[{scope}]] entries")
        for i, entry in enumerate(entries):
            out.expectations += _entity(scope, i, _table(entry, f"{scope}[{i}]", fail), fail)
    return out


def _table(value: Any, where: str, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, "expected a table")
    return value


def _condition(value: Any, where: str, fail: Any) -> Condition:
    try:
        return parse_condition(value)
    except ConditionError as e:
        raise fail(where, str(e)) from None


def _trace_literal(key: str, value: Any, where: str, fail: Any) -> Any:
    if key == "partial":
        if not isinstance(value, bool):
            raise fail(where, "expected true or false")
        return value
    if key == "warnings":
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise fail(where, "expected a list of warning codes")
        return frozenset(value)
    if not isinstance(value, str):
        raise fail(where, "expected a string")
    return value


def _entity(scope: str, i: int, entry: dict[str, Any], fail: Any) -> list[Expectation]:
    where = f"{scope}[{i}]"
    select: list[tuple[str, Any]] = []
    if "name" in entry:
        if not isinstance(entry["name"], str):
            raise fail(f"{where}.name", "expected a string")
        select.append(("name", entry["name"]))
    if "tgid" in entry:
        if not isinstance(entry["tgid"], int) or isinstance(entry["tgid"], bool):
            raise fail(f"{where}.tgid", "expected an integer")
        select.append(("tgid", entry["tgid"]))
    if not select:
        raise fail(where, f"give the {scope}'s name or tgid")
    extra = set(entry) - {"name", "tgid", "observed", "policies"}
    if extra:
        raise fail(
            f"{where}.{sorted(extra)[0]}", "unknown key (known: name, tgid, observed, policies)"
        )
    sections: list[tuple[str, str, dict[str, Any]]] = [
        (
            "observed",
            f"{where}.observed",
            _table(entry.get("observed", {}), f"{where}.observed", fail),
        )
    ]
    for policy, metrics in _table(entry.get("policies", {}), f"{where}.policies", fail).items():
        w = f"{where}.policies.{policy}"
        sections.append((policy, w, _table(metrics, w, fail)))
    out = []
    for section, w, metrics in sections:
        for metric, value in metrics.items():
            basis = None
            mw = f"{w}.{metric}"
            if isinstance(value, dict):
                unknown = set(value) - {"value", "basis"}
                if unknown or "value" not in value:
                    raise fail(mw, "expected { value = ..., basis = ... } (basis optional)")
                basis = value.get("basis")
                if basis is not None and basis not in BASES:
                    raise fail(f"{mw}.basis", f"expected one of {', '.join(BASES)}")
                value = value["value"]
            cond = _condition(value, mw, fail)
            if cond.ref is not None and section == "observed" and cond.ref[0] != "observed":
                raise fail(mw, "an observed count can only refer to observed.METRIC")
            out.append(
                Expectation(scope, tuple(select), section, metric, mw, condition=cond, basis=basis)
            )
    return out


# --- evaluation ----------------------------------------------------------------------------


def entity_names(e: Entity) -> set[str]:
    """The names an expectation may select ``e`` by: a VM's name, a process's manifest name or comm."""
    return {e.name} if isinstance(e, VmAnalysis) else {n for n in (e.name, e.comm) if n}


def find_entity(
    analysis: Analysis, scope: str, select: tuple[tuple[str, Any], ...]
) -> Entity | str:
    """The VM or process ``select`` names, or why there is none (a sentence)."""
    pool: list[Entity] = list(analysis.vms) if scope == "vm" else list(analysis.processes)
    want = dict(select)
    names = entity_names
    found = [
        e
        for e in pool
        if ("tgid" not in want or e.tgid == want["tgid"])
        and ("name" not in want or want["name"] in names(e))
    ]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        tgids = ", ".join(str(e.tgid) for e in found)
        return f"{len(found)} {scope}s match (tgids {tgids}): add tgid to tell them apart"
    listed = ", ".join(
        f"{sorted(names(e))[0] if names(e) else '?'} (tgid {e.tgid})" for e in pool[:8]
    )
    return f"no such {scope} in the trace ({scope}s: {listed or 'none'})"


def _metric(entity: Entity, section: str, metric: str) -> Metric | str:
    """The figure, or why there is none."""
    if section == "observed":
        table = entity.observed
    elif section in entity.policies:
        table = entity.policies[section]
    elif not entity.policies:
        return "not replayed (no NUMA-scan activity, or not a pinned process of the manifest)"
    else:
        return f"policy {section!r} was not replayed (replayed: {', '.join(entity.policies)})"
    if metric not in table:
        return f"no metric {metric!r} in {section} (known: {', '.join(table)})"
    return table[metric]


def _trace_value(analysis: Analysis, key: str) -> Any:
    if key == "warnings":
        return frozenset(w.code for w in analysis.warnings)
    return getattr(analysis.trace, key)


def evaluate(
    analysis: Analysis, expectations: ExpectationFile | list[Expectation]
) -> list[Outcome]:
    """Every expectation against ``analysis``, in file order."""
    items = expectations.expectations if isinstance(expectations, ExpectationFile) else expectations
    return [_evaluate_one(analysis, e) for e in items]


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _judge(cond: Condition, actual: float, ref_value: float | None) -> tuple[bool, str]:
    """Whether ``actual`` meets ``cond``, and the detail: the resolved reference, how far off."""
    held = cond.holds(actual, ref_value)
    off = ""
    if not held and cond.op == "==":
        off = f"off by {_literal_text(actual - cond.target(ref_value))}"
    return held, _joined(cond.describe(ref_value), off)


def _evaluate_one(analysis: Analysis, e: Expectation) -> Outcome:
    if e.scope == "trace":
        actual = _trace_value(analysis, e.metric)
        if e.condition is None:
            return Outcome(e, actual == e.literal, actual)
        if actual is None:
            return Outcome(e, False, detail="not known for this trace")
        held, detail = _judge(e.condition, float(actual), None)
        return Outcome(e, held, actual, detail=detail)
    entity = find_entity(analysis, e.scope, e.select)
    if isinstance(entity, str):
        return Outcome(e, False, detail=entity)
    m = _metric(entity, e.section, e.metric)
    if isinstance(m, str):
        return Outcome(e, False, detail=m)
    assert e.condition is not None
    ref_value = None
    if e.condition.ref is not None:
        section, metric = e.condition.ref
        r = _metric(entity, section, metric or e.metric)
        if isinstance(r, str):
            return Outcome(e, False, m.shown, m.basis, f"reference {section}: {r}")
        ref_value = float(r.shown)
    held, detail = _judge(e.condition, float(m.shown), ref_value)
    if e.basis is not None and m.basis != e.basis:
        held = False
        detail = _joined(detail, f"basis {m.basis}, expected {e.basis}")
    return Outcome(e, held, m.shown, m.basis, detail)


__all__ = [
    "Expectation",
    "ExpectationFile",
    "ExpectationFileError",
    "Outcome",
    "entity_names",
    "evaluate",
    "find_entity",
    "load_expectations",
    "parse_expectations",
]
