"""Lab helpers that produce *real* kernel traces on a development machine.

Everything here is pure Python (ctypes + mmap + ioctls, no compiled C):

* :mod:`.pinned`   -- anonymous memory with an io_uring long-term pin
  (FOLL_LONGTERM, what VFIO does to guest RAM, without a device);
* :mod:`.workload` -- multi-threaded page-touching workload over such memory;
* :mod:`.numa`     -- enable NUMA balancing (and shorten its scan delay)
  for the duration of a recording, restoring every setting afterwards;
* :mod:`.kvm_vmm`  -- a minimal KVM VMM whose guest memory is partly pinned;
* :mod:`.layout`   -- how both workloads publish their memory layout to a
  recorder (a memfd found through /proc/PID/fd).

* :mod:`.shared`   -- the size parser and NUMA tunable paths, loaded by file
  (the traced child cannot import ``tracereplay``).

``tracereplay lab`` (:mod:`tracereplay.record.lab`) and
``scripts/record_fixture.py`` drive them; the recorder uses :mod:`.numa` and
:mod:`.layout`. They need root and Linux, and import nothing of ``tracereplay``
but :mod:`.shared`.
"""

__all__ = ["kvm_vmm", "layout", "numa", "pinned", "shared", "workload"]
