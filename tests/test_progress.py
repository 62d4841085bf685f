"""Progress bars: drawn on a terminal's stderr for each long step, never elsewhere, off with --quiet."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import pytest
from conftest import FIXTURES, run_cli
from rich.console import Console

import tracereplay.cli.main as main
from tracereplay.cli.progress_bars import terminal_progress
from tracereplay.cli.rich_bars import RichProgress
from tracereplay.progress import NO_PROGRESS, current, track_batches, using

PINNED = str(FIXTURES / "pinned-threads-6.18.txt")
KVM_DAT = str(FIXTURES / "kvm-pinned-6.18.dat")


@pytest.fixture
def fake_terminal(monkeypatch):
    """The CLI's progress drawn into a buffer, as rich would on a terminal."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    monkeypatch.setattr(main, "terminal_progress", lambda: RichProgress(console))
    return buf


def test_analyze_shows_reading_reconstruction_and_each_policy(fake_terminal):
    result = run_cli("analyze", KVM_DAT, "--format", "json")
    assert result.exit_code == 0, result.output
    drawn = fake_terminal.getvalue()
    assert "reading kvm-pinned-6.18.dat" in drawn and " MB" in drawn  # bytes of the file
    assert "reconstructing NUMA-scan activity" in drawn
    for policy in ("baseline", "numa-protect", "pinned-longterm-mm"):
        assert f"replaying {policy}" in drawn
    assert "reading" not in result.stdout  # stdout keeps only the JSON


def test_quiet_draws_nothing(fake_terminal):
    result = run_cli("analyze", PINNED, "--format", "json", "--quiet")
    assert result.exit_code == 0
    assert fake_terminal.getvalue() == ""


def test_synth_and_convert_show_progress(fake_terminal, tmp_path):
    out = str(tmp_path / "s.txt")
    assert run_cli("synth", "vfio-full-pin", "-o", out, "--duration", "1").exit_code == 0
    assert "simulating and writing" in fake_terminal.getvalue()
    fake_terminal.truncate(0)
    fake_terminal.seek(0)
    assert run_cli("convert", PINNED, "-o", str(tmp_path / "p.pftrace")).exit_code == 0
    assert "converting pinned-threads-6.18.txt" in fake_terminal.getvalue()


def test_no_bars_unless_stderr_is_a_terminal():
    assert terminal_progress(io.StringIO()) is NO_PROGRESS
    assert current() is NO_PROGRESS  # the library's default reports nothing


def test_track_batches_reports_bytes_and_events():
    class Reader:
        def bytes_progress(self):
            return (self.at, 100)

    class Batch:
        num_rows = 5

    seen = []

    class Recorder:
        def task(self, description, *, total=None, unit=""):
            import contextlib

            seen.append((description, total, unit))

            class T:
                def advance(self, n=1):
                    pass

                def update(self, *, completed=None, total=None, note=""):
                    seen.append((completed, note))

            return contextlib.nullcontext(T())

    r = Reader()
    r.at = 0

    def batches():
        for at in (40, 90):
            r.at = at
            yield Batch()

    with using(Recorder()):
        assert len(list(track_batches(batches(), r, "reading x"))) == 2
    assert seen == [("reading x", 100, "bytes"), (40, "5 events"), (90, "10 events"), (100, "")]


def _run_on_pty(*args: str) -> tuple[int, str]:
    """Run the real CLI with stderr on a pseudo-terminal; return its exit code and what it drew."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracereplay", *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_real_terminal_gets_bars_and_a_pipe_gets_none():
    code, drawn = _run_on_pty("analyze", PINNED, "--format", "json")
    assert code == 0 and "reading pinned-threads-6.18.txt" in drawn and "replaying" in drawn
    code, drawn = _run_on_pty("analyze", PINNED, "--format", "json", "--quiet")
    assert code == 0 and "reading" not in drawn and "\x1b[" not in drawn
    piped = subprocess.run(
        [sys.executable, "-m", "tracereplay", "analyze", PINNED, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0
    assert "reading" not in piped.stderr and "\x1b[" not in piped.stderr
