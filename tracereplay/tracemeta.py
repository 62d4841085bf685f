"""What a reader learned about a trace besides its events: :class:`TraceMeta`.

A low module (beside errors and schema): the format decoders fill it as they
go, the readers return it, the store records it in ``trace_info``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


__all__ = ["LostEvents", "TraceMeta"]
