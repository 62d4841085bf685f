#!/usr/bin/env python3
"""Compile tracereplay's numba code for this machine, into numba's cache beside the sources.

    python scripts/wheel/precompile.py FIXTURES_DIR

The wheel build hook (``scripts/wheel/hatch_build.py``) runs this on a copy of
the package being built and ships the cache files (``__pycache__/*.nbi``,
``*.nbc``) in the wheel, so the first ``tracereplay analyze`` after
``pip install .`` loads machine code instead of compiling it for half a minute.
numba keys its cache on the source's content, the numba version, the Python
version and the CPU, so the cache is used where those match (the machine that
built the wheel) and ignored elsewhere (the readers then compile, and say so).

Every compiled function is compiled with the argument types of real reads: each
fixture is read by its reader, the text fixture is converted to trace.dat and
Perfetto (the writers' compiled code) and read back in those formats, and the
rare paths no fixture reaches are called directly.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

FIXTURES = (
    "kvm-pinned-6.18.txt.gz",
    "pinned-threads-6.18.txt",
    "kvm-pinned-6.18.dat",
    "perf-tlb-callchain-6.18.data",
    "perf-tlb-pipe-6.18.data",
)


def _read(path: Path) -> int:
    from tracereplay.readers import open_trace

    return sum(batch.num_rows for batch in open_trace(str(path)).batches())


def main(fixtures: Path) -> int:
    import numpy as np

    from tracereplay.formats.common.jit import set_compile_notices
    from tracereplay.formats.text.line_scan import line_cuts
    from tracereplay.writers import write_perfetto, write_trace_dat

    set_compile_notices(False)
    start = time.process_time()
    missing = [name for name in FIXTURES if not (fixtures / name).is_file()]
    if missing:
        print(f"precompile: fixtures missing ({', '.join(missing)}): nothing compiled")
        return 1
    for name in FIXTURES:
        _read(fixtures / name)
    with tempfile.TemporaryDirectory() as tmp:
        for out, write in (("t.dat", write_trace_dat), ("t.perfetto-trace", write_perfetto)):
            write(str(fixtures / FIXTURES[0]), str(Path(tmp) / out))
            _read(Path(tmp) / out)
    # long text blocks only: cut in pieces of a bounded number of lines
    line_cuts(np.frombuffer(b"a\nb\n", np.uint8), 1)
    print(f"precompile: compiled in {time.process_time() - start:.0f} CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
