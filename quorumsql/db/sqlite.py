"""SQLite connector: read-only, bounded in time, memory and files.

Model-written SQL runs in small worker processes (:mod:`quorumsql.db.sqlite_worker`) that the
connector kills when a query outlives its timeout; the project's own introspection SQL runs
in-process. Both open the file with the same rules (:func:`~.sqlite_worker.open_readonly`).
"""

from __future__ import annotations

import marshal
import os
import select
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from quorumsql.db import sqlite_worker
from quorumsql.db.base import Database
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout
from quorumsql.sqlnames import quote_identifier

_SQLITE_MAGIC = b"SQLite format 3\x00"
_EXAMPLES = 3


def _quote_ident(name: str) -> str:
    return quote_identifier(name, "sqlite")


DEFAULT_MAX_VALUE_BYTES = 32 * 1024 * 1024
# What one query may allocate inside its worker (SQLite's hard heap limit there), bytes.
DEFAULT_MAX_QUERY_MEMORY = 256 * 1024 * 1024
# A worker whose query has not answered this long after its timeout is killed, seconds.
KILL_GRACE = 0.5
# Idle workers kept per database; more run while more queries run at once.
MAX_IDLE_WORKERS = 4
_WORKER_SCRIPT = Path(sqlite_worker.__file__).resolve()
_LEN = struct.Struct(">Q")
_READ_SIZE = 65536


class _Deadline(Exception):
    """The worker did not answer before the kill deadline."""


class _WorkerGone(Exception):
    """The worker process ended (or its pipe broke) before it answered."""


class _WorkerProcess:
    """One ``python -I -S sqlite_worker.py`` child and its two pipes (see :mod:`.sqlite_worker`).

    Started with :class:`subprocess.Popen` (fork-and-exec of a fresh interpreter: no Python code
    of this process runs in the child, which imports nothing of the package).

    Another engine's worker (:mod:`quorumsql.db.duckdb`) subclasses this and changes
    :attr:`engine`, :attr:`idle_exit_seconds`, :meth:`command` and the frame codec
    (:meth:`encode` / :meth:`decode`).

    Raises:
        DatabaseError: the interpreter cannot be started.
    """

    engine = "SQLite"
    idle_exit_seconds = sqlite_worker.IDLE_EXIT_SECONDS

    def command(self) -> list[str]:
        """The worker's command line."""
        return [sys.executable, "-I", "-S", str(_WORKER_SCRIPT)]

    def encode(self, obj: Any) -> bytes:
        """One frame's payload."""
        return marshal.dumps(obj)

    def decode(self, data: bytes | bytearray) -> Any:
        """What a frame's payload holds."""
        return marshal.loads(data)

    def __init__(self) -> None:
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                close_fds=True, bufsize=0,
            )
        except OSError as exc:
            raise DatabaseError(f"cannot start the {self.engine} query worker ({exc})") from None
        self.config: dict | None = None
        self.retire = False  # set from an answer: end this worker after the query
        self.last_used = time.monotonic()
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout
        self._buffer = bytearray()
        self._poll = select.poll()
        self._poll.register(self._out.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, obj: Any) -> None:
        """Write one frame. Raises _WorkerGone when the worker's stdin is closed."""
        data = self.encode(obj)
        view = memoryview(_LEN.pack(len(data)) + data)
        try:
            while view:
                view = view[os.write(self._in, view):]
        except OSError:  # BrokenPipeError, or the pipe closed by kill()
            raise _WorkerGone() from None

    def receive(self, deadline: float, max_frame: int) -> Any:
        """Read one frame by ``deadline`` (monotonic s). Raises _Deadline or _WorkerGone."""
        (n,) = _LEN.unpack(self._read(_LEN.size, deadline))
        if n > max_frame:
            raise _WorkerGone(f"an answer of {n:,} bytes, over the {max_frame:,} expected")
        return self.decode(self._read(n, deadline))

    def _read(self, n: int, deadline: float) -> bytes | bytearray:
        """``n`` bytes: from what an earlier read brought, then from the pipe."""
        if len(self._buffer) >= n:
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
            return data
        buf = bytearray(n)  # sized once: a large frame is never copied while it grows
        got = len(self._buffer)
        buf[:got] = self._buffer
        self._buffer = bytearray()
        view = memoryview(buf)
        while got < n:
            wait = deadline - time.monotonic()
            if wait <= 0 or not self._poll.poll(wait * 1000):
                raise _Deadline()
            try:
                if n - got >= _READ_SIZE:
                    part = self._out.readinto(view[got:])
                else:  # a small read may bring the start of the next frame: keep it
                    chunk = os.read(self._out.fileno(), _READ_SIZE)
                    part = min(len(chunk), n - got)
                    view[got:got + part] = chunk[:part]
                    self._buffer += chunk[part:]
            except (OSError, ValueError):
                part = 0
            if not part:
                raise _WorkerGone()
            got += part
        return buf

    def kill(self) -> None:
        """End the process (SIGKILL) and reap it; closes both pipes. Idempotent."""
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:  # pragma: no cover - already gone
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process SIGKILL cannot end
            pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:  # pragma: no cover
                pass


