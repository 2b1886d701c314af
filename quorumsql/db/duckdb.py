"""DuckDB connector (extra ``quorumsql[duckdb]``): a DuckDB file, or data files read as tables.

Two kinds of database, one engine:

- :class:`DuckDBDatabase`: a ``.duckdb`` file (or ``duckdb:///path``), opened read-only;
- :class:`DataFilesDatabase`: a CSV, TSV, Parquet or JSON(-lines) file, a folder of them or a
  glob. Each file becomes a table named after it (see :func:`table_names`), a view over the file
  in a small DuckDB catalog file that QuorumSQL writes in a private temporary folder before any
  query runs; DuckDB infers the column types. The files are read in place at every query (a
  1 GB Parquet file is not copied).

The locks behind :func:`~quorumsql.db.safety.check_read_only`, each independent of the others:

1. this module's guard (:func:`_guard`), on its own lexer of DuckDB's rules (:func:`_duckdb_tokens`):
   one statement that starts like a query, no DML word (DuckDB runs ``WITH x AS (...) DELETE``
   and ``INSERT`` in a CTE), only the read-only built-in functions of
   :mod:`quorumsql.db.functions` (never ``read_csv``, ``read_text``, ``read_blob``, ``glob``,
   ``query``, ...) and no name that DuckDB would read as a file
   (:func:`~quorumsql.db.functions.file_scan_refusal`);
2. DuckDB itself (:func:`~quorumsql.db.duckdb_worker.connect_locked`): the catalog is read-only,
   external access is off (no file read or written from SQL except the data files of a file
   database, no extension installed or loaded, no ``ATTACH`` of a file), the configuration locked;
3. the kernel, where Linux has Landlock: the process that runs the query may not write, create,
   remove or rename any file nor open a TCP connection
   (:func:`~quorumsql.db.duckdb_worker.restrict_writes`). DuckDB's ``allowed_paths``, which lets
   the views read the data files, lets ``COPY ... TO 'that file' (USE_TMP_FILE false)`` overwrite
   them too: only the guard, the check and this lock stop that. :meth:`privilege_warnings` says so
   when Landlock is missing.

Model-written SQL runs in worker processes (:mod:`quorumsql.db.duckdb_worker`; one per query in
flight, a few kept idle): the timeout interrupts the connection there, a worker that has not
answered :data:`~quorumsql.db.sqlite.KILL_GRACE` s after it is killed, ``RLIMIT_DATA`` bounds what
one query allocates (DuckDB does not count the strings a query builds against its memory limit),
and the rows are counted there against the row and byte caps. The project's own introspection
runs in-process on a connection opened the same way.
"""

from __future__ import annotations

import glob as globbing
import hashlib
import os
import pickle
import re
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quorumsql.db import duckdb_worker
from quorumsql.db.base import Database
from quorumsql.db.functions import Token as FunctionToken
from quorumsql.db.functions import DUCKDB_UNICODE_SPACES, file_scan_refusal, guard_tokens, nested_comment_end, quoted_run
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.db.sqlite import WorkerQueries, _WorkerGone, _WorkerPool, _WorkerProcess
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout, UnsafeSQLError
from quorumsql.sqlnames import quote_identifier

# What one query may allocate in DuckDB (its memory_limit), bytes; Settings.max_query_memory.
DEFAULT_MAX_QUERY_MEMORY = 256 * 1024 * 1024
# Files one file database may hold.
MAX_FILES = 1000
_EXAMPLES = 3
_EXAMPLE_SCAN = 1000  # examples come from the first non-NULL values of a column
_DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of a DuckDB database file
_SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_SUFFIXES = (".duckdb", ".ddb")
# File suffixes read as tables, and how: the DuckDB reader for each format.
_FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
}
_COMPRESSIONS = (".gz", ".zst")
_WORKER_SCRIPT = Path(duckdb_worker.__file__).resolve()
# In-process DuckDB connections are opened one at a time: DuckDB shares one instance per file
# within a process, and a second connection to a locked instance could not apply its settings.
_IN_PROCESS = threading.Lock()


