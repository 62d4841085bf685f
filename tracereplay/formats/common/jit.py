"""What the compiled (numba) loops share besides their code: one array type per argument.

numba compiles a function once per distinct argument type, and a read-only
array (``np.frombuffer`` of bytes) is another type than a writable one, as is
an int32 array than an int64 one. Callers pass their arrays through
:func:`readonly` / :func:`int64` so each compiled entry point has one
signature: one compilation, and one entry in the cache shipped with the wheel.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["int64", "readonly"]


def readonly(a: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A read-only view of ``a`` (``a`` itself when it is read-only already)."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def int64(a: np.ndarray) -> npt.NDArray[np.int64]:
    """``a`` as a contiguous int64 array (no copy when it is one)."""
    return np.ascontiguousarray(a, dtype=np.int64)