class _WorkerPool:
    """The query workers of one database: one per query running, a few kept idle.

    Thread-safe. A worker serves one query at a time; :meth:`acquire` hands out an idle one or
    starts a new one, so queries of several threads run in parallel (a slow candidate never
    makes another one wait). Dead, stale (idle longer than the worker's own idle exit allows) and
    surplus workers are ended, never reused.

    Args:
        factory: the worker class to start (:class:`_WorkerProcess` or a subclass).
    """

    def __init__(self, factory: type[_WorkerProcess] = _WorkerProcess) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._idle: list[_WorkerProcess] = []
        self._busy: set[_WorkerProcess] = set()
        self._generation = 0

    def acquire(self) -> tuple[_WorkerProcess, bool, int]:
        """``(worker, reused, generation)``; starts a worker when none is idle.

        Raises:
            DatabaseError: a worker cannot be started.
        """
        stale: list[_WorkerProcess] = []
        now = time.monotonic()
        found = None
        with self._lock:
            generation = self._generation
            while self._idle:
                worker = self._idle.pop()
                if worker.alive() and now - worker.last_used < self._factory.idle_exit_seconds - 10:
                    found = worker
                    break
                stale.append(worker)
            if found is not None:
                self._busy.add(found)
        for worker in stale:
            worker.kill()
        if found is not None:
            return found, True, generation
        worker = self._factory()
        with self._lock:
            self._busy.add(worker)
        return worker, False, generation

    def release(self, worker: _WorkerProcess, generation: int, healthy: bool) -> None:
        """Give ``worker`` back after a query; it is ended unless healthy and still wanted."""
        with self._lock:
            self._busy.discard(worker)
            keep = healthy and generation == self._generation and len(self._idle) < MAX_IDLE_WORKERS
            if keep:
                worker.last_used = time.monotonic()
                self._idle.append(worker)
        if not keep:
            worker.kill()

    def pids(self) -> list[int]:
        """Process ids of the live workers (idle and busy)."""
        with self._lock:
            return [w.pid for w in [*self._idle, *self._busy] if w.alive()]

    def close(self) -> None:
        """End every worker; a query still running then fails. Later queries start new ones."""
        with self._lock:
            self._generation += 1
            workers = [*self._idle, *self._busy]
            self._idle.clear()
        for worker in workers:
            worker.kill()


def _allowlist(extra: Any) -> frozenset[str] | None:
    """``allowed_functions("sqlite", extra)`` from :mod:`quorumsql.db.functions`; None without it."""
    try:
        from quorumsql.db.functions import allowed_functions
    except ImportError:
        return None
    return frozenset(name.lower() for name in allowed_functions("sqlite", extra or ()))


class WorkerQueries:
    """Running model-written SQL in a pooled worker process, for the SQLite and DuckDB connectors.

    The class using it provides ``_workers`` (a :class:`_WorkerPool`), ``_worker_config()`` (what
    a worker needs to open the database), ``_collect(worker, kill_at, max_frame, timeout)`` (read
    the answer frames), ``max_result_bytes`` and ``engine`` (its name in messages). A worker gets
    the config once, then the query; it is killed :data:`KILL_GRACE` s past the timeout.
    """

    engine = "SQLite"

    def _worker_ready(self, answer: tuple) -> None:
        """Called with a worker's "ready" answer to a new config (DuckDB reads its sandbox level)."""

    def _run_in_worker(self, sql: str, timeout: float, max_rows: int):
        """Run ``sql`` in a worker; (columns, rows, truncated).

        Raises:
            QueryTimeout: interrupted at the deadline, or the worker killed past it.
            QueryError: the engine failed the query, or the worker died.
            DatabaseError: no worker could be started or the database opened.
        """
        start = time.monotonic()
        kill_at = start + timeout + KILL_GRACE
        config = self._worker_config()
        max_frame = 4 * self.max_result_bytes + 4 * len(sql) + (16 << 20)
        for attempt in (1, 2):
            worker, reused, generation = self._workers.acquire()
            healthy = False
            try:
                try:
                    if worker.config != config:
                        worker.config = None
                        worker.send(("config", config))
                        answer = worker.receive(kill_at, max_frame)
                        if answer[0] != "ready":  # pragma: no cover - a protocol error
                            raise _WorkerGone("no ready")
                        self._worker_ready(answer)
                        worker.config = config
                    remaining = kill_at - KILL_GRACE - time.monotonic()
                    worker.send(("query", sql, max(0.0, remaining), max_rows, self.max_result_bytes))
                except _WorkerGone:
                    if reused and attempt == 1:
                        continue  # an idle worker that had ended: the query never reached it
                    raise
                worker.retire = False
                try:
                    columns, rows, truncated = self._collect(worker, kill_at, max_frame, timeout)
                except DatabaseError as exc:
                    # the worker answered in full: keep it, unless it ran out of memory or
                    # asked to be retired (it keeps too much memory)
                    healthy = not str(exc).startswith("out of memory") and not worker.retire
                    raise
                healthy = not worker.retire
                return columns, rows, truncated
            except _Deadline:
                raise QueryTimeout(
                    f"query exceeded {timeout:g} s and was stopped (its worker process was ended)"
                ) from None
            except _WorkerGone as exc:
                if generation != self._workers._generation:
                    raise QueryError("the database was closed while the query ran") from None
                code = worker.proc.poll()
                if code == -14:  # SIGALRM: the worker's own backstop past the deadline
                    raise QueryTimeout(f"query exceeded {timeout:g} s and was stopped") from None
                detail = f": {exc}" if str(exc) else f" (exit status {code})" if code is not None else ""
                raise QueryError(f"the {self.engine} query worker ended during the query{detail}") from None
            finally:
                self._workers.release(worker, generation, healthy)
        raise QueryError(f"the {self.engine} query worker could not be reached")  # pragma: no cover


