"""The connector interface every database engine implements."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quorumsql.db.functions import normalize_names
from quorumsql.db.safety import check_read_only
from quorumsql.db.schema import DatabaseSchema
from quorumsql.errors import InputError, QueryError, QueryTimeout, UnsafeSQLError

DEFAULT_QUERY_TIMEOUT = 30.0
DEFAULT_MAX_ROWS = 10_000
# Cap on the payload of one result (sum of row sizes, see row_bytes): 64 MiB.
DEFAULT_MAX_RESULT_BYTES = 64 * 1024 * 1024


_SIZED = (str, bytes, bytearray, memoryview)
_SCALARS = (int, float, type(None))


def row_bytes(row: Sequence[Any]) -> int:
    """Approximate payload size of one fetched row, in bytes.

    Every value counts 8, plus its length for text (characters) and binary values (bytes), or
    its shallow in-memory size for anything else that is not a number (dates, decimals, JSON,
    arrays). Cheap on purpose: it runs for every fetched row.
    """
    n = 8 * len(row)
    for v in row:
        if isinstance(v, _SIZED):
            n += len(v)
        elif not isinstance(v, _SCALARS):
            n += sys.getsizeof(v)
    return n


def fetch_capped(
    fetch: Callable[[int], Sequence[Sequence[Any]]], max_rows: int, max_bytes: int
) -> tuple[list[tuple[Any, ...]], bool]:
    """Fetch rows in growing batches until the result ends or a cap is reached.

    Args:
        fetch: ``fetch(n)`` returns up to ``n`` more rows (a DB-API ``fetchmany``); an empty
            sequence ends the result.
        max_rows: keep at most this many rows.
        max_bytes: stop once the kept rows (:func:`row_bytes`) would exceed this.

    Returns:
        ``(rows, truncated)``: rows as tuples; ``truncated`` is True when more rows existed
        than ``max_rows``, or when the next row would have passed ``max_bytes`` (the rows kept
        are then the longest prefix under the byte cap).

    Batches start at one row and grow fourfold while rows are small, so a result of huge values
    is never fetched many rows at a time.
    """
    rows: list[tuple[Any, ...]] = []
    used = 0
    batch = 1
    while True:
        chunk = fetch(min(batch, max_rows + 1 - len(rows)))
        if not chunk:
            return rows, False
        for row in chunk:
            if len(rows) >= max_rows:
                return rows, True
            size = row_bytes(row)
            if used + size > max_bytes:
                return rows, True
            used += size
            rows.append(tuple(row))
        if len(rows) >= max_rows:
            # one more fetch tells whether rows were cut
            return rows, bool(fetch(1))
        average = used / max(len(rows), 1)
        room = (max_bytes - used) / max(average, 1.0)
        batch = int(max(1, min(batch * 4, 1024, room / 4)))


class ExecutionResult(BaseModel):
    """Outcome of running one read query.

    Attributes:
        sql: the statement as executed.
        columns: result column names.
        rows: result rows (at most the row cap), values as the driver returns them.
        truncated: rows were cut: more rows existed than the row cap allowed, or the next row
            would have taken the result past the byte cap (``Database.max_result_bytes``).
        seconds: wall-clock time of the execution.
        error: message when the query was refused, failed or timed out; None on success.
        error_kind: ``refused`` | ``error`` | ``timeout`` when ``error`` is set.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    sql: str
    columns: list[str] = Field(default_factory=list)
    rows: list[tuple[Any, ...]] = Field(default_factory=list)
    truncated: bool = False
    seconds: float = 0.0
    error: str | None = None
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        """True when the query ran without error."""
        return self.error is None


