"""DuckDB store: schema, atomic bulk loading from Arrow, named queries."""

from tracereplay.store.load import IngestResult, OutputExistsError, build, ingest
from tracereplay.store.queries import NamedQuery, load_query, named_queries

__all__ = [
    "IngestResult",
    "NamedQuery",
    "OutputExistsError",
    "build",
    "ingest",
    "load_query",
    "named_queries",
]
