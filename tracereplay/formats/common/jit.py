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

Loading from that cache skips numba's context refresh (:func:`load_without_refresh`):
it was a fifth of a second of one CPU at the start of every run.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "announce_compile",
    "int64",
    "load_without_refresh",
    "machine_code_cached",
    "readonly",
    "set_compile_notices",
]

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


def load_without_refresh() -> bool:
    """Load compiled functions from numba's cache without refreshing its target context.

    numba's ``Cache.load_overload`` first refreshes the context: it imports and registers
    every typing and lowering implementation numba has (numpy's linalg, random, typed
    containers, ...), 0.2 s of one CPU, the GIL held, before the first batch of every
    run. Only compiling uses them; code loaded from the cache needs the runtime (NRT)
    alone, which is initialized here. A load that misses refreshes as before (the
    compile that follows needs it), and numba's compiler refreshes both contexts
    itself (``CompilerBase.__init__``), so later compilations see every implementation.

    Only tracereplay's own functions load this way (their machine code needs the
    runtime, numba's helper library and the modules their environments import, which
    loading imports: checked with ``nm -u`` on every cached entry); anyone else's in
    the same process loads as numba does. Written against ``numba.core.caching.Cache``
    of numba 0.60-0.68 (tested on 0.68.1): on another numba, or without these
    internals, it returns False and changes nothing.
    """
    try:
        import numba
        from numba.core import caching
        from numba.core.runtime import nrt
    except ImportError:
        return False
    cache = caching.Cache
    original = cache.load_overload
    if getattr(original, "_without_refresh", False):
        return True
    version = tuple(int(p) for p in re.findall(r"\d+", numba.__version__)[:2])
    needed = ("_load_overload", "_guard_against_spurious_io_errors")
    if not (0, 60) <= version < (0, 69) or not all(hasattr(cache, n) for n in needed):
        return False
    if not hasattr(nrt, "rtsys"):
        return False

    def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        module = getattr(getattr(self, "_py_func", None), "__module__", None) or ""
        if not module.startswith("tracereplay."):
            return original(self, sig, target_context)
        nrt.rtsys.initialize(target_context)  # the loaded code allocates through it
        found = None
        with self._guard_against_spurious_io_errors():
            found = self._load_overload(sig, target_context)
        return found if found is not None else original(self, sig, target_context)

    load_overload._without_refresh = True  # type: ignore[attr-defined]
    setattr(cache, "load_overload", load_overload)  # noqa: B010 (a method of numba's class)
    return True


load_without_refresh()
