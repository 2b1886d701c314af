"""Database connectors: the only place in QuorumSQL that opens a database connection.

:func:`open_database` turns what a user passes (a path, a URL or a :class:`Database`) into a
connector. All execution is read-only and guarded (see :mod:`quorumsql.db.safety`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from quorumsql.db.base import ExecutionResult, Database
from quorumsql.db.safety import check_read_only
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.db.sqlite import SQLiteDatabase
from quorumsql.errors import DatabaseError

__all__ = [
    "Column", "Database", "DatabaseSchema", "ExecutionResult", "ForeignKey", "SQLiteDatabase",
    "Table", "check_read_only", "open_database",
]


def open_database(db: "str | os.PathLike | Database", **kwargs: Any) -> Database:
    """Open ``db`` read-only.

    Args:
        db: a :class:`Database` (returned as is), a path, or a URL:
            ``sqlite:///relative.db`` / ``sqlite:////abs/path.db``,
            ``duckdb:///relative.duckdb`` / ``duckdb:////abs/path.duckdb`` (also data files),
            ``mysql+pymysql://user:pw@host:port/name`` (also ``mysql://``, ``mariadb://``),
            ``postgresql://user:pw@host:port/name`` (also ``postgres://``).
            A path is read by what it is: a file that starts like a SQLite database is SQLite
            whatever its name; one that starts like a DuckDB database, or a ``.duckdb`` /
            ``.ddb`` file, is DuckDB (:class:`~quorumsql.db.duckdb.DuckDBDatabase`); a CSV, TSV,
            Parquet or JSON(-lines) file by its name, a folder or a glob pattern
            (``data/*.parquet``) is a database of data files, one table per file
            (:class:`~quorumsql.db.duckdb.DataFilesDatabase`); anything else is SQLite.
        **kwargs: ``query_timeout`` (s), ``max_rows`` and ``max_result_bytes`` for every
            connector; ``max_query_memory`` for SQLite and DuckDB and ``max_value_bytes`` for
            SQLite (ignored elsewhere); ``allowed_functions`` (extra function names a query may
            call).

    Returns:
        A connector; its schema is read lazily.

    Raises:
        DatabaseError: not a path or URL, unknown scheme, malformed URL (e.g. a port that is
            not a number in 1-65535), missing file, unreachable server, bad credentials; a
            DuckDB file or data files without the ``duckdb`` package (``quorumsql[duckdb]``).
    """
    if isinstance(db, Database):
        return db
    spec = os.fspath(db).strip() if isinstance(db, (str, os.PathLike)) else None
    if not spec:
        raise DatabaseError(f"expected a database path or URL, got {db!r}")
    if "://" not in spec:
        return _open_path(spec, **kwargs)
    try:
        url = urlsplit(spec)
        port = url.port
    except ValueError as exc:
        reason = "the port must be a number from 1 to 65535" if "port" in str(exc).lower() else str(exc)
        raise DatabaseError(f"malformed database URL {_redact(spec)!r}: {reason}") from None
    scheme = url.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///rel/path -> "rel/path"; sqlite:////abs/path -> "/abs/path"
        path = unquote(spec.split("://", 1)[1])
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise DatabaseError("sqlite URL without a path: use sqlite:///file.db")
        return SQLiteDatabase(Path(path), **kwargs)
    if scheme == "duckdb":
        # duckdb:///rel/path -> "rel/path"; duckdb:////abs/path -> "/abs/path"
        path = unquote(spec.split("://", 1)[1])
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise DatabaseError("duckdb URL without a path: use duckdb:///file.duckdb")
        return _open_duckdb(path, **kwargs)
    for name in ("max_value_bytes", "max_query_memory"):
        kwargs.pop(name, None)  # SQLite limits; the servers have their own
    if port == 0:
        raise DatabaseError(f"malformed database URL {_redact(spec)!r}: the port must be a number from 1 to 65535")
    if scheme in ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"):
        from quorumsql.db.mysql import MySQLDatabase

        return MySQLDatabase(
            host=url.hostname or "127.0.0.1",
            port=port or 3306,
            user=unquote(url.username or "root"),
            password=unquote(url.password or ""),
            database=unquote(url.path.lstrip("/")),
            **kwargs,
        )
    if scheme.startswith("postgres"):
        from quorumsql.db.postgres import PostgresDatabase

        return PostgresDatabase(spec, **kwargs)
    raise DatabaseError(
        f"unsupported database URL scheme {url.scheme!r}; use a SQLite path, sqlite:///, "
        "duckdb:///, mysql+pymysql:// or postgresql://"
    )


def _open_path(spec: str, **kwargs: Any) -> Database:
    """A path: SQLite unless it is DuckDB or data files (see :func:`open_database`)."""
    from quorumsql.db import duckdb as duck

    if duck.is_duckdb_spec(spec) or duck.is_data_files_spec(spec):
        return _open_duckdb(spec, **kwargs)
    return SQLiteDatabase(Path(spec), **kwargs)


def _open_duckdb(spec: str, **kwargs: Any) -> Database:
    """A DuckDB file, or data files, for a path (of a ``duckdb://`` URL or a plain one)."""
    from quorumsql.db import duckdb as duck

    kwargs.pop("max_value_bytes", None)  # a SQLite limit
    if duck.is_data_files_spec(spec):
        return duck.DataFilesDatabase(spec, **kwargs)
    return duck.DuckDBDatabase(Path(spec), **kwargs)


def _redact(spec: str) -> str:
    """``spec`` with the password of its URL, if any, replaced by ``***``."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", spec)
