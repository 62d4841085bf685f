"""What the Perfetto reader and writer share: field numbers, typed event tables, symbol tables.

Typed ``FtraceEvent`` sub-messages are read from the ``perfetto`` package's
generated protos (``perfetto_trace_pb2``), so every typed event Perfetto knows
is decodable by name. Perfetto names the fields of its typed protos after the
kernel's format-file fields, so the mapping is the identity except where
:data:`RENAMED` says otherwise.

Fields the kernel prints symbolically (``__print_symbolic``, ``__print_flags``)
arrive from the Perfetto recorder as their raw integer; the tables here turn
them back into the symbol the text formats show (events look the same whatever the input format).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from tracereplay.formats.common import args_json
from tracereplay.formats.perfetto.protowire import iter_fields, len_field, varint_field

# TracePacket fields (protos/perfetto/trace/trace_packet.proto)
PKT_FTRACE_EVENTS = 1
PKT_PROCESS_TREE = 2
PKT_CLOCK_SNAPSHOT = 6
PKT_TIMESTAMP = 8
PKT_TRACK_EVENT = 11
PKT_TRACK_DESCRIPTOR = 60
PKT_SEQUENCE_ID = 10
PKT_INTERNED_DATA = 12
PKT_SEQUENCE_FLAGS = 13
PKT_FTRACE_STATS = 34
PKT_INCREMENTAL_STATE_CLEARED = 41
PKT_SYSTEM_INFO = 45
PKT_CHROME_EVENTS = 5  # ChromeEventBundle.metadata: key/value pairs the UI shows
OPTIONS_KEY = "tracereplay.recorder_options"
CLOCK_KEY = "tracereplay.clock"  # a source clock Perfetto has no enum value for
PKT_COMPRESSED = 50
PKT_ZSTD_COMPRESSED = 133
SEQ_INCREMENTAL_STATE_CLEARED = 1
SEQ_NEEDS_INCREMENTAL_STATE = 2
INTERNED_KERNEL_SYMBOLS = 26

# FtraceEventBundle fields
B_CPU, B_EVENT, B_LOST, B_COMPACT, B_CLOCK = 1, 2, 3, 4, 5
B_FTRACE_TS, B_BOOT_TS, B_ERROR, B_PREV_END, B_DESCRIPTORS = 6, 7, 8, 10, 11
# FtraceEvent fields
E_TIMESTAMP, E_PID, E_COMMON_FLAGS, E_GENERIC = 1, 2, 5, 327
GENERIC_MIN_ID = 65536  # dense generic events use FtraceEvent field ids from here on

FTRACE_CLOCKS = {0: "boot", 1: None, 2: "global", 3: "local", 4: "mono_raw"}
CLOCK_IDS = {"global": 2, "local": 3, "mono_raw": 4}

# FieldDescriptorProto.Type values
T_DOUBLE, T_FLOAT, T_INT64, T_UINT64, T_INT32 = 1, 2, 3, 4, 5
T_FIXED64, T_FIXED32, T_BOOL, T_STRING, T_BYTES = 6, 7, 8, 9, 12
T_UINT32, T_SFIXED32, T_SFIXED64, T_SINT32, T_SINT64 = 13, 15, 16, 17, 18
LABEL_REPEATED = 3
SIGNED_TYPES = {T_INT64, T_INT32, T_SFIXED32, T_SFIXED64, T_SINT32, T_SINT64}
ZIGZAG_TYPES = {T_SINT32, T_SINT64}

# The kernel's stacktrace trigger has no Perfetto encoding: our writer stores each
# stack as a dense generic "ftrace/kernel_stack" event (frames as interned kernel
# symbols, innermost first) right after the event it belongs to.
STACK_EVENT, STACK_GROUP, STACK_FRAMES, STACK_ATTACHED = (
    "kernel_stack",
    "ftrace",
    "caller",
    "_attached",
)

# Perfetto proto field name -> kernel format-file name, where they differ.
RENAMED: dict[str, dict[str, str]] = {}

LOSSY_TYPED = {
    "kvm_exit": "Perfetto's typed kvm_exit proto has the arm64 layout (esr_ec, ret, vcpu_pc): "
    "x86 exit_reason, guest_rip, info1/info2, intr_info and error_code are not recorded",
    "kvm_entry": "Perfetto's typed kvm_entry proto has the arm64 layout (vcpu_pc): "
    "x86 vcpu_id and rip are not recorded",
}


@dataclass(frozen=True)
class ProtoField:
    number: int
    name: str
    type: int  # FieldDescriptorProto.Type
    repeated: bool = False


@dataclass(frozen=True)
class EventLayout:
    """One FtraceEvent sub-message: typed (from perfetto_trace_pb2) or dense generic."""

    field_id: int
    name: str
    group: str | None
    fields: tuple[ProtoField, ...]
    typed: bool

    @property
    def by_number(self) -> dict[int, ProtoField]:
        return {f.number: f for f in self.fields}

    @property
    def by_name(self) -> dict[str, ProtoField]:
        return {f.name: f for f in self.fields}


@cache
def typed_events() -> dict[int, EventLayout]:
    """FtraceEvent field number -> layout, for every typed event of the perfetto package."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    out: dict[int, EventLayout] = {}
    for f in pb.FtraceEvent.DESCRIPTOR.fields:
        if f.message_type is None or f.number == E_GENERIC:
            continue
        renames = RENAMED.get(f.name, {})
        fields = tuple(
            ProtoField(s.number, renames.get(s.name, s.name), s.type, s.is_repeated)
            for s in f.message_type.fields
            if s.message_type is None
        )
        out[f.number] = EventLayout(f.number, f.name, None, fields, True)
    return out


