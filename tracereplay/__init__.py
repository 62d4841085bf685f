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

from tracereplay.errors import TraceFormatError, TraceReplayError
from tracereplay.manifest import Manifest, load_manifest
from tracereplay.pipeline import Analysis, Session, analyze, open_session
from tracereplay.readers import open_trace
from tracereplay.store import ingest
from tracereplay.version import __version__

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
