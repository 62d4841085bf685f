"""Reconstruction: processes, VMs, invalidation causes and the pages they cover."""

from tracereplay.reconstruct.kernel import KernelModel, kernel_model
from tracereplay.reconstruct.model import Model, VmActivity, reconstruct

__all__ = ["KernelModel", "Model", "VmActivity", "kernel_model", "reconstruct"]
