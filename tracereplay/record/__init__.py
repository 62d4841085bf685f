"""Recording real traces: ``tracereplay record`` and ``tracereplay lab run`` as a library.

* :mod:`.recorder` -- :class:`Recorder`: tracefs instance, events, vmstat, trace + manifest;
* :mod:`.events`   -- the event presets (``--events``);
* :mod:`.tracefs`  -- find/mount tracefs, change files and restore them exactly;
* :mod:`.host`     -- vmstat, NUMA topology and settings;
* :mod:`.procfs`   -- /proc: KVM VM fds, threads, maps, VmPin, the lab layout memfd;
* :mod:`.targets`  -- the manifest's [[vm]] / [[process]] facts of what /proc shows;
* :mod:`.balancing` -- NUMA balancing on for a recording, restored; the host-wide lock;
* :mod:`.qmp`      -- QEMU guest RAM and VFIO pinning from a QMP socket;
* :mod:`.lab`      -- the pinned-VM lab scenario (a tiny KVM guest, part of its RAM pinned), recorded.

Everything here needs Linux and, to record, root. See docs/RECORDING.md.
"""

from tracereplay.record.events import PRESETS, resolve_events
from tracereplay.record.lab import LabConfig, LabResult, lab_run
from tracereplay.record.recorder import (
    RecordConfig,
    Recorder,
    RecordResult,
    Session,
    run_command,
    wait_for,
)
from tracereplay.record.tracefs import RecordError

__all__ = [
    "PRESETS",
    "LabConfig",
    "LabResult",
    "RecordConfig",
    "RecordError",
    "RecordResult",
    "Recorder",
    "Session",
    "lab_run",
    "resolve_events",
    "run_command",
    "wait_for",
]
