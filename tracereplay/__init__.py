"""tracereplay: counterfactual replay of NUMA-balancing activity in kernel traces.

Library entry points (the CLI is a thin layer over these)::

    from tracereplay import open_trace, ingest
    reader = open_trace("trace.txt")          # sniffed, or "trace.txt:ftrace-text"
    db = ingest("trace.txt", "trace.duckdb")  # atomic write of the DuckDB store
"""

import os

# tracereplay never calls BLAS; OpenBLAS's idle worker threads would otherwise
# spin on the second CPU while ingest needs it (measured ~4% of an ingest).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tracereplay.errors import TraceFormatError, TraceReplayError
from tracereplay.readers import open_trace
from tracereplay.store import ingest

__all__ = ["TraceFormatError", "TraceReplayError", "ingest", "open_trace"]
__version__ = "0.1.0"
