"""Profiling SQL, written once in SQLite syntax and transpiled with sqlglot for other engines."""

from __future__ import annotations

import functools
import re

import sqlglot

_DATE_TYPE = re.compile(r"date|time|year", re.I)
_NUM_TYPE = re.compile(r"int|real|floa|doub|dec|num|money|bit|bool|serial", re.I)
_TEXT_TYPE = re.compile(r"char|text|clob|string|enum|set|uuid|json|xml", re.I)
_BLOB_TYPE = re.compile(r"blob|binary|bytea|image", re.I)


@functools.lru_cache(maxsize=4096)
def _transpile(sql: str, dialect: str) -> str:
    return sqlglot.transpile(sql, read="sqlite", write=dialect)[0]


def for_dialect(sql: str, dialect: str) -> str:
    """Rewrite SQLite-syntax ``sql`` for ``dialect`` (identity for SQLite)."""
    if dialect == "sqlite":
        return sql
    return _transpile(sql, dialect)


def type_family(declared: str) -> str:
    """Coarse family of a declared type: ``date``, ``number``, ``text``, ``blob`` or ``any``."""
    t = declared or ""
    if _DATE_TYPE.search(t):
        return "date"
    if _BLOB_TYPE.search(t):
        return "blob"
    if _TEXT_TYPE.search(t):
        return "text"
    if _NUM_TYPE.search(t):
        return "number"
    return "any"
