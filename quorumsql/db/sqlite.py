"""SQLite connector: read-only (``mode=ro``), interruptible, one connection per query."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from quorumsql.db.base import Database, fetch_capped
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout
from quorumsql.sqlnames import quote_identifier

_SQLITE_MAGIC = b"SQLite format 3\x00"
_EXAMPLES = 3


def _quote_ident(name: str) -> str:
    return quote_identifier(name, "sqlite")


def _decode(raw: bytes) -> str:
    """Text cells that are not valid UTF-8 are decoded with replacement, never an exception."""
    return raw.decode("utf-8", errors="replace")


# Pragmas the authorizer lets through. Those that take a table or index name only read;
# the others are allowed only without an argument (reading, never setting, a value).
_NAMED_READ_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list", "table_list"}
)
_VALUE_READ_PRAGMAS = frozenset(
    {
        "user_version", "schema_version", "application_id", "page_count", "page_size",
        "freelist_count", "encoding", "foreign_keys", "data_version", "compile_options",
        "database_list", "collation_list", "function_list", "module_list", "pragma_list",
        "query_only", "journal_mode", "table_list",
    }
)
# Functions that reach outside the database or leak process memory (fts3_tokenizer returns a
# heap pointer); several exist only in the sqlite3 shell but are denied wherever they appear.
_DENIED_FUNCTIONS = frozenset(
    {"load_extension", "readfile", "writefile", "fts3_tokenizer", "edit", "fsdir", "zipfile"}
)
# Authorizer actions that create, change or remove something. The connection is read-only
# already; denying them at prepare time is the same answer, earlier and with a clear reason.
_WRITE_ACTIONS = frozenset(
    getattr(sqlite3, name)
    for name in (
        "SQLITE_CREATE_INDEX", "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TEMP_INDEX",
        "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_TEMP_VIEW",
        "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW", "SQLITE_DELETE", "SQLITE_DROP_INDEX",
        "SQLITE_DROP_TABLE", "SQLITE_DROP_TEMP_INDEX", "SQLITE_DROP_TEMP_TABLE",
        "SQLITE_DROP_TEMP_TRIGGER", "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TRIGGER",
        "SQLITE_DROP_VIEW", "SQLITE_INSERT", "SQLITE_ALTER_TABLE", "SQLITE_REINDEX",
        "SQLITE_ANALYZE", "SQLITE_CREATE_VTABLE", "SQLITE_DROP_VTABLE",
    )
    if hasattr(sqlite3, name)
)
DEFAULT_MAX_VALUE_BYTES = 32 * 1024 * 1024


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
    """SQLite authorizer (``sqlite3_set_authorizer``): called for each action while preparing.

    Denies ATTACH and DETACH (VACUUM and VACUUM INTO attach their target, so they are denied
    too), pragmas other than the read-only ones above, the functions in
    :data:`_DENIED_FUNCTIONS` and every action that creates or changes schema or rows.
    """
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) or action in _WRITE_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in _NAMED_READ_PRAGMAS or (name in _VALUE_READ_PRAGMAS and arg2 is None):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class SQLiteDatabase(Database):
    """A SQLite file opened read-only, bounded in time, memory and files.

    Every connection (one per query) is a second lock behind :func:`check_read_only`:

    - ``mode=ro`` and ``PRAGMA query_only``: nothing is written to the file;
    - an authorizer (:func:`_authorize`) and ``SQLITE_LIMIT_ATTACHED = 0``: no ATTACH, DETACH,
      VACUUM / VACUUM INTO, pragma writes, ``load_extension``, ``readfile``/``writefile`` or
      ``fts3_tokenizer``, so no file is ever created;
    - ``SQLITE_LIMIT_LENGTH = max_value_bytes``: one string or blob (``randomblob(1e9)``,
      ``zeroblob``, ``group_concat``, ``replace``) fails at once with "string or blob too big"
      instead of allocating gigabytes in a single step the timeout cannot interrupt;
    - a progress handler interrupts the statement at the deadline; rows are fetched under the
      row cap and the byte cap (:func:`~quorumsql.db.base.fetch_capped`).

    Args:
        path: the database file; it must exist and be a SQLite 3 file.
        query_timeout: default seconds per query (enforced with a progress handler).
        max_rows: default row cap.
        max_result_bytes: cap on the payload fetched per query (default 64 MiB).
        max_value_bytes: largest string or blob a query may build or read (default 32 MiB).

    Raises:
        DatabaseError: the file is missing, unreadable or not a SQLite database.
    """

    dialect = "sqlite"

    def __init__(
        self, path: str | os.PathLike, *, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES, **kwargs: Any
    ) -> None:
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
        self.max_value_bytes = int(max_value_bytes)
        super().__init__(p.stem, **kwargs)

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.path}"

    def _data_signature(self) -> Any:
        st = self.path.stat()
        wal = self.path.with_name(self.path.name + "-wal")
        wal_sig = wal.stat().st_mtime_ns if wal.exists() else None
        return [st.st_size, st.st_mtime_ns, wal_sig]

    def change_stamp(self) -> str:
        """Size and modification time (ns) of the file and of its ``-wal`` file, if any.

        Raises:
            DatabaseError: the file is gone.
        """
        parts = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                st = path.stat()
            except FileNotFoundError:
                if path == self.path:
                    raise DatabaseError(f"SQLite database not found: {path}") from None
                parts.append("-")
                continue
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        return "/".join(parts)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(self.path))}?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open {self.path} read-only: {exc}") from None
        conn.text_factory = _decode
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(_authorize)
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
            rows, truncated = fetch_capped(cur.fetchmany, max_rows, self.max_result_bytes)
        except sqlite3.Error as exc:
            if timed_out:
                raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted") from None
            message = str(exc)
            if "too big" in message:
                message += f" (values are limited to {self.max_value_bytes:,} bytes)"
            elif "not authorized" in message or "authorization denied" in message:
                message += " (the connection is read-only: no ATTACH, VACUUM, pragma writes or file functions)"
            raise QueryError(message) from None
        finally:
            conn.close()
        if timed_out:
            raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted") from None
        return columns, rows, truncated

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
