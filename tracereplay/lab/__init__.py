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

``scripts/record_fixture.py`` drives them to record the fixtures under
``fixtures/``. These modules need root and Linux; nothing else in the package
imports them.
"""

__all__ = ["kvm_vmm", "layout", "numa", "pinned", "workload"]
