"""The policy interface and registry: a policy turns a VM's NUMA-scan chunks into an Outcome.

A policy is one class in one module with a ``name``, a docstring citing the
proposal it models and its exact rules, and a :meth:`Policy.outcome` that turns
one VM's reconstructed NUMA-scan activity into per-chunk quantities (an
:class:`Outcome`), from which the replay engine derives the contract's metrics.
It explains itself to users (``tracereplay policies``, the report's legend)
through ``proposal``, ``rules`` and ``legend``, declares its parameters in
``parameters`` (checked on construction, :mod:`tracereplay.params`), and says
why it changed nothing for a VM through :meth:`Policy.why_unchanged`.
Register it with :func:`register` (built-ins) or the ``tracereplay.policies``
entry-point group (plugins)::

    # my_policy.py
    from tracereplay.policies import Outcome, Policy, register

    @register
    class SkipEverything(Policy):
        '''Never scan anything (a what-if).'''
        name = "skip-everything"
        proposal = "none (a what-if)"
        legend = "nothing is ever scanned"
        rules = "No NUMA-scan work at all: every count is 0."
        def outcome(self, vm, ctx):
            return Outcome.nothing(vm)

A plugin that fails to import is reported by :func:`load_plugins`, not fatal.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from tracereplay.contract import METRICS
from tracereplay.params import Param, ParamError, check_params
from tracereplay.reconstruct.kernel import KernelModel
from tracereplay.reconstruct.model import VmActivity
from tracereplay.reconstruct.pages import PageRun

OBSERVED, DERIVED, ASSUMED = "observed", "derived", "assumed"


@dataclass(frozen=True)
class Metric:
    value: float
    basis: str

    def as_json(self) -> dict[str, Any]:
        v: Any = int(self.value) if float(self.value).is_integer() else round(float(self.value), 3)
        return {"value": v, "basis": self.basis}


@dataclass
class ReplayContext:
    """What every policy may look at besides the VM: the traced kernel's behaviour."""

    kernel: KernelModel
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """Per-chunk counterfactual quantities of one policy; metrics derive from it uniformly.

    Arrays have one entry per NUMA-scan invalidation of the VM.
    """

    invalidates: np.ndarray  # notifier calls still sent for this chunk (bool or count)
    unmap_calls: np.ndarray  # calls into KVM's unmap path that touch memslots
    zapped: np.ndarray  # guest pages whose SPTE is zapped
    flushes: np.ndarray  # KVM remote TLB flush requests
    pte_updates: np.ndarray  # 4 KiB pages made PROT_NONE
    host_flush: np.ndarray  # host TLB flushes still sent after this chunk (bool or count)
    scans: bool = True  # the VM's memory is still NUMA-balanced at all
    protects_pinned: bool = True  # pinned pages are still made PROT_NONE
    huge_updates: np.ndarray | None = None  # huge PMDs made PROT_NONE (None: none)
    hint_faults: int | None = None  # None: one per PTE update (assumed)
    refaults: int | None = None  # None: one per zapped page (assumed)
    # NUMA migration calls (ok, failed) and pages its hint faults trigger, from the
    # page model (None: the baseline's, minus failures when pinned pages are spared)
    migrations: tuple[int, int, int] | None = None
    # the page replay the page quantities came from (per piece: where the zaps fell, for the
    # report's heat map); None for outcomes not built by :meth:`from_pages`
    pages: PageRun | None = None

    @staticmethod
    def from_pages(
        run: PageRun,
        *,
        invalidates: np.ndarray,
        unmap_calls: np.ndarray,
        flushes: np.ndarray,
        host_flush: np.ndarray,
        protects_pinned: bool = False,
    ) -> Outcome:
        """A policy's outcome whose page quantities (pages zapped, PTE and huge PMD
        updates, hint faults, refaults, migrations) come from its page replay."""
        return Outcome(
            invalidates=invalidates,
            unmap_calls=unmap_calls,
            zapped=run.zapped_pages,
            flushes=flushes,
            pte_updates=run.made_pages,
            host_flush=host_flush,
            protects_pinned=protects_pinned,
            huge_updates=run.made_huge,
            hint_faults=run.hint_faults,
            refaults=run.refaults,
            migrations=run.migrations,
            pages=run,
        )

    @staticmethod
    def nothing(vm: VmActivity) -> Outcome:
        zeros = np.zeros(vm.n_chunks, np.int64)
        return Outcome(
            zeros.astype(bool),
            zeros,
            zeros,
            zeros,
            zeros,
            zeros.astype(bool),
            False,
            False,
            zeros,
            0,
            0,
        )


