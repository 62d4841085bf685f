"""One expected value: ``65536``, ``"65536 ± 2 %"``, ``">= 100"``, ``"<= 0.8 × baseline"``.

Grammar (spaces optional, ASCII spellings accepted)::

    condition := [op] target [tolerance]
    op        := "==" | "=" | ">=" | "≥" | "<=" | "≤" | ">" | "<"     (default ==)
    target    := number | [number ("×" | "x" | "*")] reference
    reference := POLICY | POLICY "." METRIC | "observed." METRIC
    tolerance := ("±" | "+-" | "+/-") number ["%"]                  (with == only)

A reference names a figure of the same VM or process: ``baseline`` is the same
metric under the baseline policy, ``baseline.kvm_remote_flushes`` another
metric, ``observed.tlb_flushes`` an observed count. A percentage tolerance is
relative to the target (``100 ± 2 %`` holds for 98..102).

    >>> c = parse_condition("<= 0.8 × baseline")
    >>> c.op, c.factor, c.ref
    ('<=', 0.8, ('baseline', None))
    >>> c.holds(80, 100.0), c.holds(81, 100.0)
    (True, False)
    >>> parse_condition("65536 ± 2 %").holds(64300, None)
    True
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_OPS = {"==": "==", "=": "==", ">=": ">=", "≥": ">=", "<=": "<=", "≤": "<=", ">": ">", "<": "<"}
_NUMBER = r"[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_CONDITION = re.compile(
    rf"""^\s*(?P<op>==|=|>=|≥|<=|≤|>|<)?\s*
    (?:
      (?P<factor>{_NUMBER})\s*(?:×|x|\*)\s*(?P<ref>{_NAME}(?:\.{_NAME})?)
      | (?P<ref_only>{_NAME}(?:\.{_NAME})?)
      | (?P<number>{_NUMBER})
    )\s*
    (?:(?:±|\+/-|\+-)\s*(?P<tol>{_NUMBER})\s*(?P<pct>%)?)?\s*$""",
    re.X,
)


class ConditionError(ValueError):
    """The text is no condition; the message says what one looks like."""


@dataclass(frozen=True)
class Condition:
    """``actual OP factor × reference`` (or ``OP number``), within ``tolerance``."""

    op: str  # == >= <= > <
    number: float | None = None  # the target when there is no reference
    factor: float = 1.0
    ref: tuple[str, str | None] | None = None  # (policy or "observed", metric or None: the same)
    tolerance: float = 0.0
    relative: bool = False  # the tolerance is a fraction of the target
    text: str = ""  # as written

    def target(self, ref_value: float | None) -> float:
        """The value ``actual`` is compared with (``ref_value``: the reference's, if any)."""
        if self.ref is None:
            assert self.number is not None
            return self.number
        if ref_value is None:
            raise ValueError("a condition with a reference needs its value")
        return self.factor * ref_value

    def holds(self, actual: float, ref_value: float | None) -> bool:
        target = self.target(ref_value)
        if self.op == "==":
            slack = abs(target) * self.tolerance if self.relative else self.tolerance
            # the figures are rounded to 3 decimals when shown: compare as shown
            return math.isclose(
                actual, target, rel_tol=0, abs_tol=slack + 5e-10 * max(1, abs(target))
            )
        return {
            ">=": actual >= target,
            "<=": actual <= target,
            ">": actual > target,
            "<": actual < target,
        }[self.op]

    def describe(self, ref_value: float | None) -> str:
        """The reference resolved: ``0.8 × baseline = 104857.6`` (empty without one)."""
        if self.ref is None:
            return ""
        policy, metric = self.ref
        ref = f"{policy}.{metric}" if metric else policy
        factor = "" if self.factor == 1 else f"{_fmt(self.factor)} × "
        return f"{factor}{ref} = {_fmt(self.target(ref_value))}"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(round(float(v), 6))


def _num(text: str) -> float:
    return float(text.replace("_", ""))


def parse_condition(value: object) -> Condition:
    """A number (exact) or a condition string; :class:`ConditionError` when it is neither."""
    if isinstance(value, bool):
        raise ConditionError(f"{value!r} is a boolean, not a number or a condition")
    if isinstance(value, int | float):
        return Condition("==", number=float(value), text=_fmt(float(value)))
    if not isinstance(value, str):
        raise ConditionError(f"{value!r} is neither a number nor a condition string")
    m = _CONDITION.match(value)
    if m is None:
        raise ConditionError(
            f"{value!r} is no condition: expected a number, '123 ± 2 %', '123 ± 5', '>= 100', "
            "'<= 0.8 × baseline' or '== 1 × baseline.kvm_unmap_calls'"
        )
    op = _OPS[m["op"] or "=="]
    if m["tol"] is not None and op != "==":
        raise ConditionError(f"{value!r}: a tolerance (±) goes with an exact value, not with {op}")
    ref_text = m["ref"] or m["ref_only"]
    ref: tuple[str, str | None] | None = None
    if ref_text is not None:
        head, _, metric = ref_text.partition(".")
        ref = (head, metric or None)
        if head == "observed" and not metric:
            raise ConditionError(f"{value!r}: name the observed count, e.g. observed.tlb_flushes")
    tolerance = _num(m["tol"]) if m["tol"] is not None else 0.0
    if tolerance < 0:
        raise ConditionError(f"{value!r}: the tolerance must not be negative")
    return Condition(
        op=op,
        number=_num(m["number"]) if m["number"] is not None else None,
        factor=_num(m["factor"]) if m["factor"] is not None else 1.0,
        ref=ref,
        tolerance=tolerance / 100 if m["pct"] else tolerance,
        relative=bool(m["pct"]),
        text=value.strip(),
    )


__all__ = ["Condition", "ConditionError", "parse_condition"]
