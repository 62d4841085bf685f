"""Two recordings side by side: :func:`compare` of two :class:`Analysis` results.

VMs (and replayed processes) are matched by name, or by an explicit mapping
``{A name or tgid: B name or tgid}``. For each pair and each figure: A, B,
their difference B - A, and both normalised per second of trace (first to
last event) and per GiB of guest RAM (a process: of its manifest regions).
Sections:

* ``observed``: the counts read from the events (``VmAnalysis.observed``);
* ``baseline``: what the traced kernel did, reconstructed (the replay's
  baseline policy: unmap calls, zapped pages, flushes, ...);
* ``predicted:POLICY``: what POLICY's replay of A predicts (A's column)
  against what B's kernel did (B's baseline): with B recorded on a kernel
  carrying the patch POLICY models, the two should agree, per second.

    >>> cmp = compare(analysis_a, analysis_b, policies=["numa-protect"])  # doctest: +SKIP
    >>> cmp.pairs[0].rows[0].as_json()                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tracereplay.errors import UsageError
from tracereplay.pipeline.analysis import Analysis, Metric, ProcessAnalysis, VmAnalysis
from tracereplay.regress.expect import entity_names
from tracereplay.regress.table import number, table

GIB = 1 << 30
Entity = VmAnalysis | ProcessAnalysis


def _rate(v: float | None, per: float | None) -> float | None:
    return v / per if v is not None and per else None


def _sub(b: float | None, a: float | None) -> float | None:
    return b - a if a is not None and b is not None else None


@dataclass(frozen=True)
class Row:
    """One figure of A and of B, their difference, per second and per GiB of guest RAM."""

    metric: str
    unit: str
    a: float | None
    b: float | None
    basis_a: str | None
    basis_b: str | None
    a_per_s: float | None
    b_per_s: float | None
    a_per_gib: float | None
    b_per_gib: float | None

    @property
    def diff(self) -> float | None:
        return _sub(self.b, self.a)

    @property
    def diff_per_s(self) -> float | None:
        return _sub(self.b_per_s, self.a_per_s)

    @property
    def diff_per_gib(self) -> float | None:
        return _sub(self.b_per_gib, self.a_per_gib)

    def as_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else (int(v) if float(v).is_integer() else round(v, 6))

        return {
            "metric": self.metric,
            "unit": self.unit,
            "a": r(self.a),
            "b": r(self.b),
            "basis_a": self.basis_a,
            "basis_b": self.basis_b,
            "diff": r(self.diff),
            "a_per_s": r(self.a_per_s),
            "b_per_s": r(self.b_per_s),
            "diff_per_s": r(self.diff_per_s),
            "a_per_gib": r(self.a_per_gib),
            "b_per_gib": r(self.b_per_gib),
            "diff_per_gib": r(self.diff_per_gib),
        }


@dataclass
class Pair:
    """A VM or process of A matched with one of B, and their rows per section."""

    scope: str  # vm | process
    a: Entity
    b: Entity
    matched_by: str  # name | mapping
    sections: dict[str, list[Row]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "a": {"tgid": self.a.tgid, "name": _name(self.a), "ram_bytes": _ram(self.a)},
            "b": {"tgid": self.b.tgid, "name": _name(self.b), "ram_bytes": _ram(self.b)},
            "matched_by": self.matched_by,
            "sections": {s: [r.as_json() for r in rows] for s, rows in self.sections.items()},
        }


@dataclass
class Comparison:
    a: Analysis
    b: Analysis
    pairs: list[Pair]
    only_a: list[str]  # "vm x (tgid 1)" without a partner in B
    only_b: list[str]
    policies: list[str]  # the predictions shown

    def as_json(self) -> dict[str, Any]:
        def side(x: Analysis) -> dict[str, Any]:
            t = x.trace
            return {
                "path": t.path,
                "format": t.format,
                "kernel": t.kernel,
                "events": t.events,
                "duration_s": t.duration_s,
                "partial": t.partial,
            }

        return {
            "a": side(self.a),
            "b": side(self.b),
            "policies": self.policies,
            "pairs": [p.as_json() for p in self.pairs],
            "only_a": self.only_a,
            "only_b": self.only_b,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=2) + "\n"

    def to_table(self) -> str:
        lines = []
        for label, x in (("A", self.a), ("B", self.b)):
            t = x.trace
            kernel = f", kernel {t.kernel}" if t.kernel else ""
            dur = f"{t.duration_s:,.3f} s" if t.duration_s is not None else "no events"
            partial = "  [PARTIAL]" if t.partial else ""
            lines.append(
                f"{label}  {t.path}  ({t.format}{kernel}; {number(t.events)} events over {dur}){partial}"
            )
        for p in self.pairs:
            how = "" if p.matched_by == "name" else ", mapped"
            lines += [
                "",
                f"{p.scope.upper()} {_name(p.a)} (A: tgid {p.a.tgid}, {_gib(p.a)}) ~ "
                f"{_name(p.b)} (B: tgid {p.b.tgid}, {_gib(p.b)}{how})",
            ]
            for section, rows in p.sections.items():
                lines += ["", f"  {_title(section)}"]
                lines += table(
                    ["metric", "A", "B", "B-A", "A /s", "B /s", "B-A /s", "A /GiB", "B /GiB"],
                    [
                        [
                            r.metric,
                            r.a,
                            r.b,
                            r.diff,
                            r.a_per_s,
                            r.b_per_s,
                            r.diff_per_s,
                            r.a_per_gib,
                            r.b_per_gib,
                        ]
                        for r in rows
                    ],
                    "  ",
                )
        for label, names in (("A", self.only_a), ("B", self.only_b)):
            if names:
                lines += ["", f"Only in {label} (give --map A=B to pair them): {', '.join(names)}"]
        if not self.pairs:
            lines += [
                "",
                "No VM or replayed process of A matches one of B by name: give --map A=B.",
            ]
        return "\n".join(lines) + "\n"


def _title(section: str) -> str:
    if section.startswith("predicted:"):
        policy = section.split(":", 1)[1]
        return f"predicted by {policy} on A (column A) vs observed on B (B's baseline, column B)"
    if section == "baseline":
        return "baseline: what each traced kernel did (reconstructed)"
    return "observed: counted from the events"


def _name(e: Entity) -> str:
    return e.name if isinstance(e, VmAnalysis) else (e.name or e.comm or "")


def _ram(e: Entity) -> int:
    return e.guest_ram_bytes if isinstance(e, VmAnalysis) else e.region_bytes


def _gib(e: Entity) -> str:
    return f"{_ram(e) / GIB:,.2f} GiB" if _ram(e) else "RAM unknown"


def _label(scope: str, e: Entity) -> str:
    return f"{scope} {_name(e)} (tgid {e.tgid})"


def _rows(
    a: dict[str, Metric],
    b: dict[str, Metric],
    a_of: Analysis,
    b_of: Analysis,
    ea: Entity,
    eb: Entity,
) -> list[Row]:
    out = []
    for metric in [*a, *(m for m in b if m not in a)]:
        if metric.endswith("_avoided"):
            continue  # baseline minus the policy: not a figure of the recording
        ma, mb = a.get(metric), b.get(metric)
        some = ma or mb
        va = float(ma.shown) if ma else None
        vb = float(mb.shown) if mb else None
        ga, gb = _ram(ea) / GIB, _ram(eb) / GIB
        out.append(
            Row(
                metric=metric,
                unit=some.unit if some else "count",
                a=va,
                b=vb,
                basis_a=ma.basis if ma else None,
                basis_b=mb.basis if mb else None,
                a_per_s=_rate(va, a_of.trace.duration_s),
                b_per_s=_rate(vb, b_of.trace.duration_s),
                a_per_gib=_rate(va, ga),
                b_per_gib=_rate(vb, gb),
            )
        )
    return out


def _pool(x: Analysis) -> list[tuple[str, Entity]]:
    """The VMs and replayed processes of ``x``, with their scope."""
    out: list[tuple[str, Entity]] = [("vm", e) for e in x.vms]
    return out + [("process", e) for e in x.processes if e.replay]


def _find(pool: list[tuple[str, Entity]], key: str) -> tuple[str, Entity] | None:
    """The entity named ``key`` (a name, or a tgid in decimal)."""
    hits = [
        (s, e) for s, e in pool if (key.isdigit() and e.tgid == int(key)) or key in entity_names(e)
    ]
    return hits[0] if len(hits) == 1 else None


def compare(
    a: Analysis,
    b: Analysis,
    *,
    mapping: dict[str, str] | None = None,
    policies: list[str] | tuple[str, ...] = (),
) -> Comparison:
    """Match A's VMs and replayed processes with B's and compare their figures.

    ``mapping``: A's name or tgid -> B's (a usage error when either is missing);
    ``policies``: add a ``predicted:POLICY`` section per policy.
    """
    pool_a, pool_b = _pool(a), _pool(b)
    matched: list[tuple[str, Entity, Entity, str]] = []
    for ka, kb in (mapping or {}).items():
        fa, fb = _find(pool_a, ka), _find(pool_b, kb)
        for found, key, side, pool in ((fa, ka, "A", pool_a), (fb, kb, "B", pool_b)):
            if found is None:
                known = ", ".join(_label(s, e) for s, e in pool) or "none"
                raise UsageError(
                    f"--map {ka}={kb}: no single VM or process {key!r} in {side} (known: {known})"
                )
        assert fa is not None and fb is not None
        matched.append((fa[0], fa[1], fb[1], "mapping"))
    used_a = {id(x[1]) for x in matched}
    used_b = {id(x[2]) for x in matched}
    for scope, ea in pool_a:
        if id(ea) in used_a:
            continue
        cands = [
            eb
            for s, eb in pool_b
            if s == scope and id(eb) not in used_b and _name(eb) and _name(eb) == _name(ea)
        ]
        if len(cands) == 1:
            matched.append((scope, ea, cands[0], "name"))
            used_a.add(id(ea))
            used_b.add(id(cands[0]))
    for policy in policies:
        if policy not in a.policies:
            raise UsageError(
                f"--policy {policy}: not replayed on A (replayed: {', '.join(a.policies)})"
            )
    pairs = []
    for scope, ea, eb, how in matched:
        pair = Pair(scope, ea, eb, how)
        pair.sections["observed"] = _rows(ea.observed, eb.observed, a, b, ea, eb)
        base_a, base_b = ea.policies.get("baseline", {}), eb.policies.get("baseline", {})
        if base_a or base_b:
            pair.sections["baseline"] = _rows(base_a, base_b, a, b, ea, eb)
        for policy in policies:
            if policy in ea.policies and base_b:
                pair.sections[f"predicted:{policy}"] = _rows(
                    ea.policies[policy], base_b, a, b, ea, eb
                )
        pairs.append(pair)
    return Comparison(
        a=a,
        b=b,
        pairs=pairs,
        only_a=[_label(s, e) for s, e in pool_a if id(e) not in used_a],
        only_b=[_label(s, e) for s, e in pool_b if id(e) not in used_b],
        policies=list(policies),
    )


def parse_mapping(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["A=B", ...]`` (``--map``) as a dict; a usage error for anything else."""
    out = {}
    for item in items:
        ka, sep, kb = item.partition("=")
        if not sep or not ka.strip() or not kb.strip():
            raise UsageError(f"--map {item!r}: expected A_VM=B_VM (a name or tgid on each side)")
        out[ka.strip()] = kb.strip()
    return out


__all__ = ["Comparison", "Pair", "Row", "compare", "parse_mapping"]
