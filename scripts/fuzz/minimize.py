#!/usr/bin/env python3
"""Shrink a failing input while it keeps failing the same way (delta debugging over bytes).

    python scripts/fuzz/minimize.py INPUT OUTPUT [--match REGEX] [--attempts 300]

The input runs through `ingest` and `analyze --strict` (tests/fuzz_oracle.py's
worker); "the same way" is a problem matching --match (default: the class of
its first problem in tests/fuzz_corpus/known_failures.toml, else that
problem's text up to the first digit). Chunks are removed, halving their size
from half the file down to one byte, keeping every removal that still fails.
Truncation problems are not minimized this way (a shorter cut is another cut):
shrink the seed instead.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

import fuzz_oracle as O


def failing(
    worker: O.Worker, data: bytes, suffix: str, pattern: re.Pattern[str], work: str
) -> bool:
    path = Path(work) / f"candidate{suffix}"
    path.write_bytes(data)
    ingest, analyze = worker.run(str(path), work)
    return any(pattern.search(p) for p in O.problems("min", ingest, analyze, name=path.name))


def shrink(data: bytes, still_fails, attempts: int) -> bytes:
    chunk = max(len(data) // 2, 1)
    tries = 0
    while chunk >= 1 and tries < attempts:
        at = 0
        while at < len(data) and tries < attempts:
            candidate = data[:at] + data[at + chunk :]
            tries += 1
            if candidate and still_fails(candidate):
                data = candidate  # keep the removal; retry the same offset
            else:
                at += chunk
        chunk //= 2
    return data


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--match", help="regex a problem must match (default: see above)")
    ap.add_argument("--attempts", type=int, default=300)
    args = ap.parse_args()
    src = Path(args.input)
    suffix = (
        "".join(src.suffixes[-2:]) if src.suffix in (".gz", ".zst", ".xz", ".bz2") else src.suffix
    )
    worker = O.Worker(timeout=60)
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / f"original{suffix}"
        path.write_bytes(src.read_bytes())
        found = O.problems("min", *worker.run(str(path), work), name=path.name)
        if not found:
            sys.exit(f"{src}: does not fail")
        if args.match:
            pattern = re.compile(args.match)
        else:
            cls = next((c for c in O.known_classes() if c.match.search(found[0])), None)
            pattern = (
                cls.match
                if cls
                else re.compile(re.escape(re.split(r"\d", found[0].split("] ", 1)[1])[0]))
            )
        print(f"{src}: {found[0]}\nkeeping: {pattern.pattern}", file=sys.stderr)
        small = shrink(
            src.read_bytes(), lambda d: failing(worker, d, suffix, pattern, work), args.attempts
        )
    worker.close()
    Path(args.output).write_bytes(small)
    print(f"{src.stat().st_size} -> {len(small)} bytes: {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
