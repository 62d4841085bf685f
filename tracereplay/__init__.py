"""tracereplay: counterfactual replay of NUMA-balancing activity in kernel traces.

Library entry points (the CLI is a thin layer over these)::

    from tracereplay import analyze, open_trace, ingest
    result = analyze("trace.txt")             # an Analysis; trace.txt.manifest.toml if present
    result.vms[0].policies["numa-protect"]["kvm_unmap_calls"].value
    reader = open_trace("trace.txt")          # sniffed, or "trace.txt:ftrace-text"
    db = ingest("trace.txt", "trace.duckdb")  # atomic write of the DuckDB store
    s = open_session("trace.txt")             # notebooks: replay again and again (docs/API.md)

See :func:`tracereplay.pipeline.analyze` for the arguments and
:class:`tracereplay.pipeline.Analysis` for the result.
"""

import os

# tracereplay never calls BLAS; OpenBLAS's idle worker threads would otherwise
# spin on the second CPU while ingest needs it (measured ~4% of an ingest).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from typing import TYPE_CHECKING, Any

from tracereplay.errors import TraceFormatError, TraceReplayError
from tracereplay.version import __version__

if TYPE_CHECKING:
    from tracereplay.manifest import Manifest, load_manifest
    from tracereplay.pipeline import Analysis, Session, analyze, open_session
    from tracereplay.readers import open_trace
    from tracereplay.store import ingest

# imported when first used: `tracereplay ingest` and the readers need none of the
# pipeline (0.2 s of imports of the replay engine and policies at every start)
_LAZY = {
    "Analysis": "tracereplay.pipeline",
    "Session": "tracereplay.pipeline",
    "analyze": "tracereplay.pipeline",
    "open_session": "tracereplay.pipeline",
    "Manifest": "tracereplay.manifest",
    "load_manifest": "tracereplay.manifest",
    "open_trace": "tracereplay.readers",
    "ingest": "tracereplay.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracereplay' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Analysis",
    "Manifest",
    "Session",
    "TraceFormatError",
    "TraceReplayError",
    "__version__",
    "analyze",
    "ingest",
    "load_manifest",
    "open_session",
    "open_trace",
]