def _require_duckdb() -> None:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        raise DatabaseError(
            "DuckDB files and CSV, TSV, Parquet or JSON files need the duckdb package: "
            "pip install 'quorumsql[duckdb]'"
        ) from None


def _quote_ident(name: str) -> str:
    return quote_identifier(name, "duckdb")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- what a path is -------------------------------------------------------------------------------


def file_magic(path: Path) -> str | None:
    """``"sqlite"`` or ``"duckdb"`` when the file starts like a database of that engine, else None
    (also for a missing or unreadable file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if head == _SQLITE_MAGIC:
        return "sqlite"
    if head[8:12] == _DUCKDB_MAGIC:
        return "duckdb"
    return None


def data_format(path: str | os.PathLike) -> str | None:
    """The format read for a data file by its name: ``csv``, ``tsv``, ``parquet``, ``jsonl``,
    ``json`` (``.gz`` / ``.zst`` compression allowed except for Parquet), or None."""
    name = os.fspath(path).lower()
    for comp in ("", *_COMPRESSIONS):
        for suffix, fmt in _FORMATS.items():
            if name.endswith(suffix + comp) and not (comp and fmt == "parquet"):
                return fmt
    return None


def _stem(path: Path) -> str:
    name = path.name
    lower = name.lower()
    for comp in ("", *_COMPRESSIONS):
        for suffix in _FORMATS:
            if lower.endswith(suffix + comp):
                return name[: len(name) - len(suffix + comp)]
    return path.stem


def has_wildcards(spec: str) -> bool:
    """Whether ``spec`` is a glob pattern (``*``, ``?`` or ``[``)."""
    return any(c in spec for c in "*?[")


def is_data_files_spec(spec: str) -> bool:
    """Whether :func:`~quorumsql.db.open_database` reads ``spec`` (a path, not a URL) as data files:
    a glob, a folder, or a file whose name says CSV / TSV / Parquet / JSON and whose first bytes
    are not those of a SQLite or DuckDB database."""
    p = Path(spec).expanduser()
    if has_wildcards(spec) and not p.exists():
        return True
    if p.is_dir():
        return True
    return data_format(p) is not None and file_magic(p) is None


def is_duckdb_spec(spec: str) -> bool:
    """Whether a path (not a URL) names a DuckDB database: its first bytes say so, or it does not
    start like a SQLite file and is named ``.duckdb`` / ``.ddb``."""
    p = Path(spec).expanduser()
    magic = file_magic(p)
    return magic == "duckdb" or (magic is None and p.suffix.lower() in DUCKDB_SUFFIXES)


def find_data_files(spec: str) -> list[Path]:
    """The data files ``spec`` names, resolved, in a stable order.

    Args:
        spec: a data file, a folder (its data files, not recursive) or a glob pattern (``**``
            matches folders recursively).

    Raises:
        DatabaseError: nothing matches, a named file is missing or not a data file, more than
            :data:`MAX_FILES` files match, or a file name holds ``*``, ``?`` or ``[`` (DuckDB would
            read it as a pattern).
    """
    p = Path(spec).expanduser()
    if has_wildcards(spec) and not p.exists():
        found = [Path(f) for f in globbing.glob(os.path.expanduser(spec), recursive=True)]
        files = sorted(f.resolve() for f in found if f.is_file() and data_format(f))
        if not files:
            raise DatabaseError(f"no CSV, TSV, Parquet or JSON file matches {spec}")
    elif p.is_dir():
        files = sorted(f.resolve() for f in p.iterdir() if f.is_file() and data_format(f))
        if not files:
            raise DatabaseError(f"no CSV, TSV, Parquet or JSON file in the folder {p}")
    elif not p.exists():
        raise DatabaseError(f"data file not found: {p}")
    elif data_format(p) is None:
        raise DatabaseError(f"not a CSV, TSV, Parquet or JSON file (by its name): {p}")
    else:
        files = [p.resolve()]
    if len(files) > MAX_FILES:
        raise DatabaseError(f"{spec} names {len(files):,} files; at most {MAX_FILES:,} can be one database")
    for f in files:
        if has_wildcards(str(f)):
            raise DatabaseError(f"cannot read {f}: DuckDB reads a name with * ? or [ as a pattern; rename the file")
    return files


def table_names(files: Iterable[Path]) -> dict[Path, str]:
    """The table name of each file: the file name without its format and compression suffixes,
    lower-cased, every run of characters other than letters, digits and ``_`` made one ``_``,
    ``t_`` before a leading digit, ``table`` when nothing is left; ``_2``, ``_3`` ... after a name
    already taken (case-insensitively, as DuckDB compares names)."""
    out: dict[Path, str] = {}
    taken: set[str] = set()
    for f in files:
        base = re.sub(r"\W+", "_", _stem(f)).strip("_").lower() or "table"
        if base[0].isdigit():
            base = "t_" + base
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out[f] = name
    return out


def _safe_id(text: str, fallback: str) -> str:
    return re.sub(r"\W+", "_", text).strip("_").lower() or fallback


# -- the guard ------------------------------------------------------------------------------------

_SPACE = " \t\n\r\f\v"
_NAME_START = r"A-Za-z_\u0080-\U0010ffff"
_WORD = re.compile(rf"[{_NAME_START}][{_NAME_START}0-9$]*")
_DOLLAR_TAG = re.compile(rf"\$(?:[{_NAME_START}][{_NAME_START}0-9]*)?\$")
# Words that make a statement that starts like a query write (WITH ... DELETE, DML in a CTE).
_GUARD_WORDS = {"INSERT", "UPDATE", "DELETE", "MERGE"}


def _duckdb_tokens(sql: str) -> list[FunctionToken]:
    """The tokens DuckDB reads in ``sql``, as (kind, value) pairs (:mod:`quorumsql.db.functions`).

    A small lexer of DuckDB's rules (its parser is PostgreSQL's, with standard strings always on),
    independent of sqlglot: ``'...'`` strings with doubled quotes and no backslash escapes,
    ``E'...'`` with backslash escapes, ``B'`` / ``X'`` / ``N'`` strings, dollar-quoted
    ``$tag$ ... $tag$`` strings, ``"..."`` names (``quoted``), ``--`` comments to the end of the
    line, nested ``/* */`` comments. ``U&`` is no escape on DuckDB (``U&"x"`` is ``U & "x"``).
    Any character from U+0080 on is a name character, except :data:`DUCKDB_UNICODE_SPACES`,
    which DuckDB may or may not read as a space depending on its reading of the quotes before
    them (a quote escaped in an ``E'...'`` string misleads it): they are refused outside strings,
    quoted names and comments.

    Raises:
        UnsafeSQLError: such a space outside a string, a quoted name or a comment, or a NUL.
    """
    out: list[FunctionToken] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "\x00":
            raise UnsafeSQLError("refused by the connection: a NUL character in the query")
        if c in _SPACE:
            i += 1
        elif c in DUCKDB_UNICODE_SPACES:
            raise UnsafeSQLError(
                f"refused by the connection: U+{ord(c):04X} outside a string or quoted name is ambiguous "
                "on DuckDB (a space or part of a name, depending on the quotes before it)"
            )
        elif sql.startswith("--", i):
            ends = [k for k in (sql.find("\n", i), sql.find("\r", i)) if k >= 0]
            i = min(ends) + 1 if ends else n
        elif sql.startswith("/*", i):
            i = nested_comment_end(sql, i)
        elif c == "'":
            i, text = quoted_run(sql, i, "'", backslash=False)
            out.append(("string", text))
        elif c == '"':
            i, text = quoted_run(sql, i, '"', backslash=False)
            out.append(("quoted", text))
        elif c == "$" and (m := _DOLLAR_TAG.match(sql, i)) is not None:
            end = sql.find(m.group(), m.end())
            out.append(("string", sql[m.end(): n if end < 0 else end]))
            i = n if end < 0 else end + len(m.group())
        elif (m := _WORD.match(sql, i)) is not None:
            word, j = m.group(), m.end()
            spaces = DUCKDB_UNICODE_SPACES.intersection(word)
            if spaces:
                j = i + min(word.index(s) for s in spaces)  # the word ends there; refused next round
                word = sql[i:j]
            low = word.lower()
            if low in ("e", "b", "x", "n") and j < n and sql[j] == "'":
                i, text = quoted_run(sql, j, "'", backslash=low == "e")
                out.append(("string", text))
            else:
                out.append(("word", word))
                i = j
        elif c.isdigit():
            j = i
            while j < n and (sql[j].isdigit() or sql[j] in "._"):
                j += 1
            out.append(("number", sql[i:j]))
            i = j
        elif sql.startswith("::", i):
            out.append(("symbol", "::"))
            i += 2
        else:
            out.append(("symbol", c))
            i += 1
    return out


def _guard(sql: str, allowed_functions: Iterable[str] = ()) -> None:
    """The connection's own refusal, independent of sqlglot (:func:`_duckdb_tokens`).

    The statement must start like a query (``SELECT``, ``WITH``, ``VALUES``, ``TABLE`` or
    ``(``), be one statement, hold no ``INSERT`` / ``UPDATE`` / ``DELETE`` / ``MERGE`` (DuckDB
    runs them after a ``WITH`` and inside CTEs), call only the read-only built-in functions and
    ``allowed_functions`` (:func:`quorumsql.db.functions.refused_call`), and name no file as a
    table (:func:`quorumsql.db.functions.file_scan_refusal`: ``FROM 'x.csv'``, ``FROM sales.csv``,
    ``glob(...)``).

    Raises:
        UnsafeSQLError: the statement is refused (nothing was sent).
    """
    tokens = _duckdb_tokens(sql)
    guard_tokens(tokens, "duckdb", server="DuckDB", forbidden_words=_GUARD_WORDS, allowed=allowed_functions)
    reason = file_scan_refusal(tokens)
    if reason:
        raise UnsafeSQLError(f"refused by the connection: {reason}")


# -- worker processes -----------------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only the plain values a worker sends (:func:`~.duckdb_worker.plain`)."""

    _ALLOWED = frozenset(
        [("builtins", n) for n in ("list", "dict", "tuple", "set", "frozenset", "bytes", "bytearray", "int",
                                   "float", "complex", "str", "bool")]
        + [("datetime", n) for n in ("date", "time", "datetime", "timedelta", "timezone")]
        + [("decimal", "Decimal"), ("uuid", "UUID")]
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a plain value")


def _plain_loads(data: bytes | bytearray) -> Any:
    import io

    return _PlainUnpickler(io.BytesIO(data)).load()


class _DuckDBWorkerProcess(_WorkerProcess):
    """One ``python -I duckdb_worker.py`` child (see :mod:`quorumsql.db.duckdb_worker`)."""

    engine = "DuckDB"
    idle_exit_seconds = duckdb_worker.IDLE_EXIT_SECONDS

    def command(self) -> list[str]:
        # no -S: the worker imports duckdb from site-packages
        return [sys.executable, "-I", str(_WORKER_SCRIPT)]

    def encode(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, data: bytes | bytearray) -> Any:
        try:
            return _plain_loads(data)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise _WorkerGone(f"an unreadable answer ({exc})") from None


# -- the connector --------------------------------------------------------------------------------


class DuckDBDatabase(WorkerQueries, Database):
    """A DuckDB database file, read-only, bounded in time, memory and files.

    See the module notes for the locks. Queries passed to :meth:`execute` run in worker processes
    (one per query in flight, a few kept idle, each a fresh ``python -I`` that opens the file for
    the query and closes it after, so the file is never held against a writer between queries).
    Views of the file that read other files (``CREATE VIEW v AS FROM 'x.parquet'``) cannot be
    read: external access is off; open the data files themselves instead.

    Args:
        path: the database file (``.duckdb`` by convention; its first bytes must be DuckDB's).
        db_id: the short name (default: the file name without its suffix).
        max_query_memory: DuckDB's ``memory_limit`` for one query, bytes (default 256 MiB); the
            worker may allocate at most twice that plus 256 MiB in all (``RLIMIT_DATA``), and a
            query that needs more fails with a :class:`QueryError` naming this limit.
        threads: DuckDB threads per query (default: one per core).
        query_timeout, max_rows, max_result_bytes, allowed_functions: see
            :class:`~quorumsql.db.base.Database`.

    Raises:
        DatabaseError: duckdb is not installed; the file is missing, a folder or not a DuckDB
            database.
    """

    dialect = "duckdb"
    engine = "DuckDB"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        db_id: str | None = None,
        max_query_memory: int = DEFAULT_MAX_QUERY_MEMORY,
        threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        _require_duckdb()
        p = Path(path).expanduser()
        if not p.exists():
            raise DatabaseError(f"DuckDB database not found: {p}")
        if p.is_dir():
            raise DatabaseError(f"expected a DuckDB file, got a directory: {p}")
        magic = file_magic(p)
        if magic != "duckdb":
            hint = " (it is a SQLite database: open it by its path or sqlite:///)" if magic == "sqlite" else ""
            raise DatabaseError(f"not a DuckDB database: {p}{hint}")
        self.path = p.resolve()
        self.max_query_memory = int(max_query_memory)
        self.threads = threads
        self._allowed_paths: list[str] = []
        super().__init__(db_id or p.stem, **kwargs)
        self._sandbox: int | None = None
        self._config_key: Any = None
        self._config: dict = {}
        self._workers = _WorkerPool(_DuckDBWorkerProcess)
        self._finalizer = weakref.finalize(self, self._workers.close)

    # -- identity -------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        return f"duckdb:///{self.path}"

    def _data_signature(self) -> Any:
        parts = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = path.stat()
            except FileNotFoundError:
                if path == self.path:
                    raise DatabaseError(f"DuckDB database not found: {path}") from None
                parts.append(None)
                continue
            parts.append([st.st_size, st.st_mtime_ns])
        return parts

    def change_stamp(self) -> str:
        """Size and modification time (ns) of the file and of its ``.wal`` file, if any.

        Raises:
            DatabaseError: the file is gone.
        """
        return "/".join("-" if p is None else f"{p[0]}:{p[1]}" for p in self._data_signature())

    @property
    def sandbox(self) -> int | None:
        """The Landlock ABI in force in the query workers (0: the kernel has none, so no
        operating-system lock against file writes); None before the first query."""
        return self._sandbox

    def _read_privileges(self, conn: Any = None) -> list[str]:
        """A DuckDB file needs no warning: with external access off, DuckDB writes no file."""
        return []

    # -- connections ----------------------------------------------------------------------
    @contextmanager
    def _session(self):
        """An in-process read-only, locked connection for the project's own SQL (introspection).

        Raises:
            DatabaseError: the file cannot be opened (missing, held by a writer, ...).
        """
        import duckdb

        with _IN_PROCESS:
            try:
                conn = duckdb_worker.connect_locked(
                    str(self.path), allowed_paths=self._allowed_paths,
                    memory_limit=self.max_query_memory, threads=self.threads,
                )
            except duckdb.Error as exc:
                raise DatabaseError(f"cannot open {self._shown()} read-only: {_first_line(exc)}") from None
            try:
                yield conn
            finally:
                conn.close()

    def _shown(self) -> str:
        return str(self.path)

    def _worker_config(self) -> dict:
        """What a worker needs to open this database (the same dict while nothing changed)."""
        key = (str(self.path), tuple(self._allowed_paths), self.max_query_memory, self.threads)
        if self._config_key != key:
            self._config = {
                "path": str(self.path), "allowed_paths": list(self._allowed_paths),
                "memory_limit": self.max_query_memory, "threads": self.threads,
            }
            self._config_key = key
        return self._config

    # -- execution ------------------------------------------------------------------------
    def _execute(self, sql: str, timeout: float, max_rows: int):
        """Run ``sql`` in a worker after :func:`_guard`; see :meth:`Database._execute`.

        Raises:
            UnsafeSQLError: the guard refused the statement (nothing was sent).
            QueryTimeout: the deadline interrupted the statement, or the worker was killed
                :data:`~quorumsql.db.sqlite.KILL_GRACE` s after ``timeout`` without an answer.
            QueryError: DuckDB refused or failed the query (a file or setting it may not touch,
                memory over ``max_query_memory``), or the worker died.
            DatabaseError: the file cannot be opened, or no worker can be started.
        """
        _guard(sql, self.allowed_functions)
        return self._run_in_worker(sql, timeout, max_rows)

    def _worker_ready(self, answer: tuple) -> None:
        self._sandbox = int(answer[2])


    def _collect(self, worker: _WorkerProcess, kill_at: float, max_frame: int, timeout: float):
        rows: list[tuple[Any, ...]] = []
        while True:
            message = worker.receive(kill_at, max_frame)
            kind = message[0]
            if kind == "rows":
                rows.extend(tuple(r) for r in message[1])
            elif kind == "done":
                rows.extend(tuple(r) for r in message[3])
                worker.retire = bool(message[4])
                return list(message[1]), rows, bool(message[2])
            elif kind == "error":
                worker.retire = bool(message[3])
                self._raise(message[1], message[2], timeout)
            else:  # pragma: no cover - a protocol error
                raise _WorkerGone(f"unexpected answer {kind!r}")

    def _raise(self, kind: str, message: str, timeout: float) -> None:
        first = message.strip().splitlines()[0] if message.strip() else message
        if kind == "timeout":
            raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted")
        if kind == "nomem":
            raise QueryError(
                f"out of memory: the query needed more than the {self.max_query_memory:,} bytes "
                f"one query may use (max_query_memory) ({first})"
            )
        if kind == "open":
            raise DatabaseError(f"cannot open {self._shown()} read-only: {first}")
        if "Permission Error" in message or "Permission denied" in message or "read-only mode" in message:
            message += (
                " (the connection is read-only: no files, extensions, ATTACH or settings; only the "
                "database's tables can be read)"
            )
        raise QueryError(message)

    def worker_pids(self) -> list[int]:
        """Process ids of this database's live query workers (for tests and diagnostics)."""
        return self._workers.pids()

    def close(self) -> None:
        """End the query workers. The object stays usable: the next query starts a new one."""
        self._workers.close()

    # -- introspection --------------------------------------------------------------------
    def _introspect(self) -> DatabaseSchema:
        """Tables and views of the file's own catalog (by name, ``main`` first; DuckDB keeps no
        creation order), their columns (in order, with DuckDB's types and comments), primary and
        foreign keys, and a few example values per column.

        Tables outside the ``main`` schema are named ``schema.table``.

        Raises:
            DatabaseError: the file cannot be opened or read.
        """
        import duckdb

        with self._session() as conn:
            try:
                return self._read_schema(conn)
            except duckdb.Error as exc:
                raise DatabaseError(f"cannot introspect {self._shown()}: {_first_line(exc)}") from None

    def _table_kind(self, kind: str) -> str:
        return kind

    def _read_schema(self, conn) -> DatabaseSchema:
        objects = conn.execute(
            "SELECT schema_name AS s, table_name AS t, 'table', comment FROM duckdb_tables() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary "
            "UNION ALL SELECT schema_name, view_name, 'view', comment FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary "
            "ORDER BY s <> 'main', s, t"
        ).fetchall()
        columns = conn.execute(
            "SELECT schema_name, table_name, column_name, data_type, is_nullable, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND NOT internal ORDER BY schema_name, table_name, column_index"
        ).fetchall()
        constraints = conn.execute(
            "SELECT schema_name, table_name, constraint_type, constraint_column_names, referenced_table, "
            "referenced_column_names FROM duckdb_constraints() WHERE database_name = current_database() "
            "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') ORDER BY schema_name, table_name, constraint_index"
        ).fetchall()

        def qualified(schema: str, name: str) -> str:
            return name if schema == "main" else f"{schema}.{name}"

        primary = {(s, t, c) for s, t, kind, cols, _, _ in constraints if kind == "PRIMARY KEY" for c in cols}
        by_table: dict[tuple[str, str], list[Column]] = {}
        for s, t, c, typ, nullable, comment in columns:
            by_table.setdefault((s, t), []).append(Column(
                name=c, type=str(typ), primary_key=(s, t, c) in primary,
                nullable=bool(nullable) and (s, t, c) not in primary, comment=comment or None,
            ))
        tables = []
        for s, t, kind, comment in objects:
            cols = by_table.get((s, t), [])
            for col in cols:
                col.examples = self._examples(conn, s, t, col.name)
            tables.append(Table(name=qualified(s, t), kind=self._table_kind(kind), comment=comment or None,
                                columns=cols))
        names = {t.name for t in tables}
        foreign = []
        for s, t, kind, cols, ref_table, ref_cols in constraints:
            if kind != "FOREIGN KEY" or not ref_table or len(cols) != len(ref_cols or []):
                continue
            for c, rc in zip(cols, ref_cols):
                fk = ForeignKey(table=qualified(s, t), column=c, ref_table=qualified(s, ref_table), ref_column=rc)
                if fk.ref_table in names and fk not in foreign:
                    foreign.append(fk)
        return DatabaseSchema(db_id=self.db_id, dialect=self.dialect, tables=tables, foreign_keys=foreign)

    def _examples(self, conn, schema: str, table: str, column: str) -> list[Any]:
        import duckdb

        q = _quote_ident(column)
        source = f"{_quote_ident(schema)}.{_quote_ident(table)}"
        try:
            rows = conn.execute(
                f"SELECT DISTINCT {q} FROM (SELECT {q} FROM {source} WHERE {q} IS NOT NULL LIMIT {_EXAMPLE_SCAN}) "
                f"LIMIT {_EXAMPLES}"
            ).fetchall()
        except duckdb.Error:
            return []
        return [duckdb_worker.plain(r[0]) for r in rows if not isinstance(r[0], (bytes, bytearray, memoryview))]


class DataFilesDatabase(DuckDBDatabase):
    """CSV, TSV, Parquet or JSON(-lines) files as one database: each file a table.

    The tables are views in a DuckDB catalog file that this object writes in a private temporary
    folder (removed when the object is collected or the interpreter exits) before any query runs:
    ``CREATE VIEW sales AS SELECT * FROM read_csv('/abs/sales.csv')`` and the like; DuckDB infers
    the types when it reads the file. Queries read the catalog read-only, with external access
    off except for these files (``allowed_paths``). A change of the files (one added, removed,
    rewritten) moves :meth:`change_stamp`; the next :meth:`schema` refresh writes a new catalog.

    Args:
        spec: a data file, a folder of them (not recursive) or a glob pattern (``data/*.parquet``,
            ``logs/**/*.jsonl``); see :func:`find_data_files` and :func:`table_names`.
        db_id: the short name (default: the file's table name; the folder's name for a folder or
            a glob).
        **kwargs: see :class:`DuckDBDatabase`.

    Raises:
        DatabaseError: duckdb is not installed; no data file matches; a file cannot be read as
            its format (DuckDB's reason is given).
    """

    def __init__(self, spec: str | os.PathLike, *, db_id: str | None = None, **kwargs: Any) -> None:
        _require_duckdb()
        text = os.fspath(spec)
        self.spec = os.path.abspath(os.path.expanduser(text))
        files = find_data_files(self.spec)
        if db_id is None:
            p = Path(self.spec)
            if has_wildcards(self.spec) and not p.exists():
                head = next((q for q in p.parents if not has_wildcards(str(q))), p.parent)
                db_id = _safe_id(head.name, "files")
            elif p.is_dir():
                db_id = _safe_id(p.name, "files")
            else:
                db_id = table_names(files)[files[0]]
        self._folder = Path(tempfile.mkdtemp(prefix="quorumsql-duckdb-"))
        self._remove_folder = weakref.finalize(self, shutil.rmtree, str(self._folder), True)
        self._version = 0
        self._files_state: list | None = None
        self.files: list[Path] = []
        catalog = self._build_catalog(files, kwargs.get("max_query_memory", DEFAULT_MAX_QUERY_MEMORY))
        super().__init__(catalog, db_id=db_id, **kwargs)
        self._allowed_paths = [str(f) for f in self.files]

    @property
    def uri(self) -> str:
        return f"duckdb:///{self.spec}"

    def _shown(self) -> str:
        return self.spec

    def _table_kind(self, kind: str) -> str:
        return "table"  # views over the files, tables to whoever asks

    def _state(self, files: list[Path] | None = None) -> list:
        state = []
        for f in files if files is not None else find_data_files(self.spec):
            try:
                st = f.stat()
            except FileNotFoundError:
                state.append([str(f), None, None])
                continue
            state.append([str(f), st.st_size, st.st_mtime_ns])
        return state

    def _data_signature(self) -> Any:
        return self._state()

    def change_stamp(self) -> str:
        """A digest of the matching files' paths, sizes and modification times (ns).

        Raises:
            DatabaseError: no data file matches any more.
        """
        return hashlib.sha256(repr(self._state()).encode()).hexdigest()[:32]

    def _read_privileges(self, conn: Any = None) -> list[str]:
        """One warning when the kernel cannot lock the data files against writes (no Landlock)."""
        if duckdb_worker.landlock_abi() > 0:
            return []
        return [
            "the operating system cannot stop a DuckDB query from writing the data files of "
            f"{self.spec} (Linux Landlock is not available here): DuckDB itself refuses other files, "
            "and the read-only check and the connection's guard refuse COPY, ATTACH and EXPORT; "
            "keep the files read-only for this account to be sure"
        ]

    def _build_catalog(self, files: list[Path], memory_limit: int) -> Path:
        """Write a new catalog with one view per file; returns its path.

        Raises:
            DatabaseError: a file cannot be read as its format.
        """
        import duckdb

        state = self._state(files)
        self._version += 1
        folder = self._folder / str(self._version)
        folder.mkdir()
        path = folder / "quorumsql_files.duckdb"
        readers = {
            "csv": "read_csv({})", "tsv": "read_csv({}, delim = '\\t')", "parquet": "read_parquet({})",
            "jsonl": "read_json({}, format = 'newline_delimited')", "json": "read_json({})",
        }
        with _IN_PROCESS:
            try:
                conn = duckdb.connect(str(path), config={
                    "autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
                    "temp_directory": "", "memory_limit": f"{max(64, memory_limit >> 20)}MiB",
                })
            except duckdb.Error as exc:
                raise DatabaseError(f"cannot write the DuckDB catalog of {self.spec}: {_first_line(exc)}") from None
            try:
                for f, name in table_names(files).items():
                    reader = readers[data_format(f)].format(_literal(str(f)))
                    try:
                        conn.execute(f"CREATE VIEW {_quote_ident(name)} AS SELECT * FROM {reader}")
                    except duckdb.Error as exc:
                        raise DatabaseError(
                            f"cannot read {f} as {data_format(f).upper()}: {_first_line(exc)}") from None
            finally:
                conn.close()
        self.files = list(files)
        self._files_state = state
        return path

    def _introspect(self) -> DatabaseSchema:
        """Write a new catalog first when the files changed since the last one (see the class)."""
        files = find_data_files(self.spec)
        if self._state(files) != self._files_state:
            old = self.path.parent
            self.path = self._build_catalog(files, self.max_query_memory)
            self._allowed_paths = [str(f) for f in self.files]
            shutil.rmtree(old, ignore_errors=True)
        return super()._introspect()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
