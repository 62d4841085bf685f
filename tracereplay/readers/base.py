"""The reader protocol every input format implements (DESIGN §2, §7).

A reader is created for one path, streams Arrow record batches in the canonical
:data:`~tracereplay.schema.EVENT_SCHEMA`, and fills :class:`TraceMeta` as it
goes (complete once :meth:`Reader.batches` is exhausted). Readers never load a
whole trace into memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import pyarrow as pa


@dataclass
class LostEvents:
    """One gap the tracer reported: ``count`` events lost on ``cpu`` (None = unknown)."""

    cpu: int | None
    ts: int | None
    count: int | None
    seq: int


@dataclass
class TraceMeta:
    """What a reader learned about the trace besides its events."""

    path: str
    format: str
    kernel_release: str | None = None
    clock: str | None = None
    cpus: int | None = None
    recorder_options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # True when part of the input could not be decoded (the rest is still usable)
    partial: bool = False
    event_count: int = 0
    lost: list[LostEvents] = field(default_factory=list)

    def warn(self, message: str, *, partial: bool = False) -> None:
        self.warnings.append(message)
        self.partial = self.partial or partial


class Reader(Protocol):
    """One trace file of one format."""

    format_name: ClassVar[str]
    path: str
    meta: TraceMeta

    def __init__(self, path: str) -> None: ...

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """True when the first (decompressed) bytes look like this format."""
        ...

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Stream the events, in source order, as canonical record batches."""
        ...
