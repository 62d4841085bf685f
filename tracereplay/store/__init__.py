"""DuckDB store: schema, atomic bulk loading from Arrow, named queries."""

from tracereplay.store.load import (
    IngestResult,
    OutputExistsError,
    Prefetch,
    build,
    ingest,
    new_database,
)
from tracereplay.store.queries import NamedQuery, load_query, named_queries

__all__ = [
    "IngestResult",
    "NamedQuery",
    "OutputExistsError",
    "Prefetch",
    "build",
    "ingest",
    "load_query",
    "named_queries",
    "new_database",
]
