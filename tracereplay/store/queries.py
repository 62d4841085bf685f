"""The named SQL library (``queries/`` at the repo root, shipped in the wheel).

Each ``queries/NAME.sql`` is one module, in the style of Perfetto's SQL
standard library: a header comment whose first line is ``-- NAME: summary``,
free text, then one ``-- @column NAME description`` line per output column,
then the SQL. Names starting with ``_`` are private (used by the store).
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NamedQuery:
    name: str
    summary: str
    description: str
    columns: dict[str, str] = field(default_factory=dict)
    sql: str = ""


def queries_dir() -> Path:
    """Where the .sql modules are: inside the installed package, else the repo root."""
    packaged = importlib.resources.files("tracereplay") / "queries"
    if packaged.is_dir():
        return Path(str(packaged))
    # editable / source checkout: queries/ sits beside the package directory
    return Path(__file__).resolve().parents[2] / "queries"


def parse_module(name: str, text: str) -> NamedQuery:
    summary, desc, columns = "", [], {}
    body = []
    in_header = True
    for line in text.splitlines():
        if in_header and line.startswith("--"):
            content = line[2:].strip()
            if not summary and content.startswith(f"{name}:"):
                summary = content[len(name) + 1 :].strip()
            elif content.startswith("@column"):
                parts = content.split(None, 2)
                if len(parts) >= 2:
                    columns[parts[1]] = parts[2] if len(parts) > 2 else ""
            elif content:
                desc.append(content)
            continue
        in_header = False
        body.append(line)
    return NamedQuery(name, summary, " ".join(desc), columns, "\n".join(body).strip())


def load_query(name: str) -> NamedQuery:
    path = queries_dir() / f"{name}.sql"
    if not path.is_file():
        raise KeyError(name)
    return parse_module(name, path.read_text())


def named_queries(include_private: bool = False) -> dict[str, NamedQuery]:
    out = {}
    for path in sorted(queries_dir().glob("*.sql")):
        name = path.stem
        if name.startswith("_") and not include_private:
            continue
        out[name] = parse_module(name, path.read_text())
    return out


__all__ = ["NamedQuery", "load_query", "named_queries", "queries_dir"]
