"""The MCP server: QuorumSQL's databases and answers as Model Context Protocol tools.

``quorumsql mcp DB [DB ...]`` serves, over stdio (default) or streamable HTTP on a loopback
address, four tools and one resource per database:

- ``ask(question, evidence=None, database=None)``: the :class:`quorumsql.Pipeline` answer:
  SQL, columns, rows (capped), confidence, warnings (and ``explanation`` when the Answer has one).
- ``list_tables(database=None)``: the tables and views of one database, or of every one served.
- ``describe_table(table, database=None)``: the M-Schema of one table, with example values and
  the foreign keys that touch it.
- ``run_sql(sql, database=None)``: one read-only query through :meth:`quorumsql.Database.execute`
  (the read-only check, then the read-only connection), row-capped.
- resource ``quorumsql://<name>/mschema``: the database's whole M-Schema.

The server sits above the public API: it opens every database once, through one
:class:`~quorumsql.Pipeline`, and answers with it. The tool logic lives in :class:`QuorumTools`
(plain methods that raise :class:`~quorumsql.errors.QuorumSQLError`, testable without the SDK);
:func:`build_server` registers it with the official Python SDK (``mcp``, its ``MCPServer``),
where every failure becomes an MCP error result (``isError``) with a one-line message and the
server keeps running.

The module is ``mcp_server`` and not ``mcp``: ``quorumsql/mcp.py`` would be found instead of the
SDK by any code run with ``quorumsql/`` on ``sys.path`` (a script in the folder, some tools).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from quorumsql import Database, Pipeline, __version__
from quorumsql.errors import (
    ConfigError,
    InputError,
    QueryError,
    QueryTimeout,
    QuorumSQLError,
    UnsafeSQLError,
)
from quorumsql.records import jsonable
from quorumsql.schema_repr import to_mschema

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

DEFAULT_MAX_ROWS = 100
"""Rows a tool returns at most unless ``max_rows`` says otherwise (they go into a model's context)."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""The only addresses the HTTP transport listens on."""

INSTALL_HINT = "pip install 'quorumsql[mcp]'"

log = logging.getLogger(__name__)


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split()) or "unknown error"


def require_sdk() -> None:
    """Check that the MCP Python SDK is importable.

    Raises:
        ConfigError: the ``mcp`` package is not installed (the message says how to install it),
            or it is a version without ``mcp.server.mcpserver`` (1.x).
    """
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing == "mcp" or missing.startswith("mcp."):
            raise ConfigError(
                f"the MCP server needs the MCP Python SDK 2.x (package 'mcp'): {INSTALL_HINT}"
            ) from None
        raise ConfigError(f"the MCP Python SDK cannot be imported ({one_line(exc)}): {INSTALL_HINT}") from None


def check_loopback(host: str) -> str:
    """Return ``host`` when it is a loopback address the HTTP transport may listen on.

    Raises:
        InputError: any other host: the server has no authentication and reads databases, so it
            never listens beyond this machine.
    """
    if host not in LOOPBACK_HOSTS:
        raise InputError(
            f"the MCP server listens on loopback only ({', '.join(LOOPBACK_HOSTS)}); refusing {host!r}"
        )
    return host


@dataclass(frozen=True)
class ServedDatabase:
    """One database the server serves.

    Attributes:
        name: the name clients pass as ``database`` (the database's ``db_id``, made unique).
        spec: the path or URL it was opened from (the key the pipeline caches it under).
        database: the open connector.
    """

    name: str
    spec: str
    database: Database

    @property
    def resource_uri(self) -> str:
        """``quorumsql://<name>/mschema``, the URI of its M-Schema resource."""
        return f"quorumsql://{quote(self.name, safe='')}/mschema"


