"""The recorder leaves tracefs exactly as it found it (root and tracefs only).

Every file the recorder can touch is snapshotted before and after: the
top-level control files, options, the enable and trigger files of every event
it may enable, and the list of instances. Checked after a normal recording,
after an exception in the workload, and after SIGINT / SIGTERM mid-recording
in a real ``tracereplay record`` process, in both buffer modes (private
instance, the default; and ``--top-level``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tracereplay.manifest import load_manifest
from tracereplay.record.events import PRESETS, STACK_EVENT
from tracereplay.record.lab import lab_lock
from tracereplay.record.recorder import RecordConfig, Recorder, Session, run_command, wait_for
from tracereplay.record.tracefs import TRACEFS_PATHS

TRACEFS = next((p for p in TRACEFS_PATHS if (p / "available_events").exists()), None)
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="recording needs root"),
    pytest.mark.skipif(TRACEFS is None, reason="tracefs is not mounted"),
]

_CONTROL = [
    "tracing_on",
    "buffer_size_kb",
    "current_tracer",
    "trace_clock",
    "set_event",
    "set_event_pid",
]


def snapshot(root: Path) -> dict[str, str]:
    """Every top-level file the recorder could change, plus the instance list."""
    files = list(_CONTROL)
    files += [f"options/{o.name}" for o in (root / "options").iterdir()]
    events = {e for evs in PRESETS.values() for e in evs}
    for ev in sorted(events):
        d = f"events/{ev.replace(':', '/')}"
        if (root / d).is_dir():
            files += [f"{d}/enable", f"{d}/trigger", f"{d}/filter"]
    snap = {f: (root / f).read_text() for f in files}
    # other recorders (another engineer's test run) have instances of their own:
    # only instances not named after a live foreign recorder belong to the snapshot
    snap["<instances>"] = " ".join(
        sorted(p.name for p in (root / "instances").iterdir() if not _foreign(p.name))
    )
    return snap


def _foreign(name: str) -> bool:
    pid = name.removeprefix("tracereplay-")
    return pid != name and pid.isdigit() and int(pid) != os.getpid() and pid not in _OURS


_OURS: set[str] = set()  # pids of recorder processes started by these tests


@pytest.fixture(autouse=True)
def top_level_lock(request):
    # top-level mode writes shared files: another suite's top-level test (or a lab
    # run) must not change them between our two snapshots, and vice versa. A
    # recording that switches NUMA balancing on takes this lock itself.
    if request.node.get_closest_marker("takes_numa_lock"):
        yield
        return
    with lab_lock(timeout=120):
        yield


def _record(tmp_path: Path, top_level: bool, workload=None) -> Recorder:
    cfg = RecordConfig(
        output=tmp_path / "t.txt",
        stack=True,
        follow_self=True,
        buffer_kb=1024,
        top_level=top_level,
    )
    rec = Recorder(cfg, log=lambda msg: None)
    rec.run(workload or wait_for(0.3))
    return rec


@pytest.mark.parametrize("top_level", [False, True], ids=["instance", "top-level"])
def test_normal_recording_restores_everything(tmp_path, top_level):
    assert TRACEFS is not None
    before = snapshot(TRACEFS)
    rec = _record(tmp_path, top_level)
    assert snapshot(TRACEFS) == before
    assert rec.tdir is not None
    touched = set(rec.tdir.touched)
    assert {"tracing_on", "buffer_size_kb", "set_event_pid", "options/record-tgid"} <= touched
    assert f"events/{STACK_EVENT.replace(':', '/')}/trigger" in touched
    if top_level:
        assert touched <= set(before)  # the snapshot covers every file it wrote
    else:
        assert not rec.tdir.root.exists()  # its private instance is gone
    m = load_manifest(str(tmp_path / "t.txt.manifest.toml"))
    assert m.recording["lost_events"] == 0 and "vmstat_before" in m.host


@pytest.mark.parametrize("top_level", [False, True], ids=["instance", "top-level"])
def test_exception_in_workload_restores_everything(tmp_path, top_level):
    assert TRACEFS is not None
    before = snapshot(TRACEFS)

    def boom(session: Session) -> None:
        raise RuntimeError("workload failed")

    with pytest.raises(RuntimeError, match="workload failed"):
        _record(tmp_path, top_level, boom)
    assert snapshot(TRACEFS) == before
    assert not (tmp_path / "t.txt").exists()


def _wait_recording(proc: subprocess.Popen[bytes], top_level: bool, timeout: float = 30) -> None:
    """Until the child's tracing is on (its instance exists with tracing_on = 1)."""
    assert TRACEFS is not None
    inst = TRACEFS / "instances" / f"tracereplay-{proc.pid}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if top_level:
            on = (TRACEFS / "set_event_pid").read_text().split()
            if str(proc.pid) in on and (TRACEFS / "tracing_on").read_text().strip() == "1":
                return
        elif _read(inst / "tracing_on") == "1":
            return
        time.sleep(0.05)
    pytest.fail("the recorder did not start tracing")


