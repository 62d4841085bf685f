"""The low tracereplay modules the lab shares, loaded from their files.

The lab's traced child runs these modules as a stand-alone package without
site-packages (:func:`tracereplay.record.lab.child_command`): importing
``tracereplay`` there is impossible, and would pull in the analysis stack.
:mod:`tracereplay.units` and :mod:`tracereplay.numa_tunables` import nothing
of ours, so the lab loads them by path, once, in either mode.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING


def _load(name: str) -> ModuleType:
    key = f"_tracereplay_shared_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = Path(__file__).resolve().parent.parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(key, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # the same modules, as mypy and the import graph see them
    from tracereplay import numa_tunables, units
else:
    numa_tunables = _load("numa_tunables")
    units = _load("units")

__all__ = ["numa_tunables", "units"]
