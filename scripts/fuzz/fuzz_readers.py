#!/usr/bin/env python3
"""Coverage-guided fuzzing of the trace readers with atheris (libFuzzer), one target per format.

    pip install atheris
    python scripts/fuzz/fuzz_readers.py TARGET [--store] [libFuzzer options] [CORPUS_DIR ...]

TARGET: trace-dat, perf-data, perfetto, ftrace-text, or ``sniff`` (format
detection and transparent decompression: the gz / zst / xz / bz2 seeds). Each
input is written to a memfd and read by the reader to the end (inputs of odd length
the store's way: the fault rows given as numbers, then split; ``--store``: loaded
into an in-memory DuckDB, as ``ingest`` does). A TraceReplayError
is a clean rejection; any other exception, a signal (libFuzzer's), a timeout
(``-timeout=S``) or an RSS above ``-rss_limit_mb`` is a crash, written as
``crash-<sha1>`` with the traceback on stderr.

Problems of a class listed in tests/fuzz_corpus/known_failures.toml (fixes on
other branches) are tolerated and counted in ./tolerated.json, so the run looks
for new ones; TRACEREPLAY_FUZZ_STRICT=1 treats them as crashes too.

The seeds (tests/fuzz_inputs.py: tiny synthetic traces, the fixtures' perf
files, the samples, the regression corpus) are written to
``$TMPDIR/tracereplay-atheris/seeds-TARGET`` and given to libFuzzer after the
corpus directories of the command line. Compiled (numba) functions cannot be
instrumented; the Python around them is.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

TARGETS = ("trace-dat", "perf-data", "perfetto", "ftrace-text", "sniff")
_NUMBA = re.compile(r"^\s*(?:from numba|import numba)\b", re.M)


def numba_modules() -> list[str]:
    """Modules with compiled functions: atheris' bytecode patches would break numba's typing."""
    found = []
    for path in sorted((REPO / "tracereplay").rglob("*.py")):
        if _NUMBA.search(path.read_text()):
            rel = path.relative_to(REPO).with_suffix("")
            found.append(".".join(rel.parts))
    return found


def instrument() -> None:
    """Import tracereplay instrumented, except compiled functions (patched function by function)."""
    import importlib

    import atheris

    compiled = numba_modules()
    with atheris.instrument_imports(include=["tracereplay"], exclude=compiled):
        import tracereplay.readers
        import tracereplay.store.load

        for name in TARGETS[:4]:
            tracereplay.readers.reader_class(name)
    for name in compiled:
        module = importlib.import_module(name)
        for obj in list(vars(module).values()):
            for fn in _plain_functions(obj, name):
                atheris.instrument_func(fn)


def _plain_functions(obj: object, module: str) -> list[types.FunctionType]:
    if isinstance(obj, types.FunctionType) and obj.__module__ == module:
        return [obj]
    if isinstance(obj, type) and obj.__module__ == module:
        out = []
        for member in vars(obj).values():
            member = getattr(member, "__func__", member)  # staticmethod / classmethod
            if isinstance(member, types.FunctionType):
                out.append(member)
        return out
    return []


def write_seeds(target: str, directory: Path) -> None:
    import fuzz_inputs as F
    import fuzz_oracle as O

    shutil.rmtree(directory, ignore_errors=True)  # the corpus and its known list change
    directory.mkdir(parents=True)
    seeds = F.small_seeds(directory.parent / "work")
    for s in seeds:
        wanted = (
            s.compression is not None
            if target == "sniff"
            else (s.fmt == target and not s.compression)
        )
        if wanted:
            (directory / f"{s.name}-{s.label.replace('+', '.')}").write_bytes(s.data)
    # inputs of a class too slow or too big to run while broken (bombs) would only time out
    skip = {i for c in O.known_classes() if not c.run for i in c.inputs}
    for path in sorted(O.CORPUS.glob("*/*")):
        if f"{path.parent.name}/{path.name}" in skip:
            continue
        fmt = path.parent.name
        compressed = path.suffix in (".gz", ".zst", ".xz", ".bz2")
        if (fmt == target and not compressed) or (target == "sniff" and compressed):
            (directory / f"corpus-{path.name}").write_bytes(path.read_bytes())


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] not in TARGETS:
        sys.exit(
            f"usage: fuzz_readers.py {{{'|'.join(TARGETS)}}} [--store] [libFuzzer options] [DIR ...]"
        )
    target, rest = args[0], args[1:]
    store = "--store" in rest
    rest = [a for a in rest if a != "--store"]
    import atheris

    instrument()
    import fuzz_oracle as O

    from tracereplay.errors import TraceReplayError
    from tracereplay.readers import open_trace, reader_class

    classes = [] if os.environ.get("TRACEREPLAY_FUZZ_STRICT") else O.known_classes()
    tolerated: dict[str, int] = {}
    fd = os.memfd_create("tracereplay-fuzz")
    path = f"/proc/self/fd/{fd}"
    cls = None if target == "sniff" else reader_class(target)

    def one_input(data: bytes) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        try:
            reader = open_trace(path) if cls is None else cls(path)
            if store:
                import duckdb

                from tracereplay.store.load import build

                con = duckdb.connect(":memory:")
                try:
                    build(con, reader)
                finally:
                    con.close()
            elif len(data) % 2 and hasattr(reader, "numbers_only"):
                # half the inputs (by length, so a crash reproduces) take the store's
                # read: fault rows given as numbers (numbers_only), then split_batches
                from tracereplay.store.load import store_batches
                from tracereplay.store.split import split_batches

                for _part in split_batches(store_batches(reader)):
                    pass
            else:
                for _batch in reader.batches():
                    pass
        except TraceReplayError:
            return
        except Exception as e:
            problem = f"[{target}] ingest: exit 1: tracereplay: error: internal error: {type(e).__name__}: {e}"
            known = O.known_class(problem, classes)
            if known is None:
                raise
            tolerated[known] = tolerated.get(known, 0) + 1
            # libFuzzer ends the process from C (no atexit): keep the counts on disk
            Path("tolerated.json").write_text(json.dumps(tolerated))

    seeds = Path(tempfile.gettempdir()) / "tracereplay-atheris" / f"seeds-{target}"
    write_seeds(target, seeds)
    # compile the decoders (numba, minutes when bounds-checked) before libFuzzer's clock runs
    for seed in sorted(seeds.iterdir()):
        with contextlib.suppress(Exception):
            one_input(seed.read_bytes())
    dirs = [a for a in rest if not a.startswith("-")]
    flags = [a for a in rest if a.startswith("-")]
    atheris.Setup([sys.argv[0], *flags, *dirs, str(seeds)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
