"""Read-only SQLite connections, and the child process that runs model-written SQL on them.

Plain standard library on purpose: :class:`quorumsql.db.sqlite.SQLiteDatabase` starts this file
as ``python -I -S sqlite_worker.py`` (a fresh interpreter, never a fork of the caller, and none
of the package imported), sends it queries over its stdin and reads the results from its
stdout. The caller kills a worker whose query outlives the deadline, because some single steps
of SQLite cannot be interrupted by a progress handler (``printf('%.*c', 1e9, 'x')``, ``instr``,
``replace``, ``LIKE`` and ``GLOB`` on long values are quadratic or loop in C). The memory bound
(``PRAGMA hard_heap_limit``, which is process-wide, and ``RLIMIT_AS``) is applied here, in the
worker, so it never touches the caller's own SQLite users (chromadb).

The package imports the same module for :func:`open_readonly` and :func:`make_authorizer`, so
the caller's own introspection connections follow the same rules.

Protocol (both directions): frames of an 8-byte big-endian length and a :mod:`marshal` payload.

- caller -> worker: ``("config", config_dict)`` once before the first query (and again when the
  configuration changes), then ``("query", sql, timeout_s, max_rows, max_bytes)``.
- worker -> caller: ``("ready", pid)`` after a config; for a query, zero or more
  ``("rows", [row, ...])`` chunks, then ``("done", columns, truncated, [last rows])`` or
  ``("error", kind, message)`` with ``kind`` one of ``timeout`` | ``nomem`` | ``open`` |
  ``changed`` | ``error``.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import sqlite3
import struct
import sys
import time
from urllib.parse import quote

# Pragmas the authorizer lets through. Those that take a table or index name only read;
# the others are allowed only without an argument (reading, never setting, a value).
NAMED_READ_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list", "table_list"}
)
VALUE_READ_PRAGMAS = frozenset(
    {
        "user_version", "schema_version", "application_id", "page_count", "page_size",
        "freelist_count", "encoding", "foreign_keys", "data_version", "compile_options",
        "database_list", "collation_list", "function_list", "module_list", "pragma_list",
        "query_only", "journal_mode", "table_list",
    }
)
# Functions that reach outside the database or leak process memory (fts3_tokenizer returns a
# heap pointer); several exist only in the sqlite3 shell. Denied even when an allowlist names them.
DENIED_FUNCTIONS = frozenset(
    {"load_extension", "readfile", "writefile", "fts3_tokenizer", "edit", "fsdir", "zipfile"}
)
# Operators and keywords SQLite reports to the authorizer as function calls: SQL syntax, not
# functions a query names, so an allowlist of functions never refuses them.
OPERATOR_FUNCTIONS = frozenset(
    {"like", "glob", "match", "->", "->>", "current_date", "current_time", "current_timestamp"}
)
# Authorizer actions that create, change or remove something. The connection is read-only
# already; denying them at prepare time is the same answer, earlier and with a clear reason.
# (SQLITE_UPDATE is not among them: SQLite reports it on sqlite_master when a table-valued
# function such as json_each or pragma_table_info is first used.)
WRITE_ACTIONS = frozenset(
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

DEFAULT_LIKE_PATTERN_BYTES = 10_000
# A worker with no query for this long exits by itself (the caller never reuses one this old).
IDLE_EXIT_SECONDS = 60.0
# A worker whose query runs this long past its timeout ends itself (SIGALRM), in case the
# caller that should have killed it is gone.
SELF_KILL_GRACE = 5.0
# Rows are sent to the caller in chunks of about this many bytes (row_bytes).
CHUNK_BYTES = 4 * 1024 * 1024
_WAL_HEADER = 32


def _decode(raw: bytes) -> str:
    """Text cells that are not valid UTF-8 are decoded with replacement, never an exception."""
    return raw.decode("utf-8", errors="replace")


def make_authorizer(allowed: "frozenset[str] | None" = None):
    """An authorizer callback (``sqlite3_set_authorizer``) for one database's connections.

    Args:
        allowed: lower-case names of the functions a query may call (the operators of
            :data:`OPERATOR_FUNCTIONS` are always allowed); None keeps only the deny list
            (:data:`DENIED_FUNCTIONS`). Functions on the deny list are refused either way.
            Table-valued functions (``json_each``, ``pragma_table_info``) are not reported
            as function calls but as reads of a virtual table (and, for the pragma ones, as the
            pragma they run, which the pragma rule below decides).

    Returns:
        ``authorize(action, arg1, arg2, db, source) -> SQLITE_OK | SQLITE_DENY``. It denies ATTACH
        and DETACH (VACUUM and VACUUM INTO attach their target, so they are denied too), pragmas
        other than the read-only ones (:data:`NAMED_READ_PRAGMAS`, and
        :data:`VALUE_READ_PRAGMAS` without an argument), functions outside ``allowed`` or on the
        deny list, and every action in :data:`WRITE_ACTIONS`.
    """
    ok, deny = sqlite3.SQLITE_OK, sqlite3.SQLITE_DENY
    refused = frozenset({sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH}) | WRITE_ACTIONS
    pragma, function = sqlite3.SQLITE_PRAGMA, sqlite3.SQLITE_FUNCTION
    allowed = None if allowed is None else (frozenset(allowed) | OPERATOR_FUNCTIONS) - DENIED_FUNCTIONS

    def authorize(action, arg1, arg2, _db, _source):
        if action in refused:
            return deny
        if action == pragma:
            name = (arg1 or "").lower()
            if name in NAMED_READ_PRAGMAS or (name in VALUE_READ_PRAGMAS and arg2 is None):
                return ok
            return deny
        if action == function:
            name = (arg2 or "").lower()
            if name in DENIED_FUNCTIONS or (allowed is not None and name not in allowed):
                return deny
        return ok

    return authorize


# -- opening a file without creating anything beside it ----------------------------------------


def file_state(path: str) -> tuple:
    """What tells whether ``path`` or its side files changed: a tuple to compare for equality.

    The main file's device, inode, size and modification time (ns); size and mtime of its
    ``-wal`` and ``-journal`` files (None when absent); whether ``-shm`` exists.

    Raises:
        OSError: the main file cannot be stat-ed.
    """
    st = os.stat(path)
    parts: list = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    for suffix in ("-wal", "-journal"):
        try:
            side = os.stat(path + suffix)
            parts.append((side.st_size, side.st_mtime_ns))
        except FileNotFoundError:
            parts.append(None)
    parts.append(os.path.exists(path + "-shm"))
    return tuple(parts)


def open_plan(path: str) -> str:
    """How to open ``path`` so that reading it creates no file beside it.

    Returns:
        ``"ro"``: open with ``mode=ro`` and SQLite's locking. A rollback-journal database reads
        that way without creating anything; so does a WAL database whose ``-wal`` and ``-shm``
        already exist (a connected or crashed writer: the committed WAL content is read). A
        ``-wal`` with content but no ``-shm`` is read the same way, and SQLite then creates the
        ``-shm`` it needs: the only way to avoid it would be to ignore committed rows.

        ``"immutable"``: open with ``immutable=1`` (no locks, no side files). Used when the
        database is in WAL mode (or has a stray empty ``-wal``) and no WAL content exists, so the
        main file holds every committed row; ``mode=ro`` would create ``-wal`` and ``-shm``.
        Without locks a writer that starts meanwhile is not seen: callers compare
        :func:`file_state` before and after the query and run it again if the files changed.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as fh:
        header = fh.read(20)
    wal_mode = len(header) >= 20 and (header[18] == 2 or header[19] == 2)

    def size(suffix: str) -> "int | None":
        try:
            return os.stat(path + suffix).st_size
        except FileNotFoundError:
            return None

    wal, shm = size("-wal"), size("-shm")
    if size("-journal") is not None:
        return "ro"  # a (possibly hot) rollback journal: let SQLite's locking decide
    if wal is not None and (wal > 0 or shm is not None):
        return "ro"
    if wal_mode or wal is not None:
        return "immutable"
    return "ro"


