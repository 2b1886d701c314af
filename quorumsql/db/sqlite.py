"""SQLite connector: read-only (``mode=ro``), interruptible, one connection per query."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from quorumsql.db.base import Database
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout

_SQLITE_MAGIC = b"SQLite format 3\x00"
_EXAMPLES = 3


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _decode(raw: bytes) -> str:
    """Text cells that are not valid UTF-8 are decoded with replacement, never an exception."""
    return raw.decode("utf-8", errors="replace")


class SQLiteDatabase(Database):
    """A SQLite file opened read-only.

    Args:
        path: the database file; it must exist and be a SQLite 3 file.
        query_timeout: default seconds per query (enforced with a progress handler).
        max_rows: default row cap.

    Raises:
        DatabaseError: the file is missing, unreadable or not a SQLite database.
    """

    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        p = Path(path).expanduser()
        if not p.exists():
            raise DatabaseError(f"SQLite database not found: {p}")
        if p.is_dir():
            raise DatabaseError(f"expected a SQLite file, got a directory: {p}")
        try:
            with open(p, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise DatabaseError(f"cannot read {p}: {exc.strerror}") from None
        if head != _SQLITE_MAGIC:
            raise DatabaseError(f"not a SQLite 3 database: {p}")
        self.path = p.resolve()
        super().__init__(p.stem, **kwargs)

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.path}"

    def _data_signature(self) -> Any:
        st = self.path.stat()
        wal = self.path.with_name(self.path.name + "-wal")
        wal_sig = wal.stat().st_mtime_ns if wal.exists() else None
        return [st.st_size, st.st_mtime_ns, wal_sig]

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(self.path))}?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open {self.path} read-only: {exc}") from None
        conn.text_factory = _decode
        conn.execute("PRAGMA query_only = ON")
        return conn

    def _execute(self, sql: str, timeout: float, max_rows: int):
        conn = self._connect()
        deadline = time.monotonic() + timeout
        timed_out = False

        def _progress() -> int:
            nonlocal timed_out
            if time.monotonic() > deadline:
                timed_out = True
                return 1  # non-zero interrupts the statement
            return 0

        conn.set_progress_handler(_progress, 1000)
        try:
            cur = conn.execute(sql)
            columns = [d[0] for d in cur.description or []]
            rows = cur.fetchmany(max_rows + 1)
        except sqlite3.Error as exc:
            if timed_out:
                raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted") from None
            raise QueryError(str(exc)) from None
        finally:
            conn.close()
        truncated = len(rows) > max_rows
        return columns, [tuple(r) for r in rows[:max_rows]], truncated

    def _introspect(self) -> DatabaseSchema:
        conn = self._connect()
        try:
            objects = conn.execute(
                "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            ).fetchall()
            tables: list[Table] = []
            fks: list[ForeignKey] = []
            for name, kind in objects:
                info = conn.execute(f"PRAGMA table_info({_quote_ident(name)})").fetchall()
                columns = [
                    Column(
                        name=col[1],
                        type=col[2] or "",
                        primary_key=bool(col[5]),
                        nullable=not col[3] and not col[5],
                        examples=self._examples(conn, name, col[1]),
                    )
                    for col in info
                ]
                tables.append(Table(name=name, kind=kind, columns=columns))
                for fk in conn.execute(
                    f"PRAGMA foreign_key_list({_quote_ident(name)})"
                ).fetchall():
                    fks.append(
                        ForeignKey(table=name, column=fk[3], ref_table=fk[2], ref_column=fk[4] or "")
                    )
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot introspect {self.path}: {exc}") from None
        finally:
            conn.close()
        return DatabaseSchema(
            db_id=self.db_id, dialect=self.dialect, tables=tables, foreign_keys=_resolve_fks(tables, fks)
        )

    @staticmethod
    def _examples(conn: sqlite3.Connection, table: str, column: str) -> list[Any]:
        try:
            rows = conn.execute(
                f"SELECT DISTINCT {_quote_ident(column)} FROM {_quote_ident(table)} "
                f"WHERE {_quote_ident(column)} IS NOT NULL LIMIT {_EXAMPLES}"
            ).fetchall()
        except sqlite3.Error:
            return []
        return [r[0] for r in rows if not isinstance(r[0], bytes)]


def _resolve_fks(tables: list[Table], fks: list[ForeignKey]) -> list[ForeignKey]:
    """Fill implicit references (``REFERENCES t`` = t's primary key) and fix name case.

    Foreign keys naming a table or column that does not exist are dropped: they cannot be joined.
    """
    by_name = {t.name.lower(): t for t in tables}
    out: list[ForeignKey] = []
    for fk in fks:
        src = by_name.get(fk.table.lower())
        ref = by_name.get(fk.ref_table.lower())
        if src is None or ref is None:
            continue
        ref_col_name = fk.ref_column or (ref.primary_key[0] if len(ref.primary_key) == 1 else "")
        src_col, ref_col = src.column(fk.column), ref.column(ref_col_name) if ref_col_name else None
        if src_col is None or ref_col is None:
            continue
        resolved = ForeignKey(table=src.name, column=src_col.name, ref_table=ref.name, ref_column=ref_col.name)
        if resolved not in out:
            out.append(resolved)
    return out
