"""The canonical event schema every reader yields: one row per event, fields as JSON args.

One Arrow record batch layout for all formats, so that the store, the
reconstruction and the format-parity tests never care where an event came from.

Column conventions:

* ``ts``: signed 64-bit nanoseconds in the trace clock (text traces print
  seconds with 6 or 9 decimals; counter clocks are kept as raw integers).
* ``seq``: position of the record in the source (line number for text, record
  number for binary formats); orders events with equal ``ts``.
* ``pid`` is the kernel task id (thread id), ``tgid`` the process id when the
  trace carries it (``record-tgid``, perf ``pid/tid``), else null.
* ``system`` is the tracepoint subsystem when the format says it or the event is
  a well-known one; null otherwise.
* ``args`` is a JSON object of the event's fields by their *format-file names*.
  Unsigned 64-bit fields are always their unsigned value, in every format and
  writer: a kernel address such as ``kvm_exit.guest_rip`` is
  18446744072535352624, never a negative two's complement (the typed DuckDB
  tables use UBIGINT for the same reason). Fixed arrays (``sys_enter.args``)
  are JSON lists. Syscall events are ``sys_enter_<name>`` / ``sys_exit_<name>``
  (system ``syscalls``) whatever the layout; text lacks ``__syscall_nr``, which
  the kernel does not print.
  For the events in :mod:`tracereplay.formats.common.known_events` the values are
  normalized whatever the input format: integers as JSON numbers (unsigned
  fields as their unsigned value, so ``pages:-1`` becomes 18446744073709551615),
  ``__print_symbolic`` fields as the printed symbol, code pointers as the bare
  symbol name, cpumasks as the kernel's list format (``0-3,8``). For other
  events, text inputs keep every ``key=value`` pair as printed (strings) and a
  payload that is not ``key=value`` shaped is kept whole under ``"_text"``.
* ``stack``: kernel stack frames (symbol names, innermost first) when the trace
  recorded a stack for this event, else null.

Strings are Arrow large_string (what polars produces: no copy on the way to
DuckDB). Addresses in typed tables are stored as UBIGINT (see
:mod:`tracereplay.store.schema`).
"""

from __future__ import annotations

import pyarrow as pa

EVENT_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("cpu", pa.int32()),
        pa.field("pid", pa.int32()),
        pa.field("tgid", pa.int32()),
        pa.field("comm", pa.large_string()),
        pa.field("system", pa.large_string()),
        pa.field("name", pa.large_string(), nullable=False),
        pa.field("args", pa.large_string()),
        pa.field("stack", pa.large_list(pa.large_string())),
    ]
)

LOST_SCHEMA = pa.schema(
    [
        pa.field("cpu", pa.int32()),
        pa.field("ts", pa.int64()),
        pa.field("count", pa.int64()),
        pa.field("seq", pa.int64()),
    ]
)

__all__ = ["EVENT_SCHEMA", "LOST_SCHEMA"]