class SQLiteDatabase(WorkerQueries, Database):
    """A SQLite file opened read-only, bounded in time, memory and files.

    Every connection is a second lock behind :func:`check_read_only`:

    - ``mode=ro`` and ``PRAGMA query_only``: nothing is written to the file. A database in WAL
      mode whose ``-wal`` holds nothing is opened ``immutable=1`` instead, so that reading it
      creates no ``-wal`` / ``-shm`` beside it (see :func:`~.sqlite_worker.open_plan`);
    - an authorizer (:func:`~.sqlite_worker.make_authorizer`) and ``SQLITE_LIMIT_ATTACHED = 0``:
      no ATTACH, DETACH, VACUUM / VACUUM INTO, pragma writes, and only the functions of
      ``quorumsql.db.functions.allowed_functions("sqlite", allowed_functions)`` (never
      ``load_extension``, ``readfile``/``writefile`` or ``fts3_tokenizer``), so no file is created;
    - ``SQLITE_LIMIT_LENGTH = max_value_bytes``: one string or blob (``randomblob(1e9)``,
      ``zeroblob``, ``group_concat``) fails at once with "string or blob too big";
      ``SQLITE_LIMIT_LIKE_PATTERN_LENGTH`` is 10,000 bytes.

    Queries passed to :meth:`execute` run in a worker process (one per query in flight, a few
    kept idle, each ``python -I -S`` of the standard library only). A progress handler there
    interrupts the statement at the deadline; a single step SQLite cannot interrupt (``printf``
    with a huge width, ``instr`` / ``replace`` / ``LIKE`` / ``GLOB`` on long values) is ended by
    killing the worker :data:`KILL_GRACE` seconds after the timeout, and a new worker is started
    for the next query. Inside the worker ``PRAGMA hard_heap_limit = max_query_memory`` (and an
    address-space limit for Python's copies) bound what one query allocates; rows are counted
    there against the row cap and the byte cap, so a row the caps drop never reaches this process.
    Workers end with :meth:`close`, when the object is garbage-collected, at interpreter exit,
    and by themselves when this process dies or after a minute idle.

    Args:
        path: the database file; it must exist and be a SQLite 3 file.
        query_timeout: default seconds per query.
        max_rows: default row cap.
        max_result_bytes: cap on the payload fetched per query (default 64 MiB).
        max_value_bytes: largest string or blob a query may build or read (default 32 MiB).
        max_query_memory: what SQLite may allocate for one query, bytes (default 256 MiB); a
            query that needs more fails with a :class:`QueryError` naming this limit.
        allowed_functions: extra function names the user permits (handled by :class:`Database`).

    Raises:
        DatabaseError: the file is missing, unreadable or not a SQLite database.
    """

    dialect = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_query_memory: int = DEFAULT_MAX_QUERY_MEMORY,
        **kwargs: Any,
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
        self.max_query_memory = int(max_query_memory)
        super().__init__(p.stem, **kwargs)
        self._allowed_key: Any = object()
        self._allowed: frozenset[str] | None = None
        self._config_key: Any = None
        self._config: dict = {}
        self._workers = _WorkerPool()
        self._finalizer = weakref.finalize(self, self._workers.close)

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

        Reading creates no side file (see the class notes), so reads leave the stamp as it was.

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

    def allowed_function_names(self) -> frozenset[str] | None:
        """Lower-case names of the functions a query may call; None when no allowlist exists.

        ``quorumsql.db.functions.allowed_functions("sqlite", self.allowed_functions)``, computed
        once per value of :attr:`allowed_functions`, which the authorizer of every connection
        enforces (with the operators of :data:`~.sqlite_worker.OPERATOR_FUNCTIONS`). Without
        that module only the deny list of :mod:`~.sqlite_worker` applies.
        """
        extra = self.allowed_functions
        if extra != self._allowed_key:
            self._allowed = _allowlist(extra)
            self._allowed_key = extra
        return self._allowed

    def _connect(self) -> sqlite3.Connection:
        """An in-process read-only connection for the project's own SQL (introspection).

        Raises:
            DatabaseError: the file cannot be opened.
        """
        try:
            return sqlite_worker.open_readonly(
                str(self.path), max_value_bytes=self.max_value_bytes, allowed=self.allowed_function_names()
            )
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseError(f"cannot open {self.path} read-only: {exc}") from None

    def _worker_config(self) -> dict:
        """What a worker needs to open this database (the same dict while nothing changed)."""
        allowed = self.allowed_function_names()
        key = (self.max_value_bytes, self.max_query_memory, allowed)
        if self._config_key != key:
            self._config = {
                "path": str(self.path),
                "max_value_bytes": self.max_value_bytes,
                "max_query_memory": self.max_query_memory,
                "like_pattern_bytes": sqlite_worker.DEFAULT_LIKE_PATTERN_BYTES,
                "allowed": None if allowed is None else sorted(allowed),
            }
            self._config_key = key
        return self._config

    def _execute(self, sql: str, timeout: float, max_rows: int):
        """Run ``sql`` in a worker; see :meth:`Database._execute`.

        Raises:
            QueryTimeout: the worker's progress handler interrupted the statement, or the worker
                was killed :data:`KILL_GRACE` s after ``timeout`` without an answer.
            QueryError: SQLite refused or failed the query (a value over ``max_value_bytes``,
                memory over ``max_query_memory``, a denied action), or the worker died.
            DatabaseError: the file cannot be opened, or no worker can be started.
        """
        return self._run_in_worker(sql, timeout, max_rows)

    def _collect(self, worker: _WorkerProcess, kill_at: float, max_frame: int, timeout: float):
        rows: list[tuple[Any, ...]] = []
        while True:
            message = worker.receive(kill_at, max_frame)
            kind = message[0]
            if kind == "rows":
                rows.extend(message[1])
            elif kind == "done":
                rows.extend(message[3])
                return list(message[1]), rows, bool(message[2])
            elif kind == "error":
                self._raise(message[1], message[2], timeout)
            else:  # pragma: no cover - a protocol error
                raise _WorkerGone(f"unexpected answer {kind!r}")

    def _raise(self, kind: str, message: str, timeout: float) -> None:
        if kind == "timeout":
            raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted")
        if kind == "nomem":
            raise QueryError(
                f"out of memory: the query needed more than the {self.max_query_memory:,} bytes "
                "one query may use (max_query_memory)"
            )
        if kind == "open":
            raise DatabaseError(f"cannot open {self.path} read-only: {message}")
        if kind == "changed":
            raise QueryError(f"{message}; run the query again")
        if "too big" in message:
            message += f" (values are limited to {self.max_value_bytes:,} bytes)"
        elif "pattern too complex" in message:
            message += f" (LIKE and GLOB patterns are limited to {sqlite_worker.DEFAULT_LIKE_PATTERN_BYTES:,} bytes)"
        elif "not authorized" in message or "authorization denied" in message:
            message += (
                " (the connection is read-only: no ATTACH, VACUUM, pragma writes, file functions "
                "or functions outside the allowed list)"
            )
        raise QueryError(message)

    def worker_pids(self) -> list[int]:
        """Process ids of this database's live query workers (for tests and diagnostics)."""
        return self._workers.pids()

    def close(self) -> None:
        """End the query workers. The object stays usable: the next query starts a new one."""
        self._workers.close()

    def _introspect(self) -> DatabaseSchema:
        """Read the schema in-process; read again once if the files changed meanwhile.

        A WAL database may be read without locks (``immutable=1``, see the class notes), so a
        writer that started during the reading is caught by comparing the files before and after.

        Raises:
            DatabaseError: the file cannot be opened or read.
        """
        for attempt in (1, 2):
            try:
                before = sqlite_worker.file_state(str(self.path))
            except OSError as exc:
                raise DatabaseError(f"cannot read {self.path}: {exc.strerror}") from None
            schema = self._read_schema()
            try:
                unchanged = sqlite_worker.file_state(str(self.path)) == before
            except OSError:
                unchanged = False
            if unchanged or attempt == 2:
                return schema
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_schema(self) -> DatabaseSchema:
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
