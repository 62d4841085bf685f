"""What the compiled (numba) loops share besides their code: one array type per argument,
and a notice when a reader's machine code is not compiled yet.

numba compiles a function once per distinct argument type, and a read-only
array (``np.frombuffer`` of bytes) is another type than a writable one, as is
an int32 array than an int64 one. Callers pass their arrays through
:func:`readonly` / :func:`int64` so each compiled entry point has one
signature: one compilation, and one entry in the cache that the wheel ships
(compiled at build time for the machine that builds it, see
``scripts/wheel/precompile.py``).

When that cache does not fit (another CPU, another numba, a source checkout)
the first read compiles for several seconds; :func:`announce_compile` says so
on stderr before it starts, once per decoder and process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["announce_compile", "int64", "machine_code_cached", "readonly", "set_compile_notices"]

# TRACEREPLAY_QUIET=1 silences the notice as the CLI's --quiet does (set_compile_notices)
_notices = os.environ.get("TRACEREPLAY_QUIET", "") in ("", "0")
_announced: set[str] = set()
_A = TypeVar("_A", bound=np.ndarray)


def readonly(a: _A) -> _A:
    """A read-only view of ``a`` (``a`` itself when it is read-only already)."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def int64(a: np.ndarray) -> npt.NDArray[np.int64]:
    """``a`` as a contiguous int64 array (no copy when it is one)."""
    return np.ascontiguousarray(a, dtype=np.int64)


def set_compile_notices(enabled: bool) -> None:
    """Turn the first-run compile notice on or off (the CLI's ``--quiet``)."""
    global _notices
    _notices = enabled


def machine_code_cached(dispatcher: Any) -> bool:
    """Whether a compiled function needs no compilation: compiled in this process already,
    or its cache index (numba's ``.nbi`` file, which is empty when stale or from another
    numba) has an entry for this machine's CPU. True when it cannot tell."""
    if getattr(dispatcher, "signatures", None):
        return True
    try:
        magic = dispatcher.targetctx.codegen().magic_tuple()
        index = dispatcher._cache._cache_file._load_index()
        return any(key[1] == magic for key in index)
    except Exception:  # numba's internals moved: say nothing rather than something wrong
        return True


def announce_compile(what: str, dispatchers: Sequence[Any], seconds: int) -> None:
    """One line on stderr when ``dispatchers`` (a decoder's compiled entry points) are not
    compiled for this machine yet: the first read then compiles them for ``seconds``."""
    if not _notices or what in _announced:
        return
    _announced.add(what)
    if all(machine_code_cached(d) for d in dispatchers):
        return
    print(
        f"tracereplay: compiling the {what} for this machine, first run only, "
        f"about {seconds} s",
        file=sys.stderr,
        flush=True,
    )