class Database(ABC):
    """A database QuorumSQL reads: introspection plus guarded read-only execution.

    Subclasses implement :meth:`_introspect` and :meth:`_execute`; this class adds the
    read-only check, timeouts, row and byte caps, schema caching and change detection.
    Instances are safe to share between threads (each execution uses its own connection).

    Attributes:
        dialect: sqlglot dialect name (``sqlite``, ``mysql``, ``postgres``).
        db_id: short name of the database.
        query_timeout: default wall-clock budget per query, seconds.
        max_rows: default cap on fetched rows.
        max_result_bytes: cap on the payload fetched per query (sum of :func:`row_bytes`);
            a result that reaches it is cut and marked ``truncated``.
        allowed_functions: lower-case names of functions the user permits beyond the
            dialect's read-only built-ins (:mod:`quorumsql.db.functions`), honoured by the check
            and by the connector's own guard.
    """

    dialect: str = ""

    def __init__(
        self,
        db_id: str,
        *,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        allowed_functions: Iterable[str] = (),
    ) -> None:
        try:
            self.allowed_functions: frozenset[str] = normalize_names(allowed_functions)
        except TypeError as exc:
            raise InputError(str(exc)) from None
        if not isinstance(query_timeout, (int, float)) or not query_timeout > 0:
            raise InputError(f"query_timeout must be a number of seconds above 0, got {query_timeout!r}")
        self.db_id = db_id
        self.query_timeout = query_timeout
        self.max_rows = max_rows
        self.max_result_bytes = int(max_result_bytes)
        self._schema: DatabaseSchema | None = None
        self._schema_stamp: str | None = None
        self._privilege_warnings: list[str] | None = None
        self._lock = threading.Lock()

    # -- identity -------------------------------------------------------------------------
    @property
    @abstractmethod
    def uri(self) -> str:
        """A URL that reopens this database, with any password removed."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def fingerprint(self) -> str:
        """A hex digest that changes when the schema or the stored data changes.

        The base implementation hashes the schema and :meth:`_data_signature`.
        """
        payload = json.dumps(
            {"schema": self.schema().model_dump(exclude={"tables": {"__all__": {"columns": {"__all__": {"examples"}}}}}),
             "data": self._data_signature()},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def _data_signature(self) -> Any:
        """Cheap evidence of data changes (file size and mtime, table statistics)."""
        return None

    def change_stamp(self) -> str:
        """A cheap token that changes when the database's structure or data changes.

        Much cheaper than :meth:`fingerprint` (no introspection): file sizes and modification
        times for SQLite, catalog counts and table statistics for the servers. Equal stamps
        mean "probably unchanged"; a server's statistics may lag a write by a moment.

        Raises:
            DatabaseError: the database cannot be reached.
        """
        payload = json.dumps(self._data_signature(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    # -- account ----------------------------------------------------------------------------
    def privilege_warnings(self) -> list[str]:
        """What the connecting account could do beyond reading, one sentence per finding.

        Read once (at connect time for the servers) and cached. Empty for SQLite and for an
        account that holds only read privileges. QuorumSQL refuses writes itself, but the
        account is the lock the server enforces for everything: give it SELECT only (and no
        FILE privilege on MySQL, no superuser or ``pg_read_server_files`` on PostgreSQL).

        Never raises: when the privileges cannot be read, one warning says so.
        """
        with self._lock:
            if self._privilege_warnings is None:
                self._privilege_warnings = self._safe_read_privileges()
            return list(self._privilege_warnings)

    def _safe_read_privileges(self, conn: Any = None) -> list[str]:
        try:
            return list(self._read_privileges(conn))
        except Exception as exc:  # noqa: BLE001 - a warning, never a failure
            reason = str(exc).strip() or type(exc).__name__
            return [
                f"could not read the privileges of the account used for {self.uri} ({reason}); "
                "make sure it holds only SELECT"
            ]

    def _read_privileges(self, conn: Any = None) -> list[str]:
        """Warnings about the account's privileges (connectors for servers override this).

        Args:
            conn: an open connection to reuse, or None to open one.
        """
        return []

    # -- introspection --------------------------------------------------------------------
    def schema(self, *, refresh: bool = False) -> DatabaseSchema:
        """Tables, columns, keys and a few example values; cached after the first call.

        Args:
            refresh: introspect again even when a schema is cached.

        Raises:
            DatabaseError: the database cannot be read.
        """
        with self._lock:
            if self._schema is None or refresh:
                stamp = self._stamp_or_none()  # taken first: a change meanwhile shows later
                self._schema = self._introspect()
                self._schema_stamp = stamp
            return self._schema

    def adopt_schema(self, schema: DatabaseSchema, stamp: str) -> bool:
        """Use a schema read earlier (e.g. kept in a metadata store) if the database is unchanged.

        Spares the introspection of a large database (about 1.2 s at 1,000 tables) when a store
        built from the same state is reused.

        Args:
            schema: the schema as it was read.
            stamp: the :meth:`change_stamp` taken when it was read.

        Returns:
            True when the schema was adopted: no schema was cached and ``stamp`` equals the
            current change stamp; False otherwise (nothing changes).
        """
        if self._schema is not None or self._stamp_or_none() != stamp:
            return False
        with self._lock:
            if self._schema is None:
                self._schema, self._schema_stamp = schema, stamp
                return True
            return False

    def refresh_if_changed(self) -> bool:
        """Introspect again when :meth:`change_stamp` moved since the cached schema was read.

        Returns:
            True when the schema was read again (the stamp differs from the one taken with the
            cached schema); False when nothing changed or no schema is cached yet (the next
            :meth:`schema` call reads a fresh one anyway).

        Raises:
            DatabaseError: the database cannot be reached or read.
        """
        if self._schema is None:
            return False
        stamp = self.change_stamp()
        with self._lock:
            if self._schema is None or stamp == self._schema_stamp:
                return False
            self._schema = self._introspect()
            self._schema_stamp = stamp
            return True

    def _stamp_or_none(self) -> str | None:
        try:
            return self.change_stamp()
        except Exception:  # noqa: BLE001 - no stamp: the next refresh_if_changed re-reads
            return None

    @abstractmethod
    def _introspect(self) -> DatabaseSchema:
        """Read the structure from the database."""

    # -- execution ------------------------------------------------------------------------
    def execute(
        self, sql: str, *, timeout: float | None = None, max_rows: int | None = None
    ) -> ExecutionResult:
        """Run one read query and return its result.

        Args:
            sql: a single SELECT / WITH / VALUES statement in this database's dialect.
            timeout: wall-clock seconds (default :attr:`query_timeout`).
            max_rows: row cap (default :attr:`max_rows`); ``truncated`` says if rows were cut,
                by this cap or by :attr:`max_result_bytes`.

        Raises:
            UnsafeSQLError: not a single read-only query (nothing was sent to the database).
            InputError: ``timeout`` is not above 0.
            QueryTimeout: the query ran longer than ``timeout`` and was interrupted.
            QueryError: the database rejected the query.
        """
        checked = check_read_only(sql, self.dialect, self.allowed_functions)
        budget = self.query_timeout if timeout is None else timeout
        if not budget > 0:
            raise InputError(f"a query timeout must be above 0 seconds, got {budget!r}")
        cap = self.max_rows if max_rows is None else max_rows
        start = time.monotonic()
        columns, rows, truncated = self._execute(checked, budget, cap)
        return ExecutionResult(
            sql=checked,
            columns=columns,
            rows=rows,
            truncated=truncated,
            seconds=time.monotonic() - start,
        )

    def try_execute(
        self, sql: str, *, timeout: float | None = None, max_rows: int | None = None
    ) -> ExecutionResult:
        """Like :meth:`execute` but reports refusals, errors and timeouts in the result.

        Never raises for a problem of the query itself; ``error_kind`` is ``refused``,
        ``timeout`` or ``error``.
        """
        start = time.monotonic()
        try:
            return self.execute(sql, timeout=timeout, max_rows=max_rows)
        except UnsafeSQLError as exc:
            kind, err = "refused", exc
        except QueryTimeout as exc:
            kind, err = "timeout", exc
        except QueryError as exc:
            kind, err = "error", exc
        return ExecutionResult(
            sql=sql if isinstance(sql, str) else repr(sql),
            seconds=time.monotonic() - start,
            error=str(err),
            error_kind=kind,
        )

    @abstractmethod
    def _execute(
        self, sql: str, timeout: float, max_rows: int
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        """Run an already-checked read query read-only; return (columns, rows, truncated).

        Rows are fetched with :func:`fetch_capped` (``max_rows`` and :attr:`max_result_bytes`).
        Must raise :class:`QueryTimeout` when the statement ran past ``timeout`` or was
        interrupted by a time limit (never return a partial result of an interrupted
        statement), and :class:`QueryError` on failure.
        """

    def close(self) -> None:
        """Release resources (connectors that pool connections override this)."""

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