def open_readonly(
    path: str,
    *,
    max_value_bytes: int,
    allowed: "frozenset[str] | None" = None,
    like_pattern_bytes: int = DEFAULT_LIKE_PATTERN_BYTES,
    plan: "str | None" = None,
) -> sqlite3.Connection:
    """Open ``path`` read-only with the connection-level locks of QuorumSQL.

    ``mode=ro`` (or ``immutable=1``, see :func:`open_plan`), ``PRAGMA query_only``, the
    authorizer of :func:`make_authorizer`, ``SQLITE_LIMIT_ATTACHED = 0``,
    ``SQLITE_LIMIT_LENGTH = max_value_bytes`` (bytes of one string or blob) and
    ``SQLITE_LIMIT_LIKE_PATTERN_LENGTH = like_pattern_bytes``. Text that is not UTF-8 is decoded
    with replacement characters.

    Args:
        path: the database file.
        max_value_bytes: largest string or blob a statement may build or read, bytes.
        allowed: functions a statement may call (see :func:`make_authorizer`); None: all but
            the deny list.
        like_pattern_bytes: longest LIKE / GLOB pattern, bytes.
        plan: ``"ro"`` or ``"immutable"``; None asks :func:`open_plan`.

    Raises:
        sqlite3.Error: the file cannot be opened.
        OSError: the file cannot be read.
    """
    plan = plan or open_plan(path)
    suffix = "mode=ro&immutable=1" if plan == "immutable" else "mode=ro"
    conn = sqlite3.connect(f"file:{quote(path)}?{suffix}", uri=True, check_same_thread=False)
    try:
        conn.text_factory = _decode
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, int(max_value_bytes))
        conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, int(like_pattern_bytes))
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(make_authorizer(allowed))
    except BaseException:
        conn.close()
        raise
    return conn


