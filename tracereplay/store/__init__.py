"""DuckDB store: schema, atomic bulk loading from Arrow, named queries.

The loading names are imported when first used (PEP 562): they pull in the
readers, numba and Arrow, which ``tracereplay query`` (connect, named queries)
does not need (~0.25 s of its start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tracereplay.store.connect import connect
from tracereplay.store.queries import NamedQuery, load_query, named_queries

if TYPE_CHECKING:
    from tracereplay.store.load import (
        IngestResult,
        Prefetch,
        build,
        ingest,
        new_database,
        track_batches_of,
    )

_FROM_LOAD = frozenset(
    {"IngestResult", "Prefetch", "build", "ingest", "new_database", "track_batches_of"}
)


def __getattr__(name: str) -> Any:
    if name in _FROM_LOAD:
        return getattr(importlib.import_module("tracereplay.store.load"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IngestResult",
    "NamedQuery",
    "Prefetch",
    "build",
    "connect",
    "ingest",
    "load_query",
    "named_queries",
    "new_database",
    "track_batches_of",
]
