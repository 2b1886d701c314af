"""MySQL / MariaDB connector over pymysql: read-only sessions, server-side time limits.

What stops a statement the read-only check (:mod:`quorumsql.db.safety`) let through, measured
against MariaDB 10.11 with an account holding ALL PRIVILEGES (``tests/test_hardening_mysql.py``):

- The server: the session is ``SET SESSION TRANSACTION READ ONLY`` and each query runs in
  ``START TRANSACTION READ ONLY``. The session characteristic also covers the transaction a
  DDL statement's implicit commit starts, so CREATE / DROP / ALTER / RENAME / TRUNCATE TABLE,
  CREATE OR REPLACE, CREATE DATABASE / VIEW / FUNCTION / USER, GRANT, INSERT / UPDATE / DELETE,
  LOCK TABLES and INSTALL SONAME fail with error 1792. pymysql never enables multi-statements,
  so one call is one statement.
- Not the server: SET GLOBAL, SELECT ... INTO OUTFILE / DUMPFILE, LOAD_FILE(), FLUSH, KILL,
  SHUTDOWN, DO, HANDLER, and ``SET STATEMENT tx_read_only=0 FOR ...`` (which lifts the read-only
  session for one statement) run for an account that holds the privilege. Only the account's
  privileges stop them on the server; this connector's lexical guard (:func:`_guard`) refuses
  them on the client as well, independently of sqlglot, along with calls of anything but the
  read-only built-in functions (a stored function can run ``SET GLOBAL``), and
  :meth:`MySQLDatabase.privilege_warnings` reports an account that can write or holds FILE.

Time: ``max_statement_time`` (MariaDB, seconds) or ``max_execution_time`` (MySQL, ms) is set
per session, the client read timeout backs it up, and a statement the limit stopped without an
error (``SELECT BENCHMARK(...)`` returns 0) is detected through the session status counter
``Max_statement_time_exceeded`` / ``Max_execution_time_exceeded`` and raised as a timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from quorumsql.db.base import Database, fetch_capped
from quorumsql.db.functions import Token as FunctionToken
from quorumsql.db.functions import guard_tokens
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout, UnsafeSQLError
from quorumsql.sqlnames import quote_identifier

_EXAMPLES = 3
# Server error codes meaning "statement interrupted by the time limit":
# 3024 MySQL ER_QUERY_TIMEOUT, 1969 MariaDB ER_STATEMENT_TIMEOUT, 1317 query interrupted.
_TIMEOUT_CODES = {3024, 1969, 1317}
# Session status counters of statements stopped by the time limit (MariaDB, MySQL).
_TIMEOUT_COUNTERS = ("Max_statement_time_exceeded", "Max_execution_time_exceeded")
# The session lexes SQL the way sqlglot's MySQL dialect does: backslash escapes in strings and
# "..." as a string, whatever the server's default sql_mode says.
_SQL_MODE = (
    "sql_mode = TRIM(BOTH ',' FROM REPLACE(REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), "
    "',NO_BACKSLASH_ESCAPES,', ','), ',ANSI_QUOTES,', ','))"
)
_GUARD_WORDS = {"INTO", "OUTFILE", "DUMPFILE"}
_EXEC_COMMENT = re.compile(r"/\*M?!\d{0,6}", re.IGNORECASE)
# MySQL's unquoted name characters: ASCII letters, digits, "_", "$" and every character from
# U+0080 on (U+00A0 and U+3000 included: to the server they are letters, not spaces).
_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]+")
_SYMBOLS = ("::", ":=", "<=>", "<=", ">=", "<>", "!=", "||", "&&", "<<", ">>", "->>", "->", "@@")


def _quote_ident(name: str) -> str:
    return quote_identifier(name, "mysql")


def _server_words(sql: str) -> list[FunctionToken]:
    """The tokens MySQL reads in ``sql``, as (kind, value) pairs (see :mod:`quorumsql.db.functions`).

    A small lexer of the server's own rules, independent of sqlglot: ``'...'`` and ``"..."``
    are strings (backslash escapes and doubled quotes; the session clears ``ANSI_QUOTES`` and
    ``NO_BACKSLASH_ESCAPES``), backquoted names are ``quoted`` with their content, ``#`` and
    ``--`` comments run to the end of the line (``--`` only when an ASCII space or control
    character follows: ``--1`` is two minus signs), ``/* */`` comments do not nest, and the
    bodies of executable comments (``/*!``, ``/*!50700``, ``/*M!``) are code. Unquoted words
    keep their spelling; any character from U+0080 on is part of a word, as on the server.

    Raises:
        UnsafeSQLError: ``--`` followed by a non-ASCII character (the server reads it as code
            while a reader that takes it for a comment would not), or a NUL character.
    """
    out: list[FunctionToken] = []
    i, n, in_exec = 0, len(sql), False
    while i < n:
        c = sql[i]
        if c == "\x00":
            raise UnsafeSQLError("refused by the connection: a NUL character in the query")
        if c in "'\"`":
            j, buf = i + 1, []
            while j < n:
                if sql[j] == "\\" and c != "`" and j + 1 < n:
                    buf.append(sql[j:j + 2])
                    j += 2
                elif sql[j] == c and j + 1 < n and sql[j + 1] == c:
                    buf.append(c)
                    j += 2
                elif sql[j] == c:
                    break
                else:
                    buf.append(sql[j])
                    j += 1
            out.append(("quoted" if c == "`" else "string", "".join(buf)))
            i = j + 1
        elif sql.startswith("--", i):
            after = sql[i + 2] if i + 2 < n else "\n"
            if ord(after) <= 32 or ord(after) == 127:
                j = sql.find("\n", i)
                i = n if j < 0 else j + 1
            elif ord(after) > 127:
                raise UnsafeSQLError(
                    f"refused by the connection: '--' followed by U+{ord(after):04X} is ambiguous "
                    "(a comment needs a plain space after the dashes)"
                )
            else:
                out.extend([("symbol", "-"), ("symbol", "-")])
                i += 2
        elif c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            m = _EXEC_COMMENT.match(sql, i)
            if m:
                in_exec, i = True, m.end()
            else:
                j = sql.find("*/", i + 2)
                i = n if j < 0 else j + 2
        elif in_exec and sql.startswith("*/", i):
            in_exec, i = False, i + 2
        elif (m := _WORD.match(sql, i)) is not None:
            word = m.group()
            out.append(("number" if word.isdigit() else "word", word))
            i = m.end()
        elif c in " \t\n\r\f\v":
            i += 1
        else:
            sym = next((s for s in _SYMBOLS if sql.startswith(s, i)), c)
            out.append(("symbol", sym))
            i += len(sym)
    return out


def _guard(sql: str, allowed_functions: Iterable[str] = ()) -> None:
    """The connection's own refusal of what a privileged account could do in one statement.

    Independent of sqlglot (:func:`_server_words` reads the text as the server does): the
    statement must start like a query and may not write files (``INTO``, ``OUTFILE``,
    ``DUMPFILE``), hold a second statement, or call a function outside the dialect's read-only
    built-ins and ``allowed_functions`` (:func:`quorumsql.db.functions.refused_call`: a stored
    function, ``LOAD_FILE``, ``GET_LOCK``, quoted or qualified). This covers what the read-only
    session does not stop (SET GLOBAL, SET STATEMENT, INTO OUTFILE, LOAD_FILE, FLUSH, KILL,
    SHUTDOWN, stored functions that write, ...).

    Raises:
        UnsafeSQLError: the statement is refused (nothing was sent).
    """
    guard_tokens(
        _server_words(sql), "mysql", server="MySQL", forbidden_words=_GUARD_WORDS,
        allowed=allowed_functions,
    )


def _abandon(stream) -> None:
    """Detach an unbuffered cursor so that closing it (or its connection) reads nothing more.

    pymysql drains the rest of an unbuffered result when the cursor or the result object is
    closed or collected; for a cut result that can take as long as the statement runs.
    """
    result = getattr(stream, "_result", None)
    if result is not None:
        result.unbuffered_active = False
    stream.connection = None


class MySQLDatabase(Database):
    """A MySQL or MariaDB database, read through pymysql.

    Each query opens a session that is ``READ ONLY`` (session characteristic and transaction),
    has the statement time limit and a lexing-stable ``sql_mode``, runs the statement through
    :func:`_guard` and an unbuffered cursor (rows stream under the row and byte caps; a cut
    result closes the connection instead of reading the rest), and rolls back. See the module
    docstring for what the server itself stops.

    Args:
        host, port, user, password, database: connection parameters.
        connect_timeout: seconds to wait for the server.
        query_timeout, max_rows, max_result_bytes: see :class:`~quorumsql.db.base.Database`.

    Raises:
        DatabaseError: the server is unreachable, refuses the login or the database is unknown.
    """

    dialect = "mysql"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3306,
        user: str = "root",
        password: str = "",
        database: str,
        connect_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        if not database:
            raise DatabaseError("a MySQL URL must name the database: mysql+pymysql://user:pw@host:port/NAME")
        self.host, self.port, self.user, self.password = host, int(port), user, password
        self.database = database
        self.connect_timeout = connect_timeout
        super().__init__(database, **kwargs)
        self._mariadb: bool | None = None
        # Fail early, with a clear message, when the server cannot be reached; read the
        # account's privileges on the same connection.
        conn = self._connect(read_timeout=connect_timeout)
        try:
            self._privilege_warnings = self._safe_read_privileges(conn)
        finally:
            conn.close()

    @property
    def uri(self) -> str:
        return f"mysql+pymysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def _connect(self, read_timeout: float | None = None):
        import pymysql

        try:
            conn = pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                database=self.database,
                charset="utf8mb4",
                connect_timeout=self.connect_timeout,
                read_timeout=read_timeout,
                autocommit=False,
                local_infile=False,
                init_command="SET SESSION TRANSACTION READ ONLY",
            )
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else None
            msg = exc.args[1] if len(exc.args) > 1 else str(exc)
            if code == 1049:
                raise DatabaseError(f"MySQL database {self.database!r} does not exist on {self.host}:{self.port}") from None
            if code in (1045, 1044):
                raise DatabaseError(f"MySQL login refused for {self.user!r}@{self.host}:{self.port}: {msg}") from None
            raise DatabaseError(f"cannot reach MySQL at {self.host}:{self.port}: {msg}") from None
        except pymysql.err.MySQLError as exc:
            raise DatabaseError(f"cannot open MySQL database {self.uri}: {exc}") from None
        if self._mariadb is None:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                self._mariadb = "mariadb" in str(cur.fetchone()[0]).lower()
        return conn

    def _data_signature(self) -> Any:
        result = self._run_internal(
            "SELECT TABLE_NAME, TABLE_ROWS, UPDATE_TIME, DATA_LENGTH FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
            (self.database,),
        )
        return [list(map(str, r)) for r in result]

    def change_stamp(self) -> str:
        """Counts and checksums of the schema's tables and columns, plus their row estimates,
        sizes and latest create/update times (``information_schema``, one query).

        Raises:
            DatabaseError: the server cannot be reached.
        """
        rows = self._run_internal(
            "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('.', TABLE_NAME, TABLE_TYPE))), 0), "
            "COALESCE(SUM(TABLE_ROWS), 0), COALESCE(SUM(DATA_LENGTH), 0), MAX(CREATE_TIME), MAX(UPDATE_TIME), "
            "(SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('.', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE))), 0)) "
            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (self.database, self.database),
        )
        return "/".join(str(v) for v in rows[0])

    def _read_privileges(self, conn=None) -> list[str]:
        """The account's privileges (``SHOW GRANTS``, roles included) as warnings: the findings of
        :func:`quorumsql.db.doctor.mysql_findings` in the sentences of
        :func:`~quorumsql.db.doctor.connect_warnings` (see the base method)."""
        from quorumsql.db.doctor import connect_warnings, mysql_findings

        account, findings = mysql_findings(self, conn)
        return connect_warnings("mysql", account, findings)

    def _session_statement(self, timeout: float) -> str:
        if self._mariadb:
            limit = f"max_statement_time = {max(timeout, 0.001):.3f}"
        else:
            limit = f"max_execution_time = {max(int(timeout * 1000), 1)}"
        return f"SET SESSION {limit}, {_SQL_MODE}"

    def _execute(self, sql: str, timeout: float, max_rows: int):
        _guard(sql, self.allowed_functions)
        return self._run_read_only(sql, timeout, max_rows)

    def _run_read_only(self, sql: str, timeout: float, max_rows: int):
        """Run ``sql`` in a read-only session with the time limit, without :func:`_guard`.

        The server's own locks only (tests call this to show what the server stops).
        """
        import pymysql

        # the client read timeout backs up the server limit (e.g. when the server ignores it)
        conn = self._connect(read_timeout=timeout + 5.0)
        stream = None
        start = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(self._session_statement(timeout))
                cur.execute("START TRANSACTION READ ONLY")
            stream = conn.cursor(pymysql.cursors.SSCursor)
            start = time.monotonic()
            stream.execute(sql)
            columns = [d[0] for d in stream.description or []]
            rows, truncated = fetch_capped(stream.fetchmany, max_rows, self.max_result_bytes)
            if truncated:
                # rows are left unread: closing the connection stops the statement; reading
                # the rest could take as long as the statement runs
                _abandon(stream)
            else:
                stream.close()
                if self._interrupted(conn, time.monotonic() - start, timeout):
                    raise QueryTimeout(
                        f"query exceeded {timeout:g} s and was interrupted (it returned no error, "
                        "but its result is incomplete)"
                    )
                conn.rollback()
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
            if code in _TIMEOUT_CODES or "timed out" in text.lower():
                raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted") from None
            raise QueryError(f"({code}) {text}") from None
        finally:
            if stream is not None:
                _abandon(stream)
            conn.close()
        return columns, rows, truncated

    @staticmethod
    def _interrupted(conn, elapsed: float, timeout: float) -> bool:
        """Whether the time limit stopped the last statement even though it returned rows.

        MariaDB stops ``SELECT BENCHMARK(...)`` / ``SELECT SLEEP(...)`` at the limit and returns
        0 without an error; the session counter of timed-out statements tells. Without the
        counter, a statement that took the whole budget counts as interrupted.
        """
        try:
            with conn.cursor() as cur:
                names = ", ".join(f"'{n}'" for n in _TIMEOUT_COUNTERS)
                cur.execute(f"SHOW SESSION STATUS WHERE Variable_name IN ({names})")
                counters = [int(v) for _, v in cur.fetchall()]
        except Exception:  # noqa: BLE001 - fall back on the clock
            counters = []
        if counters:
            return any(counters)
        return elapsed >= timeout

    def _run_internal(self, sql: str, params: tuple = (), conn=None) -> list[tuple]:
        """Run trusted introspection SQL (our own text, never model output)."""
        import pymysql

        own = conn is None
        conn = conn or self._connect(read_timeout=self.query_timeout)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        except pymysql.err.MySQLError as exc:
            raise DatabaseError(f"cannot introspect {self.uri}: {exc}") from None
        finally:
            if own:
                conn.close()

    def _introspect(self) -> DatabaseSchema:
        conn = self._connect(read_timeout=self.query_timeout)
        try:
            return self._introspect_with(conn)
        finally:
            conn.close()

    def _introspect_with(self, conn) -> DatabaseSchema:
        tables_rows = self._run_internal(
            "SELECT TABLE_NAME, TABLE_TYPE, TABLE_COMMENT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
            (self.database,), conn,
        )
        col_rows = self._run_internal(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, COLUMN_KEY, IS_NULLABLE, COLUMN_COMMENT "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
            "ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (self.database,), conn,
        )
        fk_rows = self._run_internal(
            "SELECT TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
            "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
            "AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (self.database,), conn,
        )
        by_table: dict[str, list[Column]] = {}
        for tname, cname, ctype, ckey, nullable, comment in col_rows:
            by_table.setdefault(tname, []).append(
                Column(
                    name=cname,
                    type=str(ctype),
                    primary_key=ckey == "PRI",
                    nullable=nullable == "YES",
                    comment=comment or None,
                )
            )
        tables = []
        for tname, ttype, tcomment in tables_rows:
            is_view = "VIEW" in str(ttype).upper()
            cols = by_table.get(tname, [])
            for col in cols:
                col.examples = self._examples(conn, tname, col.name)
            tables.append(
                Table(
                    name=tname,
                    kind="view" if is_view else "table",
                    comment=None if is_view else (tcomment or None),
                    columns=cols,
                )
            )
        fks = [ForeignKey(table=a, column=b, ref_table=c, ref_column=d) for a, b, c, d in fk_rows]
        return DatabaseSchema(db_id=self.db_id, dialect=self.dialect, tables=tables, foreign_keys=fks)

    def _examples(self, conn, table: str, column: str) -> list[Any]:
        try:
            rows = self._run_internal(
                f"SELECT DISTINCT {_quote_ident(column)} FROM {_quote_ident(table)} "
                f"WHERE {_quote_ident(column)} IS NOT NULL LIMIT {_EXAMPLES}",
                (), conn,
            )
        except DatabaseError:
            return []
        return [r[0] for r in rows if not isinstance(r[0], (bytes, bytearray))]
