"""Publish a lab workload's memory layout where a recorder on the host can find it.

Real VMMs without QMP (cloud-hypervisor, Firecracker, crosvm) give a recorder no
way to learn where guest RAM lives. The lab workloads do: they keep a memfd
named :data:`LAB_MEMFD` open whose content is a JSON document::

    {"kind": "vm", "comm": "tr-kvm-vmm", "vcpus": 2,
     "memslots": [{"slot": 0, "hva_start": 140..., "size": 268435456, "gpa_start": 0}],
     "pinned": [{"hva_start": 140..., "size": 67108864, "how": "io_uring ..."}]}

(``"kind": "process"`` with ``"regions"`` and ``"threads"`` for the plain
threads workload). ``tracereplay record`` sees the fd among the process's
``/proc/PID/fd`` links (``/memfd:tracereplay-lab (deleted)``) while it looks
for ``anon_inode:kvm-vm``, and reads it through ``/proc/PID/fd/N``. A memfd
lives exactly as long as the process: no stale files, no pid reuse confusion.

(Named anonymous VMAs, ``PR_SET_VMA_ANON_NAME``, would show the layout in
/proc/PID/maps instead, but need CONFIG_ANON_VMA_NAME, which this machine's
kernel lacks, and naming part of a VMA splits it.)

Stand-alone on purpose: the lab child imports it without the tracereplay package.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["LAB_MEMFD", "PIN_HOW", "publish_layout"]

LAB_MEMFD = "tracereplay-lab"
PIN_HOW = "io_uring IORING_REGISTER_BUFFERS (FOLL_LONGTERM)"


def publish_layout(doc: dict[str, Any]) -> int:
    """Write ``doc`` as JSON into a new memfd named :data:`LAB_MEMFD`; returns its fd.

    Keep the fd open for as long as the layout holds (the process's lifetime);
    it is close-on-exec, so children do not inherit it.
    """
    fd = os.memfd_create(LAB_MEMFD, os.MFD_CLOEXEC)
    data = json.dumps(doc).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return fd
