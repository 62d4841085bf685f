"""Counterfactual replay of the reconstructed model through the policy engines."""

from tracereplay.replay.cost import CostModel, load_costs
from tracereplay.replay.engine import ReplayResult, VmResult, replay, write_metrics

__all__ = ["CostModel", "ReplayResult", "VmResult", "load_costs", "replay", "write_metrics"]
