"""Declared, checked parameters: of each policy (``--param POLICY.NAME=VALUE``) and of the cost model.

A component declares what it accepts as a tuple of :class:`Param`; :func:`check_params`
turns what a user gave (strings from the command line, numbers from TOML or Python)
into typed values, filling the defaults, and rejects unknown names and bad values
with one message that names the valid list. The same checker serves ``--param``
(a usage error, exit 2) and the ``--costs`` file (bad input, exit 3), so both
answer alike::

    BATCH = Param("batch", int, 1, "pages per .numa_protect() call", min=1)
    check_params("numa-protect", (BATCH,), {"batch": "16"})   # {"batch": 16}
    check_params("numa-protect", (BATCH,), {"batch": "0"})    # ParamError: ... must be >= 1
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tracereplay.errors import TraceReplayError, UsageError

_TYPE_NAMES = {int: "integer", float: "number", bool: "true|false", str: "text"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class ParamError(UsageError):
    """An unknown owner or parameter, or a value out of its declared type or range (exit 2)."""


@dataclass(frozen=True)
class Param:
    """One parameter: its name, Python type (int, float, bool or str), default and range."""

    name: str
    type: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """``integer >= 1, default 1`` — what ``tracereplay policies`` shows."""
        if self.choices:
            kind = "|".join(self.choices)
        else:
            kind = _TYPE_NAMES.get(self.type, self.type.__name__)
        bounds = []
        if self.min is not None:
            bounds.append(f">= {_num(self.min)}")
        if self.max is not None:
            bounds.append(f"<= {_num(self.max)}")
        return f"{kind}{' ' + ', '.join(bounds) if bounds else ''}, default {_num(self.default)}"

    def parse(self, value: object) -> Any:
        """``value`` as this parameter's type, within its range; ValueError names what is wrong."""
        parsed = _convert(self.type, value)
        if self.choices and parsed not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        if self.type in (int, float):
            if isinstance(parsed, float) and not math.isfinite(parsed):
                raise ValueError("must be a finite number")
            if self.min is not None and parsed < self.min:
                raise ValueError(f"must be >= {_num(self.min)}")
            if self.max is not None and parsed > self.max:
                raise ValueError(f"must be <= {_num(self.max)}")
        return parsed


def _num(v: object) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _convert(kind: type, value: object) -> Any:
    expected = _TYPE_NAMES.get(kind, kind.__name__)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected {expected}")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(f"expected an {expected}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""), 0)
            except ValueError:
                pass
        raise ValueError(f"expected an {expected}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ValueError(f"expected a {expected}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected {expected}")
    raise TypeError(f"unsupported parameter type {kind!r}")  # a declaration bug


def check_params(
    owner: str,
    declared: Sequence[Param],
    given: Mapping[str, object],
    *,
    error: type[TraceReplayError] = ParamError,
    where: str = "",
) -> dict[str, Any]:
    """Every declared parameter of ``owner``: the given value, parsed and checked, else its default.

    Raises ``error`` (default :class:`ParamError`, exit 2) for an unknown name or a bad
    value, naming the valid parameters; ``where`` prefixes the message (a file name).
    """
    by_name = {p.name: p for p in declared}
    prefix = f"{where}: " if where else ""
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = ", ".join(f"{owner}.{p.name}" for p in declared) or "none"
        raise error(
            f"{prefix}unknown parameter {', '.join(f'{owner}.{u}' for u in unknown)} "
            f"(known: {known})"
        )
    out = {p.name: p.default for p in declared}
    for name, value in given.items():
        p = by_name[name]
        try:
            out[name] = p.parse(value)
        except ValueError as e:
            raise error(
                f"{prefix}{owner}.{name}={value!r}: {e} ({owner}.{name}: {p.describe()})"
            ) from None
    return out


__all__ = ["Param", "ParamError", "check_params"]
