"""Locked DuckDB connections, and the child process that runs model-written SQL on them.

:class:`quorumsql.db.duckdb.DuckDBDatabase` starts this file as ``python -I duckdb_worker.py``
(a fresh interpreter, never a fork of the caller; it imports DuckDB and the standard library,
none of the package), sends it queries over its stdin and reads the results from its stdout.
Why a process: a single DuckDB step cannot always be interrupted (``repeat('a', 1e9)`` runs to
its end), and strings a query builds are not counted against DuckDB's ``memory_limit`` (one
``repeat`` of 10^9 characters took 2 GB in-process). Here the time limit is enforced by
interrupting the connection from a timer thread (``conn.interrupt()``), the caller kills a worker
that has not answered shortly after the deadline, and ``RLIMIT_DATA`` bounds everything the
worker allocates.

The caller imports the same module for :func:`connect_locked`, so its own introspection
connections follow the same rules:

- the database file is opened ``read_only`` (DuckDB refuses every write to it);
- ``enable_external_access = false`` once the connection is set up: no file is read or written
  from SQL (``read_csv('/etc/passwd')``, ``COPY ... TO``, ``ATTACH``, ``EXPORT DATABASE``,
  ``INSTALL`` / ``LOAD`` of extensions), except the files of ``allowed_paths`` (the data files a
  file database's views read);
- known extensions are neither installed nor loaded automatically, community and unsigned
  extensions never, persistent secrets are off, nothing spills to a temporary directory, and
  Python objects are never scanned as tables;
- ``lock_configuration = true`` last: no statement can change a setting back.

In this worker, before any query, :func:`restrict_writes` also asks the kernel (Linux Landlock)
to refuse every file write, creation, removal and rename, and every TCP connection, for the rest
of the process's life. DuckDB's own ``allowed_paths`` lets a statement *write* to an allowed
file (``COPY (SELECT 1) TO 'sales.csv' (USE_TMP_FILE false)`` overwrites it), which only this
lock stops at the engine's level.

Protocol (both directions): frames of an 8-byte big-endian length and a :mod:`pickle` payload
(plain values only: the caller unpickles with a restricted unpickler).

- caller -> worker: ``("config", config_dict)`` once before the first query (and again when the
  configuration changes), then ``("query", sql, timeout_s, max_rows, max_bytes)``.
- worker -> caller: ``("ready", pid, sandbox)`` after a config (``sandbox`` is the Landlock ABI
  in force, 0 without); for a query, zero or more ``("rows", [row, ...])`` chunks, then
  ``("done", columns, truncated, [last rows], retire)`` or ``("error", kind, message, retire)``
  with ``kind`` one of ``timeout`` | ``nomem`` | ``open`` | ``error``. ``retire`` is True when
  the worker holds more than half of its memory allowance after the query (memory the allocator
  keeps): the caller then ends it rather than give it another query it could not open.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # run as a script, this file's folder (quorumsql/db, which holds duckdb.py) comes first on
    # sys.path and would shadow the duckdb package
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import datetime
import decimal
import pickle
import select
import signal
import struct
import threading
import time
import uuid

# A worker with no query for this long exits by itself (the caller never reuses one this old).
IDLE_EXIT_SECONDS = 60.0
# A worker whose query runs this long past its timeout ends itself (SIGALRM), in case the
# caller that should have killed it is gone.
SELF_KILL_GRACE = 5.0
# Rows are sent to the caller in chunks of about this many bytes (row_bytes).
CHUNK_BYTES = 4 * 1024 * 1024
# What the worker may allocate beyond two DuckDB memory limits (the interpreter, DuckDB's own
# threads and catalogs, Python's copies of the fetched rows), bytes.
DATA_HEADROOM = 256 * 1024 * 1024

# Settings given at connect time; SET after the start: allowed_paths, external access, lock.
_CONNECT_CONFIG = {
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "false",
    "allow_community_extensions": "false",
    "allow_unsigned_extensions": "false",
    "allow_persistent_secrets": "false",
    "python_enable_replacements": "false",
    "temp_directory": "",
}


def connect_locked(
    path: str,
    *,
    allowed_paths: "list[str] | tuple[str, ...]" = (),
    memory_limit: int = 256 * 1024 * 1024,
    threads: "int | None" = None,
):
    """A read-only, locked DuckDB connection to the database file ``path``.

    Args:
        path: a DuckDB database file.
        allowed_paths: absolute paths of files that SQL may still read once external access is
            off (the data files behind a file database's views); empty for a DuckDB file.
        memory_limit: DuckDB's ``memory_limit``, bytes (buffer-managed memory: joins, sorts,
            aggregates; nothing spills to disk).
        threads: DuckDB worker threads (None: DuckDB's default, one per core).

    Returns:
        A ``duckdb.DuckDBPyConnection``; close it when done (the file stays locked while open).

    Raises:
        duckdb.Error: the file cannot be opened (missing, not DuckDB, held by a writer, written
            by a newer DuckDB) or a setting is unknown to this DuckDB version.
    """
    import duckdb

    config = dict(_CONNECT_CONFIG)
    config["memory_limit"] = f"{max(1, int(memory_limit) // (1024 * 1024))}MiB"
    if threads:
        config["threads"] = str(int(threads))
    conn = duckdb.connect(path, read_only=True, config=config)
    try:
        conn.execute("SET enable_progress_bar = false")
        if allowed_paths:
            conn.execute("SET allowed_paths = ?", [list(allowed_paths)])
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
    except BaseException:
        conn.close()
        raise
    return conn


# -- the kernel's lock: Landlock ----------------------------------------------------------------

_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_RESTRICT_SELF = 444, 446  # the same on every Linux ABI
_PR_SET_NO_NEW_PRIVS = 38
# LANDLOCK_ACCESS_FS_*: every right that changes the file system (not reading, not executing).
_FS_WRITES = {
    1: (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10)
    | (1 << 11) | (1 << 12),  # WRITE_FILE, REMOVE_DIR/FILE, MAKE_CHAR/DIR/REG/SOCK/FIFO/BLOCK/SYM
    2: 1 << 13,  # REFER (link or rename into another folder)
    3: 1 << 14,  # TRUNCATE
}


def _libc_syscall():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return ctypes, libc


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers (0: none), without restricting anything."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        ctypes, libc = _libc_syscall()
        abi = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError, ValueError):  # pragma: no cover - no libc to call
        return 0
    return max(0, int(abi))


def restrict_writes() -> int:
    """Forbid this process, from now on, to write, create, remove, rename or truncate any file,
    and (Landlock ABI 4 and later) to bind or connect a TCP socket; (ABI 6) to signal processes
    outside its own domain.

    Files opened before the call (the pipes to the caller) stay usable. Reading is not
    restricted here (DuckDB's ``enable_external_access`` does that).

    Returns:
        The Landlock ABI version now in force, or 0 when the kernel has no Landlock (not Linux,
        an older kernel, or Landlock disabled); nothing is restricted then.
    """
    abi = landlock_abi()
    if abi < 1:
        return 0
    try:
        ctypes, libc = _libc_syscall()
        syscall = libc.syscall
        fs = 0
        for version, rights in _FS_WRITES.items():
            if abi >= version:
                fs |= rights
        fields = [fs]
        if abi >= 4:
            fields.append((1 << 0) | (1 << 1))  # LANDLOCK_ACCESS_NET_BIND_TCP | CONNECT_TCP
        if abi >= 6:
            fields.append(1 << 1)  # LANDLOCK_SCOPE_SIGNAL
        attr = (ctypes.c_uint64 * len(fields))(*fields)
        fd = syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                     ctypes.c_uint32(0))
        if fd < 0:
            return 0
        try:
            if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                return 0
            if syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
                return 0
        finally:
            os.close(fd)
        return int(abi)
    except (OSError, AttributeError, ValueError):  # pragma: no cover - no libc to call
        return 0


# -- values ---------------------------------------------------------------------------------------

_SCALARS = (int, float, str, bytes, bool, type(None), decimal.Decimal, datetime.date, datetime.time,
            datetime.timedelta, uuid.UUID)


def plain(value):
    """``value`` made of the types the caller unpickles: numbers, text, bytes, ``Decimal``,
    dates and times (a time zone other than a fixed offset becomes its offset), ``UUID``, and
    lists and dicts of those (DuckDB's LIST, STRUCT and MAP); anything else becomes its text."""
    if isinstance(value, (datetime.datetime, datetime.time)) and value.tzinfo is not None \
            and not isinstance(value.tzinfo, datetime.timezone):
        offset = value.utcoffset()
        return value.replace(tzinfo=datetime.timezone(offset) if offset is not None else None)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k) if isinstance(k, _SCALARS) else str(k): plain(v) for k, v in value.items()}
    return str(value)


def row_bytes(row) -> int:
    """Payload size of one row, bytes: the same count as :func:`quorumsql.db.base.row_bytes`
    (8 per value, plus the length of text and binary values and the shallow size of anything
    that is not a number)."""
    n = 8 * len(row)
    for v in row:
        if isinstance(v, (str, bytes)):
            n += len(v)
        elif not isinstance(v, (int, float, type(None))):
            n += sys.getsizeof(v)
    return n


# -- running one query --------------------------------------------------------------------------


class QueryFailed(Exception):
    """A query failed; ``kind`` is ``timeout`` | ``nomem`` | ``open`` | ``error``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _kind(exc: BaseException) -> str:
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or name == "OutOfMemoryException" or "out of memory" in str(exc).lower():
        return "nomem"
    return "error"


def run_query(conn, sql: str, timeout: float, max_rows: int, max_bytes: int, emit) -> tuple:
    """Run ``sql`` on ``conn`` under a deadline and caps, handing rows to ``emit`` in chunks.

    A timer thread calls ``conn.interrupt()`` at the deadline; the statement, or the fetch in
    progress, then fails and no partial result is returned. Rows are fetched in batches that
    start at one row and grow fourfold while rows are small (as
    :func:`quorumsql.db.base.fetch_capped`); a row is kept while the rows kept stay within
    ``max_rows`` and ``max_bytes`` (:func:`row_bytes`, on the values as :func:`plain` makes them).

    Returns:
        ``(columns, truncated, last_rows)``: ``last_rows`` are the kept rows not yet handed to
        ``emit``.

    Raises:
        QueryFailed: ``timeout`` when the deadline interrupted the statement, ``nomem`` when
            DuckDB or Python ran out of the memory allowed, ``error`` otherwise.
    """
    interrupted = threading.Event()

    def stop() -> None:
        interrupted.set()
        conn.interrupt()

    timer = threading.Timer(max(0.0, timeout), stop)
    timer.daemon = True
    timer.start()
    chunk: list = []
    chunk_bytes = 0
    try:
        conn.execute(sql)
        columns = [d[0] for d in conn.description or []]
        kept, used, batch, truncated = 0, 0, 1, False
        while columns:
            rows = conn.fetchmany(min(batch, max_rows + 1 - kept))
            if not rows:
                break
            for raw in rows:
                row = tuple(plain(v) for v in raw)
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
                truncated = bool(conn.fetchmany(1))  # one more fetch tells whether rows were cut
                break
            room = (max_bytes - used) / max(used / max(kept, 1), 1.0)
            batch = int(max(1, min(batch * 4, 1024, room / 4)))
    except Exception as exc:  # duckdb.Error and MemoryError alike
        if interrupted.is_set():
            raise QueryFailed("timeout", f"query exceeded {timeout:g} s and was interrupted") from None
        message = str(exc).strip() or type(exc).__name__
        raise QueryFailed(_kind(exc), message) from None
    finally:
        timer.cancel()
    if interrupted.is_set():
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
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


class _Worker:
    """State of the worker process: its configuration; a connection is opened per query (an open
    connection keeps the file locked against writers)."""

    def __init__(self, out_fd: int) -> None:
        self.out = out_fd
        self.config: dict = {}
        self.sandbox = 0
        self.data_limit = 0

    def configure(self, config: dict) -> None:
        self.config = dict(config)
        limit = 2 * int(config.get("memory_limit") or 0) + DATA_HEADROOM
        if limit != self.data_limit:
            try:
                import resource

                _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
                if hard != resource.RLIM_INFINITY:
                    limit = min(limit, hard)
                resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
                self.data_limit = limit
            except (ImportError, ValueError, OSError):  # pragma: no cover - platform without it
                pass

    def heavy(self) -> bool:
        """Whether this process holds more than half of its data allowance now."""
        if not self.data_limit:
            return False
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmData:"):
                        return int(line.split()[1]) * 1024 > self.data_limit // 2
        except (OSError, ValueError, IndexError):
            pass
        return False

    def answer(self, *frame) -> None:
        _write_frame(self.out, (*frame, self.heavy()))

    def query(self, sql: str, timeout: float, max_rows: int, max_bytes: int) -> None:
        start = time.monotonic()
        deadline = start + timeout
        if 0 < timeout < 1e7:
            signal.setitimer(signal.ITIMER_REAL, timeout + SELF_KILL_GRACE)
        try:
            try:
                conn = connect_locked(
                    self.config["path"], allowed_paths=self.config.get("allowed_paths") or (),
                    memory_limit=self.config.get("memory_limit") or 256 * 1024 * 1024,
                    threads=self.config.get("threads"),
                )
            except Exception as exc:  # noqa: BLE001 - any failure to open is reported as such
                self.answer("error", "nomem" if _kind(exc) == "nomem" else "open",
                            str(exc).strip() or type(exc).__name__)
                return
            try:
                columns, truncated, last = run_query(
                    conn, sql, max(0.0, deadline - time.monotonic()), max_rows, max_bytes,
                    lambda rows: _write_frame(self.out, ("rows", rows)),
                )
            except QueryFailed as exc:
                conn.close()
                self.answer("error", exc.kind, str(exc))
                return
            conn.close()
            self.answer("done", columns, truncated, last)
        except MemoryError:
            _write_frame(self.out, ("error", "nomem", "out of memory", True))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> int:
    """Serve queries on stdin/stdout until stdin closes or the worker has been idle too long."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    in_fd = sys.stdin.fileno()
    out_fd = os.dup(sys.stdout.fileno())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # a stray print can never corrupt the protocol
    import duckdb  # noqa: F401 - loaded before the file system is locked

    worker = _Worker(out_fd)
    worker.sandbox = restrict_writes()
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
        message = pickle.loads(body)
        try:
            if message[0] == "config":
                worker.configure(message[1])
                _write_frame(out_fd, ("ready", os.getpid(), worker.sandbox))
            elif message[0] == "query":
                worker.query(*message[1:])
            else:
                _write_frame(out_fd, ("error", "error", f"unknown request {message[0]!r}", False))
        except BrokenPipeError:
            return 0
        except MemoryError:
            try:
                _write_frame(out_fd, ("error", "nomem", "out of memory", True))
            except (OSError, MemoryError):
                return 1


if __name__ == "__main__":
    sys.exit(main())
