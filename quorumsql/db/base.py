"""The connector interface every database engine implements."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quorumsql.db.safety import check_read_only
from quorumsql.db.schema import DatabaseSchema
from quorumsql.errors import QueryError, QueryTimeout, UnsafeSQLError

DEFAULT_QUERY_TIMEOUT = 30.0
DEFAULT_MAX_ROWS = 10_000


class ExecutionResult(BaseModel):
    """Outcome of running one read query.

    Attributes:
        sql: the statement as executed.
        columns: result column names.
        rows: result rows (at most the row cap), values as the driver returns them.
        truncated: more rows existed than the cap allowed.
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
    read-only check, timeouts, row caps and schema caching. Instances are safe to share
    between threads (each execution uses its own connection).

    Attributes:
        dialect: sqlglot dialect name (``sqlite``, ``mysql``, ``postgres``).
        db_id: short name of the database.
        query_timeout: default wall-clock budget per query, seconds.
        max_rows: default cap on fetched rows.
    """

    dialect: str = ""

    def __init__(
        self,
        db_id: str,
        *,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        self.db_id = db_id
        self.query_timeout = query_timeout
        self.max_rows = max_rows
        self._schema: DatabaseSchema | None = None
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

    # -- introspection --------------------------------------------------------------------
    def schema(self, *, refresh: bool = False) -> DatabaseSchema:
        """Tables, columns, keys and a few example values; cached after the first call.

        Raises:
            DatabaseError: the database cannot be read.
        """
        with self._lock:
            if self._schema is None or refresh:
                self._schema = self._introspect()
            return self._schema

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
            max_rows: row cap (default :attr:`max_rows`); ``truncated`` says if rows were cut.

        Raises:
            UnsafeSQLError: not a single read-only query (nothing was sent to the database).
            QueryTimeout: the query ran longer than ``timeout`` and was interrupted.
            QueryError: the database rejected the query.
        """
        checked = check_read_only(sql, self.dialect)
        budget = self.query_timeout if timeout is None else timeout
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
            sql=sql, seconds=time.monotonic() - start, error=str(err), error_kind=kind
        )

    @abstractmethod
    def _execute(
        self, sql: str, timeout: float, max_rows: int
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        """Run an already-checked read query read-only; return (columns, rows, truncated).

        Must raise :class:`QueryTimeout` past ``timeout`` and :class:`QueryError` on failure.
        """

    def close(self) -> None:
        """Release resources (connectors that pool connections override this)."""

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
