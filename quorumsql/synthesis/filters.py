"""The execution filter of synthesis (DataFlow's SQL execution filter), through ``quorumsql.db`` only.

A synthesized or seed SQL is kept only when it is one read-only query over tables the database
has, and runs within the timeout. Checks, in order, each a named stage (the ``dropped_by`` of a
record that fails it):

``parse``          sqlglot parses it in the database's dialect;
``write``          :func:`quorumsql.db.check_read_only` accepts it (one SELECT / WITH / VALUES,
                   nothing that writes, locks or reads files);
``missing_table``  every table it reads (CTE names aside) is in the database's schema;
``timeout``        it finished within the timeout (the connector interrupts it);
``error``          the database accepted it;
``empty`` / ``all_null``  it returned rows with at least one non-NULL value (unless kept on purpose).

Execution is the connectors' read-only execution (:meth:`quorumsql.db.Database.try_execute`):
a write that slipped past the check would still meet a read-only connection.
"""

from __future__ import annotations

import time
from typing import Any

import sqlglot
from pydantic import BaseModel, Field
from sqlglot import exp
from sqlglot.errors import SqlglotError

from quorumsql.agents.sql_text import result_key
from quorumsql.db import Database, check_read_only
from quorumsql.errors import DatabaseError, UnsafeSQLError
from quorumsql.synthesis.records import preview_rows


class ExecutionCheck(BaseModel):
    """What the execution filter found for one SQL.

    Attributes:
        ok: the SQL passed every check.
        stage: the check it failed (``parse``, ``write``, ``missing_table``, ``timeout``,
            ``error``, ``empty``, ``all_null``); None when ``ok``.
        reason: one line saying why it failed.
        passed: checks passed, in order (``parse``, ``read_only``, ``tables``, ``execution``,
            ``result``; ``result`` only when empty results were checked).
        columns, row_count, preview, result_key, truncated: the result (when it ran).
        seconds: execution time.
    """

    ok: bool
    stage: str | None = None
    reason: str | None = None
    passed: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    row_count: int = 0
    preview: list[list[Any]] = Field(default_factory=list)
    result_key: str | None = None
    truncated: bool = False
    seconds: float = 0.0


def read_tables(tree: exp.Expression) -> list[str]:
    """Tables a parsed query reads, CTE names excluded, first seen first (names as written)."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    names = [t.name for t in tree.find_all(exp.Table) if t.name]
    return list(dict.fromkeys(n for n in names if n.lower() not in ctes))


def execution_filter(
    database: Database,
    sql: str | None,
    *,
    timeout: float,
    max_rows: int = 1000,
    keep_empty: bool = False,
) -> ExecutionCheck:
    """Check and run ``sql`` read-only on ``database``; never raises for a problem of the SQL.

    Args:
        database: an open connector (:func:`quorumsql.db.open_database`).
        sql: the query (None or blank fails ``parse``).
        timeout: wall-clock seconds the query may run.
        max_rows: rows fetched at most (the result key covers those rows).
        keep_empty: accept an empty or all-NULL result.

    Returns:
        An :class:`ExecutionCheck`.
    """
    check = ExecutionCheck(ok=False)
    dialect = database.dialect
    if sql is None or not sql.strip():
        return _fail(check, "parse", "no SQL")
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except (SqlglotError, ValueError) as exc:
        return _fail(check, "parse", f"does not parse as {dialect}: {_first_line(exc)}")
    if not trees:
        return _fail(check, "parse", "no statement")
    check.passed.append("parse")
    try:
        check_read_only(sql, dialect)
    except UnsafeSQLError as exc:
        return _fail(check, "write", f"not a single read-only query: {exc}")
    check.passed.append("read_only")
    try:
        known = {t.name.lower() for t in database.schema().tables}
    except DatabaseError as exc:
        return _fail(check, "error", f"cannot read the database's schema: {exc}")
    missing = [t for t in read_tables(trees[0]) if t.lower() not in known and not t.lower().startswith("sqlite_")]
    if missing:
        return _fail(check, "missing_table", f"no table {', '.join(missing)} in {database.db_id}")
    check.passed.append("tables")
    start = time.monotonic()
    try:
        res = database.try_execute(sql, timeout=timeout, max_rows=max_rows)
    except DatabaseError as exc:  # the connection itself failed (not the query)
        return _fail(check, "error", f"database error: {exc}")
    check.seconds = time.monotonic() - start
    if res.error_kind == "refused":
        return _fail(check, "write", f"refused: {res.error}")
    if res.error_kind == "timeout":
        return _fail(check, "timeout", f"ran past the {timeout:g} s timeout")
    if res.error is not None:
        return _fail(check, "error", _first_line(res.error))
    check.passed.append("execution")
    check.columns, check.row_count, check.truncated = list(res.columns), len(res.rows), res.truncated
    check.preview = preview_rows(res.rows)
    check.result_key = result_key(res.rows)
    if not keep_empty:
        if not res.rows:
            return _fail(check, "empty", "the result is empty")
        if all(v is None for row in res.rows for v in row):
            return _fail(check, "all_null", f"every value of the {len(res.rows)} row(s) is NULL")
        check.passed.append("result")
    check.ok = True
    return check


def _fail(check: ExecutionCheck, stage: str, reason: str) -> ExecutionCheck:
    check.ok, check.stage, check.reason = False, stage, reason
    return check


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]
