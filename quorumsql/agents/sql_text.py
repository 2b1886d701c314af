"""Pull the SQL out of what a model wrote, compare SQL texts, and fingerprint execution results."""

from __future__ import annotations

import decimal
import functools
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlglot
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|$)", re.S)
# a statement keyword at the start of a line (writes included: they must reach the safety check
# and be refused visibly, not silently dropped)
_STATEMENT = re.compile(
    r"(?im)^[ \t]*(SELECT|WITH|VALUES|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|REPLACE|PRAGMA|ATTACH|TRUNCATE)\b"
)
_INLINE_SELECT = re.compile(r"(?i)\bSELECT\b")
_SQL_LANGS = {"sql", "sqlite", "mysql", "postgresql", "postgres", "psql", "duckdb"}


def extract_sql(text: str) -> str | None:
    """The SQL statement in a model's answer, or None.

    Order of preference: the last fenced block tagged ``sql`` (or untagged and starting with a
    statement keyword); else the text from the first statement keyword at a line start (or the
    first ``SELECT``) to the first blank line or the end. Write statements are extracted too, so
    that the safety check can refuse them visibly.
    Trailing semicolons and surrounding whitespace are removed; an unterminated fence (the model
    ran out of tokens) still yields its content.

    Args:
        text: the model's reply.

    Returns:
        The SQL text, or None when there is none.
    """
    if not text:
        return None
    blocks = [
        body.strip()
        for lang, body in _FENCE.findall(text)
        if body.strip() and (lang.lower() in _SQL_LANGS or (not lang and _STATEMENT.search(body)))
    ]
    if blocks:
        return _clean(blocks[-1])
    match = _STATEMENT.search(text) or _INLINE_SELECT.search(text)
    if not match:
        return None
    rest = text[match.start():]
    rest = re.split(r"\n\s*\n", rest, maxsplit=1)[0]
    return _clean(rest)


def _clean(sql: str) -> str | None:
    # several statements are kept as written: the safety check refuses them visibly
    sql = sql.strip().rstrip(";").strip()
    return sql or None


_STRING_LITERAL = re.compile(r"('(?:[^']|'')*')")


def normalize_sql(sql: str | None, dialect: str | None = None) -> str | None:
    """A canonical form of ``sql``: two queries with the same form are the same query.

    Parsed with sqlglot and written back in ``dialect`` with every identifier quoted after the
    dialect's own case rules (:func:`sqlglot.optimizer.normalize_identifiers.normalize_identifiers`:
    SQLite folds every name, PostgreSQL folds unquoted names only, MySQL keeps them), keywords
    and function names upper-cased, whitespace, comments and trailing semicolons dropped. String
    literals keep their case (``'France'`` and ``'france'`` differ in SQLite).
    Text sqlglot cannot parse (or several statements) falls back to collapsed whitespace,
    trailing semicolons removed and lower case outside single-quoted literals.

    Used to spot duplicate candidates, revisions that repeat an SQL already tried and a judged
    SQL identical to the reference.

    Args:
        sql: the query (None or blank gives None).
        dialect: sqlglot dialect of the database (None: sqlglot's generic dialect).

    Returns:
        The canonical text, or None.
    """
    if sql is None or not sql.strip():
        return None
    return _normalize_sql(sql, dialect)


@functools.lru_cache(maxsize=2048)
def _normalize_sql(sql: str, dialect: str | None) -> str:
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
        if len(trees) == 1:
            tree = normalize_identifiers(trees[0], dialect=dialect)
            return tree.sql(dialect=dialect, identify=True, comments=False)
    except (SqlglotError, ValueError):
        pass
    text = " ".join(sql.split()).rstrip("; ").strip()
    parts = _STRING_LITERAL.split(text)
    return "".join(p if i % 2 else p.lower() for i, p in enumerate(parts))


def _norm(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        value = round(value, 6)
        return int(value) if value.is_integer() else value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


def result_key(rows: Sequence[Sequence[Any]]) -> str:
    """Order-insensitive fingerprint of a result set (a multiset of rows), column order normalised.

    Two results get the same key when they hold the same rows in any row order and with the
    columns in any order (each row is keyed on its sorted values), as selection groups
    candidates in XiYan-SQL (paper 003, section 2.5). Floats are rounded to 6 decimals, and
    integral floats and decimals equal their integers, so that equal results computed
    differently group together.
    Each row is hashed on its own and only its digest is kept, so memory stays at 20 bytes per
    distinct row whatever the size of the values.
    """
    counts = Counter(
        hashlib.sha1(repr(sorted(repr(_norm(v)) for v in row)).encode("utf-8", "replace")).digest() for row in rows
    )
    digest = hashlib.sha1()
    for key, n in sorted(counts.items()):
        digest.update(key + n.to_bytes(8, "little"))
    return digest.hexdigest()[:16]
