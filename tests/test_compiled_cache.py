"""The compiled code's first run: one signature per entry point, a cache that survives being
moved (what the wheel ships), and the notice when a decoder has to compile."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import FIXTURES

from tracereplay.formats.common import jit

_SOURCE = """
from numba import njit


@njit(cache=True)
def twice(x):
    return 2 * x
"""


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def notices(monkeypatch):
    monkeypatch.setattr(jit, "_notices", True)
    monkeypatch.setattr(jit, "_announced", set())


def test_notice_when_cold_silence_when_cached_and_again_when_the_source_changed(
    tmp_path, capsys, notices
):
    src = tmp_path / "tiny_decoder.py"
    src.write_text(_SOURCE)
    cold = _load(src, "tiny_cold")
    assert not jit.machine_code_cached(cold.twice)
    jit.announce_compile("tiny decoder", [cold.twice], 3)
    jit.announce_compile("tiny decoder", [cold.twice], 3)  # once per process
    err = capsys.readouterr().err
    assert err == "tracereplay: compiling the tiny decoder for this machine, first run only, about 3 s\n"
    assert cold.twice(21) == 42  # compiles and writes the cache
    assert jit.machine_code_cached(cold.twice)
    # a new process would see only the cache: a fresh dispatcher of the same file
    assert jit.machine_code_cached(_load(src, "tiny_warm").twice)
    jit._announced.clear()
    jit.announce_compile("tiny decoder", [_load(src, "tiny_warm2").twice], 3)
    assert capsys.readouterr().err == ""
    # numba keys the cache on the source's content: an edit makes it cold again
    src.write_text(_SOURCE.replace("2 * x", "x + x"))
    assert not jit.machine_code_cached(_load(src, "tiny_edited").twice)


def test_quiet_turns_the_notice_off(tmp_path, capsys, notices):
    src = tmp_path / "quiet_decoder.py"
    src.write_text(_SOURCE)
    jit.set_compile_notices(False)
    jit.announce_compile("quiet decoder", [_load(src, "quiet").twice], 3)
    assert capsys.readouterr().err == ""


def test_cache_moved_with_its_sources_is_used(tmp_path):
    """What the wheel build does: compile in one directory, ship the files, load elsewhere.
    numba's source stamp is a content hash, so new paths and mtimes keep the cache valid."""
    built = tmp_path / "built"
    built.mkdir()
    (built / "moved_decoder.py").write_text(_SOURCE)
    build = "import sys; sys.path.insert(0, sys.argv[1]); import moved_decoder as m; m.twice(4)"
    # numba's own cache beside the sources, as the wheel build uses it
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    subprocess.run([sys.executable, "-c", build, str(built)], check=True, env=env)
    assert list((built / "__pycache__").glob("moved_decoder.twice-*.nbi"))
    installed = tmp_path / "site" / "pkg"
    shutil.copytree(built, installed)  # new path, new mtimes, same content
    check = (
        "import sys; sys.path.insert(0, sys.argv[1]); import moved_decoder as m\n"
        "from tracereplay.formats.common.jit import machine_code_cached\n"
        "print(machine_code_cached(m.twice), m.twice(4), sum(m.twice.stats.cache_hits.values()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check, str(installed)], check=True, env=env, capture_output=True, text=True
    ).stdout.split()
    assert out == ["True", "8", "1"]


_ONE_SIGNATURE = """
import sys
from numba.core.registry import CPUDispatcher
from tracereplay.readers import open_trace
from tracereplay.writers import write_perfetto

write_perfetto(sys.argv[2], sys.argv[1])  # the Perfetto reader has no fixture of its own
for path in sys.argv[1:]:
    assert sum(b.num_rows for b in open_trace(path).batches()) > 0, path
seen = 0
for name, module in list(sys.modules.items()):
    if not name.startswith("tracereplay."):
        continue
    for obj in vars(module).values():
        if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == name:
            assert len(obj.signatures) <= 1, (name, obj.py_func.__qualname__, obj.signatures)
            seen += len(obj.signatures)
print(seen)
"""


def test_every_compiled_entry_point_has_one_signature(tmp_path):
    """The cache the wheel ships holds one signature per function, the one real reads use:
    a second one (a writable buffer, int32 codes) would compile again on first use.
    In a child: the tests here call compiled functions with other argument types."""
    names = [
        "kvm-pinned-6.18.txt.gz",
        "pinned-threads-6.18.txt",
        "kvm-pinned-6.18.dat",
        "pinned-threads-6.18.dat",
        "perf-tlb-callchain-6.18.data",
        "perf-tlb-pipe-6.18.data",
    ]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _ONE_SIGNATURE,
            str(tmp_path / "t.perfetto-trace"),
            *(str(FIXTURES / n) for n in names),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) >= 12  # the text, ring-buffer, perf and column loops at least


_LIGHT_LOAD = """
import sys
import numpy as np
from numba import njit
from tracereplay.formats.common.jit import load_without_refresh
from tracereplay.readers import open_trace

from numba.core import base

assert load_without_refresh()  # installed when the readers were imported: still True
refreshes = []
refresh = base.BaseContext.refresh


def counted(self):
    refreshes.append(type(self).__name__)
    return refresh(self)


base.BaseContext.refresh = counted
rows = sum(b.num_rows for b in open_trace(sys.argv[1]).batches())
refreshed = bool(refreshes)
hits = 0
for name, module in list(sys.modules.items()):
    if name.startswith("tracereplay."):
        for obj in vars(module).values():
            stats = getattr(obj, "stats", None)
            if stats is not None and hasattr(stats, "cache_hits"):
                hits += sum(stats.cache_hits.values())


@njit  # compiled now (no cache): the compiler refreshes the context itself
def medians(a):
    seen = dict()  # a typed dict and np.median: implementations a refresh registers
    for v in a:
        seen[v] = 1
    return np.median(a), len(seen)


print(rows, hits > 0, refreshed, medians(np.array([3.0, 1.0, 2.0, 2.0])))
"""


def test_cached_decoders_load_without_a_context_refresh_and_compiling_still_works():
    """A run whose decoders all come from the cache never refreshes numba's context (0.2 s of
    imports and registrations), and a function compiled afterwards still sees every
    implementation (numpy's median, typed dicts). Fails if a numba upgrade stops the light path."""
    trace = str(FIXTURES / "pinned-threads-6.18.txt")
    run = [sys.executable, "-c", _LIGHT_LOAD, trace]
    subprocess.run(run, check=True, capture_output=True)  # warms the cache if it is cold
    out = subprocess.run(run, check=True, capture_output=True, text=True).stdout.strip().split(maxsplit=3)
    assert out == ["10778", "True", "False", "(2.0, 3)"]
