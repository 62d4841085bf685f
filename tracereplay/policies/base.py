"""The policy interface and registry: a policy turns a VM's NUMA-scan chunks into an Outcome.

A policy is one class in one module with a ``name``, a docstring citing the
proposal it models and its exact rules, and a :meth:`Policy.outcome` that turns
one VM's reconstructed NUMA-scan activity into per-chunk quantities (an
:class:`Outcome`), from which the replay engine derives the contract's metrics.
Register it with :func:`register` (built-ins) or the ``tracereplay.policies``
entry-point group (plugins)::

    # my_policy.py
    from tracereplay.policies import Outcome, Policy, register

    @register
    class SkipEverything(Policy):
        '''Never scan anything (a what-if).'''
        name = "skip-everything"
        def outcome(self, vm, ctx):
            return Outcome.nothing(vm)

A plugin that fails to import is reported by :func:`load_plugins`, not fatal.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from tracereplay.contract import METRICS
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
    """Base class: subclasses set ``name`` and implement :meth:`outcome`."""

    name: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def outcome(self, vm: VmActivity, ctx: ReplayContext) -> Outcome:
        raise NotImplementedError

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


__all__ = [
    "ASSUMED",
    "DERIVED",
    "METRICS",
    "OBSERVED",
    "REGISTRY",
    "Metric",
    "Outcome",
    "Policy",
    "ReplayContext",
    "load_plugins",
    "register",
]
