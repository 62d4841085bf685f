#!/usr/bin/env python3
"""Write the crafted hostile inputs (tests/fuzz_hostile.py) into a directory.

python scripts/fuzz/hostile.py [DIR]      # default /tmp/tracereplay-hostile
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fuzz_hostile import Hostile, hostiles, write_all

__all__ = ["Hostile", "hostiles", "write_all"]

if __name__ == "__main__":
    for h, p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tracereplay-hostile")):
        print(f"{p.stat().st_size:>12,}  {h.expect:17} {p}")
