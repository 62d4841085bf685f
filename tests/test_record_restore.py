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
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracereplay.manifest import load_manifest
from tracereplay.record.events import PRESETS, STACK_EVENT
from tracereplay.record.lab import lab_lock
from tracereplay.record.recorder import RecordConfig, Recorder, Session, wait_for
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
def top_level_lock():
    # top-level mode writes shared files: another suite's top-level test (or a lab
    # run) must not change them between our two snapshots, and vice versa
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
        elif inst.exists() and (inst / "tracing_on").read_text().strip() == "1":
            return
        time.sleep(0.05)
    pytest.fail("the recorder did not start tracing")


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
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _OURS.add(str(proc.pid))
    try:
        _wait_recording(proc, top_level)
        time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert snapshot(TRACEFS) == before
    assert not (TRACEFS / "instances" / f"tracereplay-{proc.pid}").exists()
    assert proc.returncode == 0, err.decode()
    assert b"stopped early" in err
    m = load_manifest(str(out) + ".manifest.toml")
    assert m.recording["interrupted"] is True
    assert "sched_process_fork" in out.read_text()  # the `sleep` child was traced