class QuorumTools:
    """The MCP tools as plain methods over one :class:`~quorumsql.Pipeline`.

    Every database is opened (and its schema read) once, here; the methods return JSON-ready
    dicts or text and raise :class:`~quorumsql.errors.QuorumSQLError` for anything the caller
    can fix. Safe to call from several threads (``ask`` runs one question at a time).

    Args:
        databases: paths or URLs (or :class:`~quorumsql.Database` objects) to serve; at least one.
        pipeline: the pipeline that opens and answers (default: ``Pipeline()`` from the settings).
        max_rows: rows ``ask`` and ``run_sql`` return at most (at least 1).

    Raises:
        InputError: no database, or ``max_rows`` below 1.
        DatabaseError: a database cannot be opened or read.
    """

    def __init__(
        self,
        databases: Sequence[str | os.PathLike | Database],
        *,
        pipeline: Pipeline | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        if not databases:
            raise InputError("name at least one database to serve")
        if not isinstance(max_rows, int) or max_rows < 1:
            raise InputError(f"max_rows must be at least 1, got {max_rows!r}")
        self.pipeline = pipeline or Pipeline()
        self.max_rows = max_rows
        self._ask_lock = threading.Lock()
        self.served: dict[str, ServedDatabase] = {}
        for db in databases:
            spec = db if isinstance(db, Database) else os.fspath(db)
            database = self.pipeline.database(spec)
            database.schema()  # read now: a database that cannot be read fails at start-up
            name = base = database.db_id or "db"
            n = 2
            while name.lower() in (k.lower() for k in self.served):
                name, n = f"{base}_{n}", n + 1
            self.served[name] = ServedDatabase(name, spec, database)

    # -- lookup -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The served database names, in the order given."""
        return list(self.served)

    def resolve(self, database: str | None) -> ServedDatabase:
        """The served database called ``database`` (case-insensitive); the only one when None.

        Raises:
            InputError: ``database`` names none of the served databases, or it is missing while
                several are served (the message lists the names).
        """
        listed = ", ".join(self.served)
        if database is None or (isinstance(database, str) and not database.strip()):
            if len(self.served) == 1:
                return next(iter(self.served.values()))
            raise InputError(f"this server serves several databases ({listed}); say which one with 'database'")
        if not isinstance(database, str):
            raise InputError(f"'database' must be a name ({listed}), got {database!r}")
        wanted = database.strip()
        found = self.served.get(wanted) or next(
            (s for name, s in self.served.items() if name.lower() == wanted.lower()), None
        )
        if found is None:
            raise InputError(f"unknown database {wanted!r}; this server serves: {listed}")
        return found

    def _schema(self, served: ServedDatabase):
        served.database.refresh_if_changed()  # a cheap stamp; re-read when the database changed
        return served.database.schema()

    # -- tools --------------------------------------------------------------------------------
    def list_tables(self, database: str | None = None) -> dict[str, Any]:
        """The tables and views of one served database, or of all of them when ``database`` is None.

        Returns:
            ``{"databases": [{"database": name, "dialect": ..., "tables": [{"name", "kind",
            "columns" (a count), "comment" (when the database has one)}]}]}``.

        Raises:
            InputError: unknown database name.
            DatabaseError: the database cannot be read.
        """
        chosen = list(self.served.values()) if database is None else [self.resolve(database)]
        out = []
        for served in chosen:
            schema = self._schema(served)
            tables = []
            for t in schema.tables:
                entry: dict[str, Any] = {"name": t.name, "kind": t.kind, "columns": len(t.columns)}
                if t.comment:
                    entry["comment"] = t.comment
                tables.append(entry)
            out.append({"database": served.name, "dialect": schema.dialect, "tables": tables})
        return {"databases": out}

    def describe_table(self, table: str, database: str | None = None) -> str:
        """The M-Schema of one table: each column's type, description, key and examples.

        Registered column descriptions are shown; the foreign keys that start or end at the
        table follow in a ``【Foreign keys】`` section.

        Raises:
            InputError: empty or unknown table (the message lists the tables), unknown database.
            DatabaseError: the database cannot be read.
        """
        served = self.resolve(database)
        if not isinstance(table, str) or not table.strip():
            raise InputError("name a table")
        schema = self._schema(served)
        found = schema.table(table.strip())
        if found is None:
            names = [t.name for t in schema.tables]
            shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
            raise InputError(f"no table {table.strip()!r} in {served.name}; its tables: {shown}")
        text = to_mschema(
            schema, {found.name: None}, descriptions=self.pipeline.descriptions(served.spec),
            include_foreign_keys=False,
        )
        low = found.name.lower()
        fks = [str(fk) for fk in schema.foreign_keys if low in (fk.table.lower(), fk.ref_table.lower())]
        if fks:
            text += "\n【Foreign keys】\n" + "\n".join(fks)
        return text

    def mschema(self, database: str | None = None) -> str:
        """The whole M-Schema of a served database (what the ``quorumsql://<name>/mschema`` resource holds).

        Raises:
            InputError: unknown database name.
            DatabaseError: the database cannot be read.
        """
        served = self.resolve(database)
        schema = self._schema(served)
        return to_mschema(schema, descriptions=self.pipeline.descriptions(served.spec))

    def run_sql(self, sql: str, database: str | None = None) -> dict[str, Any]:
        """Run one read-only query and return at most ``max_rows`` rows.

        The query goes through :meth:`quorumsql.Database.execute`: the read-only check (one
        read query calling only read-only functions), then the read-only connection, with the
        configured timeout.

        Returns:
            ``{"database", "sql" (as executed), "columns", "rows" (lists of JSON values),
            "row_count", "truncated"}``.

        Raises:
            InputError: empty SQL, unknown database.
            UnsafeSQLError: not a single read-only query (the check's reason; nothing ran).
            QueryError / QueryTimeout: the database rejected the query, or it ran too long.
        """
        served = self.resolve(database)
        if not isinstance(sql, str) or not sql.strip():
            raise InputError("the SQL is empty")
        result = served.database.execute(sql, max_rows=self.max_rows)
        rows = [[jsonable(v) for v in row] for row in result.rows]
        return {
            "database": served.name, "sql": result.sql, "columns": list(result.columns), "rows": rows,
            "row_count": len(rows), "truncated": result.truncated,
        }

    def ask(self, question: str, evidence: str | None = None, database: str | None = None) -> dict[str, Any]:
        """Answer a question with the pipeline: checked, executed SQL and its rows.

        Returns:
            ``{"database", "question", "sql", "columns", "rows" (at most ``max_rows``, lists of
            JSON values), "row_count" (rows returned here), "truncated" (rows were cut, here or
            by the pipeline's caps), "confidence" ({"share", "votes", "candidates", "decisive",
            "decided_by"}), "warnings", "seconds"}``, plus ``"explanation"`` when the Answer
            carries one.

        Raises:
            InputError: empty question, evidence that is not text, unknown database.
            ModelError: the model endpoint failed (down, refused, unusable output).
            DatabaseError: the database cannot be read.
            QuorumSQLError: no candidate SQL executed (the pipeline's reason).
        """
        served = self.resolve(database)
        with self._ask_lock:
            ans = self.pipeline.answer(question, served.spec, evidence=evidence)
        if ans.sql is None:
            raise QuorumSQLError(f"no answer: {ans.error or 'no candidate SQL executed'}")
        rows = [[jsonable(v) for v in row] for row in ans.rows[: self.max_rows]]
        doc: dict[str, Any] = {
            "database": served.name,
            "question": ans.question,
            "sql": ans.sql,
            "columns": list(ans.columns),
            "rows": rows,
            "row_count": len(rows),
            "truncated": bool(ans.truncated or len(ans.rows) > self.max_rows),
            "confidence": ans.confidence.model_dump(mode="json"),
            "warnings": list(ans.warnings),
            "seconds": round(ans.seconds, 2),
        }
        explanation = getattr(ans, "explanation", None)
        if explanation:
            doc["explanation"] = explanation
        return doc

    def instructions(self) -> str:
        """What the server tells a client about itself (names the served databases)."""
        parts = []
        for served in self.served.values():
            schema = served.database.schema()
            parts.append(f"{served.name} ({schema.dialect}, {len(schema.tables)} tables)")
        return (
            "QuorumSQL answers questions about these databases: " + "; ".join(parts) + ". "
            "Use list_tables and describe_table (or the quorumsql://<name>/mschema resources) to see "
            "the schema, ask for checked and executed SQL from a question in plain language, and "
            "run_sql to run a read-only query of your own. Every query is read-only."
        )


def _tool_error(exc: BaseException):
    """The SDK's ToolError for ``exc``, with a one-line message."""
    from mcp.server.mcpserver.exceptions import ToolError

    if isinstance(exc, UnsafeSQLError):
        return ToolError(one_line(f"refused: {exc}"))
    if isinstance(exc, QueryTimeout):
        return ToolError(one_line(exc))
    if isinstance(exc, QueryError):
        return ToolError(one_line(f"the query failed: {exc}"))
    if isinstance(exc, QuorumSQLError):
        return ToolError(one_line(exc))
    log.error("unexpected error in a tool", exc_info=exc)
    return ToolError(one_line(f"internal error ({type(exc).__name__}: {exc}); the server's log has the details"))


def _guarded(fn):
    """Wrap a tool function so that every exception reaches the client as a one-line ToolError."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a tool never crashes the server
            raise _tool_error(exc) from exc

    return wrapper


def build_server(
    databases: Sequence[str | os.PathLike | Database] | None = None,
    *,
    pipeline: Pipeline | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    tools: QuorumTools | None = None,
    log_level: str = "WARNING",
) -> MCPServer:
    """The MCP server (the SDK's ``MCPServer``) for ``databases``, not yet running.

    Args:
        databases: paths or URLs to serve (ignored when ``tools`` is given).
        pipeline: the pipeline that opens the databases and answers (default from the settings).
        max_rows: rows a tool returns at most.
        tools: an existing :class:`QuorumTools` to serve instead.
        log_level: the SDK's log level (its logs go to stderr).

    Returns:
        A server with the tools ``ask``, ``list_tables``, ``describe_table``, ``run_sql`` and one
        M-Schema resource per database; run it with ``.run()`` or connect an SDK ``Client`` to it.

    Raises:
        ConfigError: the MCP SDK is not installed.
        InputError: no database, bad ``max_rows``.
        DatabaseError: a database cannot be opened or read.
    """
    require_sdk()
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError
    from mcp.server.mcpserver.resources import FunctionResource
    from mcp.types import ToolAnnotations
    from pydantic import ValidationError

    qt = tools or QuorumTools(databases or [], pipeline=pipeline, max_rows=max_rows)
    names = ", ".join(qt.names())
    several = len(qt.served) > 1
    db_hint = (f" 'database' is one of: {names} (required, several are served)." if several
               else f" 'database' may be omitted (only {names} is served).")

    class _Server(MCPServer):
        async def call_tool(self, name, arguments, context=None):
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                cause = exc.__cause__
                if isinstance(cause, ValidationError):  # arguments that do not fit the schema
                    fields = "; ".join(
                        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                        for err in cause.errors()
                    )
                    raise ToolError(one_line(f"Error executing tool {name}: invalid arguments: {fields}")) from cause
                message = one_line(exc)
                if message != str(exc):
                    raise ToolError(message) from cause
                raise

    server = _Server(
        "quorumsql", title="QuorumSQL", version=__version__, instructions=qt.instructions(),
        log_level=log_level,  # type: ignore[arg-type]
    )
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)

    @_guarded
    def ask(question: str, evidence: str | None = None, database: str | None = None) -> dict[str, Any]:
        return qt.ask(question, evidence=evidence, database=database)

    @_guarded
    def list_tables(database: str | None = None) -> dict[str, Any]:
        return qt.list_tables(database)

    @_guarded
    def describe_table(table: str, database: str | None = None) -> str:
        return qt.describe_table(table, database)

    @_guarded
    def run_sql(sql: str, database: str | None = None) -> dict[str, Any]:
        return qt.run_sql(sql, database)

    server.add_tool(ask, name="ask", title="Ask a question", annotations=read_only, description=(
        "Answer a question about the database in plain language: QuorumSQL writes several SQL "
        "candidates, runs each read-only, corrects them against the results and returns the one "
        f"most agree on, with its rows (at most {qt.max_rows}), columns, confidence and warnings. "
        "'evidence' is optional external knowledge (definitions, formulas)." + db_hint))
    server.add_tool(list_tables, name="list_tables", title="List tables", annotations=read_only, description=(
        "List the tables and views (name, kind, number of columns) of a database; without "
        "'database', of every database this server serves."))
    server.add_tool(describe_table, name="describe_table", title="Describe a table", annotations=read_only,
                    structured_output=False, description=(
        "The M-Schema of one table: per column its type, description, primary key and a few "
        "example values, then the foreign keys that touch the table." + db_hint))
    server.add_tool(run_sql, name="run_sql", title="Run a read-only query", annotations=read_only, description=(
        "Run one read-only SQL query (SELECT / WITH ... SELECT) in the database's own dialect and "
        f"return its columns and at most {qt.max_rows} rows. Anything that could write or change "
        "state is refused with the reason." + db_hint))

    for served in qt.served.values():
        def read(name: str = served.name) -> str:
            try:
                return qt.mschema(name)
            except Exception as exc:  # noqa: BLE001 - a resource error, never a crash
                if not isinstance(exc, QuorumSQLError):
                    log.error("unexpected error reading a resource", exc_info=exc)
                raise ResourceError(one_line(exc)) from exc

        server.add_resource(FunctionResource.from_function(
            fn=read, uri=served.resource_uri, name=f"{served.name} M-Schema", mime_type="text/plain",
            description=f"The M-Schema of {served.name} ({served.database.dialect}): tables, columns "
                        "with types, descriptions, keys and examples, and foreign keys.",
        ))
    return server


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


def serve(
    databases: Sequence[str | os.PathLike | Database],
    *,
    http_port: int | None = None,
    host: str = "127.0.0.1",
    pipeline: Pipeline | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> None:
    """Serve ``databases`` until the client disconnects (stdio) or the process is stopped (HTTP).

    Args:
        databases: paths or URLs; each is opened once, before serving starts.
        http_port: serve streamable HTTP at ``http://<host>:<port>/mcp`` instead of stdio.
        host: a loopback address (see :data:`LOOPBACK_HOSTS`; anything else is refused, with or
            without ``http_port``); only listened on with ``http_port``.
        pipeline: the pipeline that answers (default from the settings).
        max_rows: rows a tool returns at most.

    Raises:
        ConfigError: the MCP SDK is not installed.
        InputError: a host that is not loopback, a port out of range or in use, no database.
        DatabaseError: a database cannot be opened or read.
    """
    check_loopback(host)
    if http_port is not None and (not isinstance(http_port, int) or not 1 <= http_port <= 65535):
        raise InputError(f"the HTTP port must be a number from 1 to 65535, got {http_port!r}")
    require_sdk()
    level = "DEBUG" if os.environ.get("QUORUMSQL_DEBUG") else "WARNING"
    tools = QuorumTools(databases, pipeline=pipeline, max_rows=max_rows)
    server = build_server(tools=tools, log_level=level)
    names = ", ".join(tools.names())
    if http_port is None:
        print(f"QuorumSQL MCP server on stdio, serving {names}", file=sys.stderr, flush=True)
        server.run("stdio")
        return
    _check_port_free(host, http_port)
    shown = f"[{host}]" if ":" in host else host
    print(f"QuorumSQL MCP server at http://{shown}:{http_port}/mcp (streamable HTTP), serving {names}",
          file=sys.stderr, flush=True)
    server.run("streamable-http", host=host, port=http_port)

