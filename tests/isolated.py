"""Read a trace in a child process and report its outcome and peak RSS (VmHWM).

Bomb tests measure memory this way: the child's own high-water mark, not
``RUSAGE_CHILDREN`` of the test process (which keeps the largest of every child
any earlier test started).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

_CHILD = """
import json, sys
from tracereplay.errors import TraceReplayError
from tracereplay.readers import open_trace
try:
    r = open_trace(sys.argv[1])
    n = 0
    for b in r.batches():
        n += b.num_rows
    res = {"events": n, "partial": r.meta.partial, "warnings": r.meta.warnings}
except TraceReplayError as e:
    res = {"error": str(e), "exit_code": e.exit_code}
with open("/proc/self/status") as f:
    hwm = next(line for line in f if line.startswith("VmHWM:")).split()[1]
res["peak_rss_mb"] = int(hwm) // 1024
print(json.dumps(res))
"""


def read_isolated(path: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Outcome of reading ``path`` in a fresh interpreter: ``events``/``partial``/``warnings``
    or ``error``, and ``peak_rss_mb``. Any other exception fails (it is a bug)."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, path],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