def _read(path: Path) -> str | None:
    """A tracefs file's value, None while it does not exist: a new instance's
    directory is visible before the kernel has created the files inside it
    (trace_array_create makes the directory, then its events, then tracing_on)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _signal_recorder(
    cmd: list[str], sig: int, top_level: bool, while_recording: Callable[[], None] | None = None
) -> tuple[subprocess.Popen[bytes], bytes]:
    """Start a recorder process, send it ``sig`` once it traces; returns it and its stderr."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _OURS.add(str(proc.pid))
    try:
        _wait_recording(proc, top_level)
        time.sleep(0.2)
        if while_recording is not None:
            while_recording()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, err


@pytest.mark.parametrize(
    "sig, top_level",
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigint-instance", "sigterm-instance", "sigint-top-level"],
)
def test_signal_mid_recording_stops_saves_and_restores(tmp_path, sig, top_level):
    assert TRACEFS is not None
    before = snapshot(TRACEFS)
    out = tmp_path / "sig.txt"
    cmd = [sys.executable, "-m", "tracereplay", "record", "-o", str(out), "--stack"]
    cmd += ["--buffer-kb", "1024", "--command-only"]
    cmd += ["--top-level"] if top_level else []
    cmd += ["--", "sleep", "60"]
    proc, err = _signal_recorder(cmd, sig, top_level)
    assert snapshot(TRACEFS) == before
    assert not (TRACEFS / "instances" / f"tracereplay-{proc.pid}").exists()
    assert proc.returncode == 0, err.decode()
    assert b"stopped early" in err
    m = load_manifest(str(out) + ".manifest.toml")
    assert m.recording["interrupted"] is True
    assert "sched_process_fork" in out.read_text()  # the `sleep` child was traced


NUMA_SYSCTL = Path("/proc/sys/kernel/numa_balancing")
needs_trace_cmd = pytest.mark.skipif(
    shutil.which("trace-cmd") is None, reason="trace-cmd is not installed"
)


@needs_trace_cmd
def test_dat_only_recording_counts_its_events(tmp_path):
    """`record -o X.dat` reports the events it wrote (it once said "0 events")."""
    cfg = RecordConfig(output=tmp_path / "t.dat", follow_self=True, buffer_kb=1024)
    result = Recorder(cfg, log=lambda msg: None).run(run_command(["sh", "-c", "ls / >/dev/null"]))
    report = subprocess.run(
        ["trace-cmd", "report", str(tmp_path / "t.dat")], capture_output=True, text=True, check=True
    ).stdout
    # one line per record (an event or a kernel_stack) of our instance's buffer
    ours = f"tracereplay-{os.getpid()}:"
    records = [ln for ln in report.splitlines() if ln.startswith(ours)]
    assert result.events == len(records) > 0
    m = load_manifest(str(tmp_path / "t.dat.manifest.toml"))
    assert m.recording["events_in_buffer"] == result.events


@pytest.mark.takes_numa_lock
def test_numa_balancing_on_is_restored_after_an_exception(tmp_path):
    before = NUMA_SYSCTL.read_text()
    seen: list[str] = []

    def boom(session: Session) -> None:
        seen.append(NUMA_SYSCTL.read_text().strip())
        raise RuntimeError("workload failed")

    cfg = RecordConfig(output=tmp_path / "t.txt", follow_self=True, buffer_kb=1024)
    cfg.numa_balancing = "on"
    with pytest.raises(RuntimeError, match="workload failed"):
        Recorder(cfg, log=lambda msg: None).run(boom)
    assert seen == ["1"]
    assert NUMA_SYSCTL.read_text() == before


@pytest.mark.takes_numa_lock
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_numa_balancing_on_is_restored_after_a_signal(tmp_path, sig):
    before = NUMA_SYSCTL.read_text()
    out = tmp_path / "n.txt"
    cmd = [sys.executable, "-m", "tracereplay", "record", "-o", str(out), "--buffer-kb", "1024"]
    cmd += ["--numa-balancing", "on", "--command-only", "--", "sleep", "60"]
    seen: list[str] = []
    proc, err = _signal_recorder(cmd, sig, False, lambda: seen.append(NUMA_SYSCTL.read_text()))
    assert seen == ["1\n"]
    assert proc.returncode == 0, err.decode()
    assert NUMA_SYSCTL.read_text() == before
    m = load_manifest(str(out) + ".manifest.toml")
    assert m.host["numa_balancing"] == 1 and m.recording["numa_balancing_switched_on"] is True
    assert m.recording["numa_balancing_outside_recording"] == int(before)


def test_numa_balancing_off_is_warned_about(tmp_path):
    if NUMA_SYSCTL.read_text().strip() != "0":
        pytest.skip("kernel.numa_balancing is not 0 on this host")
    logged: list[str] = []
    cfg = RecordConfig(output=tmp_path / "t.txt", follow_self=True, buffer_kb=1024)
    result = Recorder(cfg, log=logged.append).run(wait_for(0.1))
    assert any("--numa-balancing on" in w for w in result.warnings)
    assert any("kernel.numa_balancing is 0" in line for line in logged)
