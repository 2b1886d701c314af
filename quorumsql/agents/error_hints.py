"""Schema-aware hints for database errors, so that small models can fix unknown names.

Told only ``no such column: pet_type``, a 1.5B model usually repeats the same query (in a
60-question Spider sample, 19 of 26 failures were unknown-column errors whose revision brought
no new SQL). Naming the real columns of the tables the query uses,
and the closest spellings, gives it what it needs. The error texts of SQLite, MySQL/MariaDB and
PostgreSQL are recognised.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlglot
from rapidfuzz import fuzz, process
from sqlglot import exp
from sqlglot.errors import SqlglotError

from quorumsql.db.schema import DatabaseSchema
from quorumsql.sqlnames import normalize_column_name

_UNKNOWN_COLUMN = [
    re.compile(r"no such column: ([\w.\"`\[\]]+)", re.I),  # SQLite
    re.compile(r"Unknown column '([^']+)'", re.I),  # MySQL / MariaDB
    re.compile(r'column "?([\w.]+)"? does not exist', re.I),  # PostgreSQL
]
_UNKNOWN_TABLE = [
    re.compile(r"no such table: ([\w.\"`\[\]]+)", re.I),
    re.compile(r"Table '(?:[^'.]+\.)?([^']+)' doesn't exist", re.I),
    re.compile(r'relation "?([\w.]+)"? does not exist', re.I),
]
_MAX_COLUMNS = 40


def _match(patterns: list[re.Pattern], error: str) -> str | None:
    for pat in patterns:
        m = pat.search(error)
        if m:
            return m.group(1).strip("\"`[]")
    return None


def close_names(name: str, candidates: Sequence[str], limit: int = 3, cutoff: float = 50.0) -> list[str]:
    """The names of ``candidates`` spelled most like ``name``, best first.

    Names are compared in their :func:`~quorumsql.sqlnames.normalize_column_name` form (so
    ``pet_type`` matches ``PetType`` fully) with rapidfuzz's normalised Indel similarity
    (``fuzz.ratio``, 0-100).

    Args:
        name: the unknown name.
        candidates: names that exist.
        limit: names returned at most.
        cutoff: minimum similarity (0-100).
    """
    found = process.extract(name, list(candidates), scorer=fuzz.ratio, processor=normalize_column_name,
                            limit=limit, score_cutoff=cutoff)
    return [match for match, _, _ in found]


def _tables_in(sql: str, dialect: str) -> dict[str, str]:
    """``{alias or name (lower): table name}`` for every table the query reads."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return {}
    out: dict[str, str] = {}
    for t in tree.find_all(exp.Table):
        if t.name:
            out[t.name.lower()] = t.name
            if t.alias:
                out[t.alias.lower()] = t.name
    return out


def error_hint(sql: str, error: str, schema: DatabaseSchema) -> str:
    """Lines that help fix ``error`` of ``sql``: where the unknown name really is, what exists.

    Args:
        sql: the failing query.
        error: the database's error message.
        schema: the database's schema.

    Returns:
        Hint text (may be empty when the error is not about an unknown column or table).
    """
    lines: list[str] = []
    used = _tables_in(sql, schema.dialect)
    column = _match(_UNKNOWN_COLUMN, error)
    table = _match(_UNKNOWN_TABLE, error) if column is None else None
    if column is not None:
        qualifier, _, name = column.rpartition(".")
        holders = [t.name for t in schema.tables if t.column(name) is not None]
        if qualifier and qualifier.lower() in used:
            lines.append(f"{qualifier} stands for table {used[qualifier.lower()]}, which has no column {name}.")
        if holders:
            lines.append(f"Column {name} exists in table(s): {', '.join(holders)}.")
        else:
            all_cols = sorted({c.name for t in schema.tables for c in t.columns})
            close = close_names(name, all_cols)
            if close:
                lines.append(f"No column is called {name}; similar names: {', '.join(close)}.")
    elif table is not None:
        names = [t.name for t in schema.tables]
        close = close_names(table, names)
        lines.append(f"No table is called {table}" + (f"; similar names: {', '.join(close)}." if close else "."))
        lines.append(f"Tables: {', '.join(names[:_MAX_COLUMNS])}.")
    else:
        return ""
    seen: set[str] = set()
    for real in used.values():
        t = schema.table(real)
        if t is None or t.name in seen:
            continue
        seen.add(t.name)
        cols = [c.name for c in t.columns][:_MAX_COLUMNS]
        lines.append(f"Columns of {t.name}: {', '.join(cols)}.")
    return "\n".join(lines)
