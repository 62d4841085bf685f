"""Wheel build hook: ship numba machine code compiled for the building machine.

``pip install .`` builds a wheel, then installs it. This hook compiles the
numba code of a copy of the package (``scripts/wheel/precompile.py``) and adds
numba's cache files to the wheel beside the sources, where numba looks for
them; the first run after the install then loads machine code instead of
compiling it (measured in docs/BENCHMARKS.md, First run). numba checks the
source's content, its own version, Python's and the CPU before using an entry,
so a wheel taken to another machine still works: it compiles there on first
use. Editable installs and sdists skip this step, as does
``TRACEREPLAY_PRECOMPILE=0``; a failure only costs the first run its speed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NumbaCacheHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._stage: str | None = None
        if self.target_name != "wheel" or version == "editable":
            return
        if os.environ.get("TRACEREPLAY_PRECOMPILE", "1") == "0":
            return
        root = Path(self.root)
        self._stage = tempfile.mkdtemp(prefix="tracereplay-precompile-")
        package = Path(self._stage) / "tracereplay"
        shutil.copytree(root / "tracereplay", package, ignore=shutil.ignore_patterns("__pycache__"))
        # numba's cache beside the sources (no NUMBA_CACHE_DIR); pip's isolated build
        # environment is found through PYTHONPATH, so the copy goes in front of it
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
        path = [self._stage, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(PYTHONPATH=os.pathsep.join(path), PYTHONDONTWRITEBYTECODE="1")
        self.app.display_info("tracereplay: compiling the decoders for this machine (~1 min)")
        try:
            done = subprocess.run(
                [sys.executable, str(root / "scripts/wheel/precompile.py"), str(root / "fixtures")],
                cwd=self._stage,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            self.app.display_warning(f"tracereplay: precompiling skipped ({e})")
            return
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            self.app.display_warning("tracereplay: precompiling failed: " + " | ".join(tail))
            return
        self.app.display_info(done.stdout.strip())
        for cached in sorted(package.rglob("__pycache__/*.nb[ic]")):
            rel = cached.relative_to(self._stage).as_posix()
            build_data["force_include"][str(cached)] = rel

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._stage:
            shutil.rmtree(self._stage, ignore_errors=True)
