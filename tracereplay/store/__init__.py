"""DuckDB store: schema, atomic bulk loading from Arrow, named queries."""

from tracereplay.store.connect import connect
from tracereplay.store.load import (
    IngestResult,
    Prefetch,
    build,
    ingest,
    new_database,
    track_batches_of,
)
from tracereplay.store.queries import NamedQuery, load_query, named_queries

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
