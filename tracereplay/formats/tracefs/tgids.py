"""Thread-group ids for traces that record none per event (trace.dat)."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["TgidTracker"]

I64 = npt.NDArray[np.int64]

CLONE_THREAD = 0x10000


class TgidTracker:
    """Thread-group ids for traces without a tgid per event (trace.dat has none).

    Exact where the trace shows it: ``task_newtask`` by a parent with
    ``CLONE_THREAD`` puts the child in the parent's group, without it the child
    leads its own; ``sched_process_exec`` makes the task a group leader. A task
    the trace never shows being created is assumed to lead its own group (what
    ``record-tgid`` text shows for single-threaded and main threads); the reader
    counts those assumptions. pid 0 (idle) has no tgid. Saved tgids of the
    trace, when it has them, come first.
    """

    def __init__(self, known: dict[int, int] | None = None) -> None:
        self.saved = dict(known or {})
        self.exact: dict[int, int] = dict(self.saved)
        self.assumed: set[int] = set()

    def apply(
        self, pids: list[int], hit_pids: I64, hit_names: list[str], hit_args: pa.Array
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
        """tgid and null mask of each distinct pid of one batch.

        ``hit_pids``, ``hit_names``, ``hit_args``: the batch's ``task_newtask`` and
        ``sched_process_exec`` events in order, applied before any pid is mapped.
        """
        if len(hit_pids):
            # a few rows (task creations, execs): no columnar machinery needed
            fields = [_fields(a) for a in hit_args.to_pylist()]
            child = [_int(f.get("pid")) for f in fields]
            flags = [_int(f.get("clone_flags")) for f in fields]
            for pid, name, c, fl in zip(hit_pids.tolist(), hit_names, child, flags, strict=True):
                if name == "sched_process_exec":
                    self.exact[pid] = pid
                elif c is not None:
                    parent = self.exact.get(pid, pid)
                    self.exact[c] = parent if (fl or 0) & CLONE_THREAD else c
        given = [self.saved.get(p) if p != 0 else None for p in pids]
        any_given = any(g is not None for g in given)
        out = np.zeros(len(pids), np.int32)
        null = np.zeros(len(pids), bool)
        for k, p in enumerate(pids):
            value = given[k] if any_given else None
            if value is None:
                if p == 0:
                    null[k] = True
                    continue
                if p in self.exact:
                    value = self.exact[p]
                else:
                    self.assumed.add(p)
                    value = p
            elif p not in self.exact:
                self.assumed.add(p)
            out[k] = value
        return out, null


def _fields(args: str | None) -> dict[str, object]:
    try:
        value = json.loads(args) if args else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