class Policy:
    """Base class: subclasses set ``name`` and implement :meth:`outcome`.

    Self-description (shown by ``tracereplay policies`` and the report's legend):
    ``proposal`` the proposal modelled, ``rules`` one paragraph of its rules,
    ``legend`` one line; ``parameters`` the :class:`~tracereplay.params.Param`
    it accepts (``--param NAME.PARAM=VALUE``).
    """

    name: ClassVar[str] = ""
    proposal: ClassVar[str] = ""
    rules: ClassVar[str] = ""
    legend: ClassVar[str] = ""
    parameters: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, **params: Any) -> None:
        # every declared parameter, checked (ParamError, exit 2) and defaulted
        self.params = check_params(self.name, self.parameters, params)

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        raise NotImplementedError

    def why_unchanged(self, vm: VmActivity, ctx: ReplayContext) -> str:
        """Why this policy's counts equal the baseline's for ``vm`` (asked only when they do).

        Subclasses name the fact of the trace or manifest their rules depend on.
        """
        if vm.n_chunks == 0:
            return "no NUMA-scan invalidation of this VM in the trace: nothing to change"
        return "its rules give the same counts as the baseline for this trace"

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.name


PolicyType = TypeVar("PolicyType", bound=type[Policy])
REGISTRY: dict[str, type[Policy]] = {}
PLUGIN_ERRORS: list[str] = []


def register(cls: PolicyType) -> PolicyType:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    REGISTRY[cls.name] = cls
    return cls


def load_plugins(group: str = "tracereplay.policies") -> list[str]:
    """Import entry-point policies; returns (and remembers) the ones that failed."""
    errors = []
    for ep in importlib.metadata.entry_points(group=group):
        try:
            obj: Any = ep.load()
            if isinstance(obj, type) and issubclass(obj, Policy) and obj.name not in REGISTRY:
                register(obj)
        except Exception as e:  # a broken plugin must not break analyze
            errors.append(
                f"policy plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}"
            )
    PLUGIN_ERRORS.extend(errors)
    return errors


def policy_factory(name: str) -> Callable[..., Policy]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown policy {name!r} (known: {', '.join(sorted(REGISTRY))})") from None


class UnknownPolicyError(ParamError):
    """A policy name not in the registry (exit 2)."""


def check_policy_names(names: Iterable[str], context: str = "") -> None:
    """Raise :class:`UnknownPolicyError` naming the known policies if any of ``names`` is unknown."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UnknownPolicyError(
            f"unknown policy {', '.join(repr(n) for n in unknown)}{context} "
            f"(known: {', '.join(sorted(REGISTRY))}; see `tracereplay policies`)"
        )


def check_policy_params(params: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, Any]]:
    """``{policy: {param: value}}`` checked against each policy's declaration, defaults filled.

    Unknown policies, unknown parameters and bad values raise a
    :class:`~tracereplay.params.ParamError` (exit 2) naming the valid list.
    """
    for policy, given in params.items():
        check_policy_names([policy], f" in parameter {policy}.{next(iter(given), '')}")
    return {p: check_params(p, REGISTRY[p].parameters, given) for p, given in params.items()}


__all__ = [
    "ASSUMED",
    "DERIVED",
    "METRICS",
    "OBSERVED",
    "REGISTRY",
    "Metric",
    "Outcome",
    "Param",
    "Policy",
    "ReplayContext",
    "UnknownPolicyError",
    "check_policy_names",
    "check_policy_params",
    "load_plugins",
    "register",
]
