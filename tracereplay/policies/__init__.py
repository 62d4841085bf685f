"""Policy engines behind one registry; see :mod:`tracereplay.policies.base`."""

from tracereplay.contract import BUILTIN_POLICIES
from tracereplay.policies import baseline, notifier_flag, numa_protect, optout  # noqa: F401  (register)
from tracereplay.policies.base import (
    ASSUMED,
    DERIVED,
    METRICS,
    OBSERVED,
    REGISTRY,
    Metric,
    Outcome,
    Policy,
    ReplayContext,
    load_plugins,
    register,
)

# Replayed by default, in report order (the contract's five, then ours).
DEFAULT_POLICIES = BUILTIN_POLICIES

__all__ = [
    "ASSUMED",
    "DEFAULT_POLICIES",
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