# -- running one query --------------------------------------------------------------------------


def row_bytes(row) -> int:
    """Payload size of one SQLite row, bytes: 8 per value plus the length of text and blobs.

    The same count as :func:`quorumsql.db.base.row_bytes` for the types SQLite returns.
    """
    n = 8 * len(row)
    for v in row:
        if isinstance(v, (str, bytes)):
            n += len(v)
    return n


class QueryFailed(Exception):
    """A query failed; ``kind`` is ``timeout`` | ``nomem`` | ``changed`` | ``error``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def run_query(conn: sqlite3.Connection, sql: str, timeout: float, max_rows: int, max_bytes: int, emit) -> tuple:
    """Run ``sql`` on ``conn`` under a deadline and caps, handing rows to ``emit`` in chunks.

    Rows are fetched in batches that start at one row and grow fourfold while rows are small
    (as :func:`quorumsql.db.base.fetch_capped`); a row is kept while the rows kept stay within
    ``max_rows`` and ``max_bytes`` (:func:`row_bytes`).

    Args:
        conn: an open connection (:func:`open_readonly`).
        sql: one statement.
        timeout: seconds; a progress handler interrupts the statement after that.
        max_rows: keep at most this many rows.
        max_bytes: stop once the kept rows would pass this many bytes.
        emit: ``emit(rows)`` receives each full chunk of kept rows (tuples), about
            :data:`CHUNK_BYTES` at a time.

    Returns:
        ``(columns, truncated, last_rows)``: truncated when more rows existed than ``max_rows``
        or the next row would have passed ``max_bytes``; ``last_rows`` are the kept rows not yet
        handed to ``emit`` (the whole result when it is small).

    Raises:
        QueryFailed: ``timeout`` when the deadline interrupted the statement (a partial result
            is never returned), ``nomem`` when SQLite or Python ran out of the memory allowed,
            ``error`` for anything else SQLite refused.
    """
    deadline = time.monotonic() + timeout
    timed_out = False

    def progress() -> int:
        nonlocal timed_out
        if time.monotonic() > deadline:
            timed_out = True
            return 1  # non-zero interrupts the statement
        return 0

    conn.set_progress_handler(progress, 1000)
    chunk: list = []
    chunk_bytes = 0
    try:
        cur = conn.execute(sql)
        columns = [d[0] for d in cur.description or []]
        kept, used, batch, truncated = 0, 0, 1, False
        while True:
            rows = cur.fetchmany(min(batch, max_rows + 1 - kept))
            if not rows:
                break
            for row in rows:
                size = row_bytes(row)
                if kept >= max_rows or used + size > max_bytes:
                    truncated = True
                    break
                kept += 1
                used += size
                chunk.append(row)
                chunk_bytes += size
                if chunk_bytes >= CHUNK_BYTES:
                    emit(chunk)
                    chunk, chunk_bytes = [], 0
            if truncated:
                break
            if kept >= max_rows:
                truncated = bool(cur.fetchmany(1))  # one more fetch tells whether rows were cut
                break
            room = (max_bytes - used) / max(used / max(kept, 1), 1.0)
            batch = int(max(1, min(batch * 4, 1024, room / 4)))
        cur.close()
    except MemoryError:  # Python's sqlite3 raises it for SQLITE_NOMEM too
        raise QueryFailed("nomem", "out of memory") from None
    except sqlite3.Error as exc:
        if timed_out:
            raise QueryFailed("timeout", f"query exceeded {timeout:g} s and was interrupted") from None
        message = str(exc) or type(exc).__name__
        raise QueryFailed("nomem" if "out of memory" in message.lower() else "error", message) from None
    finally:
        conn.set_progress_handler(None, 0)
    if timed_out:
        raise QueryFailed("timeout", f"query exceeded {timeout:g} s and was interrupted")
    return columns, truncated, chunk


# -- the worker process -------------------------------------------------------------------------

_LEN = struct.Struct(">Q")


def _read_exact(fd: int, n: int) -> "bytes | None":
    parts, got = [], 0
    while got < n:
        part = os.read(fd, min(n - got, 1 << 20))
        if not part:
            return None
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _write_frame(fd: int, obj) -> None:
    data = marshal.dumps(obj)
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


class _Worker:
    """State of the worker process: its configuration and one cached connection."""

    def __init__(self, out_fd: int) -> None:
        self.out = out_fd
        self.config: dict = {}
        self.allowed: "frozenset[str] | None" = None
        self.conn: "sqlite3.Connection | None" = None
        self.conn_state: "tuple | None" = None
        self.conn_plan = "ro"
        self.heap_limit = 0

    def configure(self, config: dict) -> None:
        self._drop_connection()
        self.config = dict(config)
        allowed = config.get("allowed")
        self.allowed = None if allowed is None else frozenset(allowed)
        heap = int(config.get("max_query_memory") or 0)
        if heap and heap != self.heap_limit:
            probe = sqlite3.connect(":memory:")
            try:
                probe.execute(f"PRAGMA hard_heap_limit = {heap}")  # process-wide: this process only
            finally:
                probe.close()
            try:
                import resource

                # Python's own copy of a row comes on top of SQLite's heap; bound both, so the
                # worker stays under 2 x max_query_memory + 256 MiB of address space.
                limit = 2 * heap + 256 * 1024 * 1024
                _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
                if hard != resource.RLIM_INFINITY:
                    limit = min(limit, hard)
                resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
            except (ImportError, ValueError, OSError):  # pragma: no cover - platform without it
                pass
            self.heap_limit = heap

    def _drop_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except sqlite3.Error:  # pragma: no cover
                pass
        self.conn, self.conn_state = None, None

    def _connection(self, path: str, state: tuple) -> "tuple[sqlite3.Connection, str]":
        """A connection for this query and its plan; reused while the files are unchanged.

        A ``mode=ro`` connection to a WAL database is never kept: an idle one would hold the
        shared lock that lets a writer's last close checkpoint and remove its -wal and -shm.
        """
        if self.conn is not None and self.conn_state == state:
            return self.conn, self.conn_plan
        self._drop_connection()
        plan = open_plan(path)
        conn = open_readonly(
            path,
            max_value_bytes=self.config["max_value_bytes"],
            allowed=self.allowed,
            like_pattern_bytes=self.config.get("like_pattern_bytes", DEFAULT_LIKE_PATTERN_BYTES),
            plan=plan,
        )
        wal_side_files = state[4] is not None or state[6]
        if plan == "immutable" or not wal_side_files:
            self.conn, self.conn_state, self.conn_plan = conn, state, plan
        return conn, plan

    def query(self, sql: str, timeout: float, max_rows: int, max_bytes: int) -> None:
        path = self.config["path"]
        start = time.monotonic()
        deadline = start + timeout
        if 0 < timeout < 1e7:
            signal.setitimer(signal.ITIMER_REAL, timeout + SELF_KILL_GRACE)
        try:
            for attempt in (1, 2):
                try:
                    state = file_state(path)
                    conn, plan = self._connection(path, state)
                except (OSError, sqlite3.Error) as exc:
                    self._drop_connection()
                    _write_frame(self.out, ("error", "open", str(exc) or type(exc).__name__))
                    return
                sent: list = []

                def emit(rows: list) -> None:
                    if plan == "immutable":
                        sent.append(rows)  # held back until the files are known unchanged
                    else:
                        _write_frame(self.out, ("rows", rows))

                try:
                    columns, truncated, last = run_query(
                        conn, sql, max(0.0, deadline - time.monotonic()), max_rows, max_bytes, emit
                    )
                except QueryFailed as exc:
                    if exc.kind == "nomem":
                        self._drop_connection()
                    _write_frame(self.out, ("error", exc.kind, str(exc)))
                    return
                finally:
                    if conn is not self.conn:
                        conn.close()
                if plan == "immutable":
                    try:
                        unchanged = file_state(path) == state
                    except OSError:
                        unchanged = False
                    if not unchanged:
                        self._drop_connection()  # read without locks while a writer was at work
                        if attempt == 1 and time.monotonic() < deadline:
                            continue
                        _write_frame(self.out, ("error", "changed", "the database file changed while it was read"))
                        return
                    for rows in sent:
                        _write_frame(self.out, ("rows", rows))
                _write_frame(self.out, ("done", columns, truncated, last))
                return
        except MemoryError:
            self._drop_connection()
            _write_frame(self.out, ("error", "nomem", "out of memory"))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> int:
    """Serve queries on stdin/stdout until stdin closes or the worker has been idle too long."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    in_fd = sys.stdin.fileno()
    out_fd = os.dup(sys.stdout.fileno())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # a stray print can never corrupt the protocol
    worker = _Worker(out_fd)
    while True:
        ready, _, _ = select.select([in_fd], [], [], IDLE_EXIT_SECONDS)
        if not ready:
            return 0
        head = _read_exact(in_fd, _LEN.size)
        if head is None:
            return 0
        body = _read_exact(in_fd, _LEN.unpack(head)[0])
        if body is None:
            return 0
        message = marshal.loads(body)
        try:
            if message[0] == "config":
                worker.configure(message[1])
                _write_frame(out_fd, ("ready", os.getpid()))
            elif message[0] == "query":
                worker.query(*message[1:])
            else:
                _write_frame(out_fd, ("error", "error", f"unknown request {message[0]!r}"))
        except BrokenPipeError:
            return 0
        except MemoryError:
            try:
                _write_frame(out_fd, ("error", "nomem", "out of memory"))
            except (OSError, MemoryError):
                return 1


if __name__ == "__main__":
    sys.exit(main())
