"""The reader protocol every input format implements.

A reader is created for one path, streams Arrow record batches in the canonical
:data:`~tracereplay.schema.EVENT_SCHEMA`, and fills :class:`TraceMeta` as it
goes (complete once :meth:`Reader.batches` is exhausted). Readers never load a
whole trace into memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Protocol

# re-exported: readers and their callers have always imported them from here
from tracereplay.tracemeta import LostEvents, TraceMeta

if TYPE_CHECKING:  # the CLI starts without Arrow (tracereplay/cli/lazy.py)
    import pyarrow as pa


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


__all__ = ["LostEvents", "Reader", "TraceMeta"]