@cache
def typed_by_name() -> dict[str, EventLayout]:
    return {lay.name: lay for lay in typed_events().values()}


def encode_descriptor(layout: EventLayout) -> bytes:
    """Serialized ``GenericEventDescriptor`` (with its ``DescriptorProto``) for a dense layout."""
    desc = len_field(1, layout.name.encode())
    for f in layout.fields:
        fd = len_field(1, f.name.encode()) + varint_field(3, f.number)
        fd += varint_field(4, LABEL_REPEATED if f.repeated else 1) + varint_field(5, f.type)
        desc += len_field(2, fd)
    out = varint_field(1, layout.field_id) + len_field(2, desc)
    if layout.group:
        out += len_field(3, layout.group.encode())
    return out


def decode_descriptor(data: bytes) -> EventLayout:
    """Parse a ``GenericEventDescriptor``; WireError / ValueError when malformed."""
    field_id, group, name = 0, None, ""
    fields: list[ProtoField] = []
    for fno, wt, val, pos in iter_fields(data):
        if fno == 1 and wt == 0:
            field_id = val
        elif fno == 3 and wt == 2:
            group = bytes(data[pos : pos + val]).decode("utf-8", "replace")
        elif fno == 2 and wt == 2:
            desc = data[pos : pos + val]
            for dno, dwt, dval, dpos in iter_fields(desc):
                if dno == 1 and dwt == 2:
                    name = bytes(desc[dpos : dpos + dval]).decode("utf-8", "replace")
                elif dno == 2 and dwt == 2:
                    fields.append(_decode_field(desc[dpos : dpos + dval]))
    if field_id < GENERIC_MIN_ID or not name:
        raise ValueError(f"bad generic event descriptor (field id {field_id}, name {name!r})")
    fields.sort(key=lambda f: f.number)
    return EventLayout(field_id, name, group, tuple(fields), False)


def _decode_field(data: bytes) -> ProtoField:
    name, number, label, ftype = "", 0, 1, T_UINT64
    for fno, wt, val, pos in iter_fields(data):
        if fno == 1 and wt == 2:
            name = bytes(data[pos : pos + val]).decode("utf-8", "replace")
        elif fno == 3 and wt == 0:
            number = val
        elif fno == 4 and wt == 0:
            label = val
        elif fno == 5 and wt == 0:
            ftype = val
    if not 0 < number < (1 << 29) or ftype > T_SINT64:
        raise ValueError(f"bad field {name!r} (number {number}, type {ftype})")
    return ProtoField(number, name, ftype, label == LABEL_REPEATED)


# ------------------------------------------------------------------ symbolic fields

# sched_switch prev_state: __trace_sched_switch_state() gives 1 << (state index - 1),
# printed with __print_flags; TASK_REPORT_MAX (0x100) adds "+" (preempted).
_STATE_FLAGS = (
    (0x01, "S"),
    (0x02, "D"),
    (0x04, "T"),
    (0x08, "t"),
    (0x10, "X"),
    (0x20, "Z"),
    (0x40, "P"),
    (0x80, "I"),
)
_TASK_REPORT_MAX = 0x100


def prev_state_text(value: int) -> str:
    """The kernel's text of a raw prev_state (Perfetto stores the integer)."""
    return args_json.prev_state_text(value, "|", _STATE_FLAGS)


def prev_state_value(text: str) -> int | None:
    """Inverse of :func:`prev_state_text`; None when the text is not a state string."""
    plus = text.endswith("+")
    body = text[:-1] if plus else text
    flags = dict((s, f) for f, s in _STATE_FLAGS)
    if body == "R":
        value = 0
    else:
        try:
            value = sum(flags[p] for p in body.split("|"))
        except KeyError:
            return None
    return value | (_TASK_REPORT_MAX if plus else 0)


# include/linux/sched/numa_balancing.h enum numa_vmaskip_reason (6.7+)
_SKIP_REASONS = (
    "unsuitable",
    "shared_ro",
    "inaccessible",
    "scan_delay",
    "pid_inactive",
    "ignore_pid_inactive",
    "seq_completed",
)
# include/trace/events/migrate.h MIGRATE_MODE / MIGRATE_REASON (MR_DAMON since 6.16)
_MIGRATE_MODES = ("MIGRATE_ASYNC", "MIGRATE_SYNC_LIGHT", "MIGRATE_SYNC", "MIGRATE_SYNC_NO_COPY")
_MIGRATE_REASONS = (
    "compaction",
    "memory_failure",
    "memory_hotplug",
    "syscall_or_cpuset",
    "mempolicy_mbind",
    "numa_misplaced",
    "contig_range",
    "longterm_pin",
    "demotion",
    "damon",
)

# (event, field) -> index -> symbol, for fields the recorder stores as integers
SYMBOLIC: dict[tuple[str, str], tuple[str, ...]] = {
    ("sched_skip_vma_numa", "reason"): _SKIP_REASONS,
    ("mm_migrate_pages", "mode"): _MIGRATE_MODES,
    ("mm_migrate_pages", "reason"): _MIGRATE_REASONS,
}


__all__ = [
    "LOSSY_TYPED",
    "SYMBOLIC",
    "EventLayout",
    "ProtoField",
    "decode_descriptor",
    "encode_descriptor",
    "prev_state_text",
    "prev_state_value",
    "typed_by_name",
    "typed_events",
]
