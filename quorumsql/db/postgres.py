"""PostgreSQL connector over psycopg 3 (extra ``quorumsql[postgres]``): read-only sessions."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from quorumsql.db.base import Database, fetch_capped
from quorumsql.db.functions import Token as FunctionToken
from quorumsql.db.functions import decode_unicode_name, guard_tokens, nested_comment_end, quoted_run
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout, UnsafeSQLError
from quorumsql.sqlnames import quote_identifier

_EXAMPLES = 3


def _quote_ident(name: str) -> str:
    return quote_identifier(name, "postgres")


_CURSOR = "quorumsql_query"
_DECLARE = f'DECLARE "{_CURSOR}" CURSOR FOR '


def _without_cursor(message: str) -> str:
    """A server message about the query as the model wrote it: our ``DECLARE ... FOR`` is cut
    from the quoted statement line and the caret under it moves back by as much."""
    lines = message.split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"(LINE \d+: )(.*)$", line)
        if m and m.group(2).startswith(_DECLARE):
            lines[i] = m.group(1) + m.group(2)[len(_DECLARE):]
            if i + 1 < len(lines) and lines[i + 1].strip() == "^":
                caret = lines[i + 1]
                cut = min(len(_DECLARE), len(caret) - len(caret.lstrip(" ")) - len(m.group(1)))
                lines[i + 1] = caret[max(cut, 0):]
        else:
            lines[i] = line.replace(_DECLARE, "")
    return "\n".join(lines)


_IDENT_START = r"A-Za-z_\u0080-\uffff"
_PG_WORD = re.compile(rf"[{_IDENT_START}][{_IDENT_START}0-9$]*")
_DOLLAR_TAG = re.compile(rf"\$(?:[{_IDENT_START}][{_IDENT_START}0-9]*)?\$")
_PG_SPACE = " \t\n\r\f\v"


def _server_tokens(sql: str) -> list[FunctionToken]:
    """The tokens PostgreSQL reads in ``sql`` as (kind, value) pairs (:mod:`quorumsql.db.functions`).

    A small lexer of the server's rules, independent of sqlglot (the session sets
    ``standard_conforming_strings = on``): ``'...'`` strings with doubled quotes, ``E'...'``
    with backslash escapes, ``B'`` / ``X'`` / ``N'`` / ``U&'`` strings, dollar-quoted
    ``$tag$ ... $tag$`` strings, ``"..."`` names (``quoted``), ``--`` comments to the end of
    the line, nested ``/* */`` comments. Any character from U+0080 on is a name character.

    Raises:
        UnsafeSQLError: a ``U&"..."`` name (a name spelled in escapes) or a NUL character.
    """
    out: list[FunctionToken] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "\x00":
            raise UnsafeSQLError("refused by the connection: a NUL character in the query")
        if c in _PG_SPACE:
            i += 1
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
        elif (m := _PG_WORD.match(sql, i)) is not None:
            word, j = m.group(), m.end()
            low = word.lower()
            if low == "u" and sql.startswith('&"', j):
                _, spelled = quoted_run(sql, j + 1, '"', backslash=False)
                raise UnsafeSQLError(
                    'refused by the connection: unicode-escaped names (U&"...") are not allowed: '
                    f"this one spells {decode_unicode_name(spelled)}"
                )
            if low == "u" and sql.startswith("&'", j):
                i, text = quoted_run(sql, j + 1, "'", backslash=False)
                out.append(("string", text))
            elif low in ("e", "b", "x", "n") and j < n and sql[j] == "'":
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
    """The connection's own refusal, independent of sqlglot (:func:`_server_tokens`).

    The statement must start like a query, hold one statement, write nothing (``INTO``) and
    call only the read-only built-in functions and ``allowed_functions``
    (:func:`quorumsql.db.functions.refused_call`): no ``dblink``, ``pg_read_file``,
    ``pg_file_write``, ``pg_terminate_backend`` or routine of the database, however spelled
    (quoted, ``pg_catalog.``-qualified, upper case). The read-only transaction does not stop
    these for a superuser or for a function that opens its own connection.

    Raises:
        UnsafeSQLError: the statement is refused (nothing was sent).
    """
    guard_tokens(
        _server_tokens(sql), "postgres", server="PostgreSQL", forbidden_words={"INTO"},
        allowed=allowed_functions,
    )


def _cancel_quietly(conn) -> None:
    """Ask the server to cancel ``conn``'s running statement (the watchdog of a query)."""
    try:
        conn.cancel_safe(timeout=2.0)
    except Exception:  # noqa: BLE001 - the statement may have ended, the connection closed
        pass


class PostgresDatabase(Database):
    """A PostgreSQL database; every session has ``default_transaction_read_only = on``.

    The server enforces ``statement_timeout`` and the read-only transaction (no INSERT / UPDATE
    / DELETE, DDL, ``nextval`` or large-object writes). It does not stop what the account's
    privileges allow outside transactions' writes: a superuser or a member of
    ``pg_read_server_files`` can read server files with ``pg_read_file`` and friends, and a
    function (dblink's, adminpack's, the database's own) can write through its own connection
    or as a superuser. The read-only check and this connector's guard (:func:`_guard`) both
    allow only read-only built-in functions (:mod:`quorumsql.db.functions`), and
    :meth:`privilege_warnings` reports a privileged account. The query runs as a server-side cursor (``DECLARE``
    accepts only a query), fetched in growing batches under the row and byte caps, each fetch
    with what is left of the time budget; a cut result closes the cursor.

    Tables come from the schemas on the search path other than the system schemas, named
    ``schema.table`` outside ``public``.

    Args:
        url: ``postgresql://user:pw@host:port/name``.
        connect_timeout: seconds to wait for the server.
        query_timeout, max_rows, max_result_bytes: see :class:`~quorumsql.db.base.Database`.

    Raises:
        DatabaseError: psycopg missing, malformed URL, server unreachable, login refused.
    """

    dialect = "postgres"

    def __init__(self, url: str, *, connect_timeout: float = 10.0, **kwargs: Any) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise DatabaseError(
                "PostgreSQL needs psycopg: pip install 'quorumsql[postgres]'"
            ) from None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise DatabaseError(f"malformed PostgreSQL URL ({exc}): use postgresql://user:pw@host:port/name") from None
        if port == 0:
            raise DatabaseError("malformed PostgreSQL URL (port 0): use postgresql://user:pw@host:port/name")
        self._url = urlunsplit(("postgresql",) + tuple(parts)[1:])
        self.connect_timeout = connect_timeout
        super().__init__(parts.path.lstrip("/") or "postgres", **kwargs)
        conn = self._connect(self.query_timeout)
        try:
            self._privilege_warnings = self._safe_read_privileges(conn)
        finally:
            conn.close()

    @property
    def uri(self) -> str:
        parts = urlsplit(self._url)
        netloc = parts.hostname or ""
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def _connect(self, timeout: float):
        import psycopg

        try:
            return psycopg.connect(
                self._url,
                connect_timeout=max(1, int(self.connect_timeout)),
                options=(
                    "-c default_transaction_read_only=on -c standard_conforming_strings=on "
                    f"-c statement_timeout={max(1, int(timeout * 1000))}"
                ),
            )
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot reach PostgreSQL at {self.uri}: {str(exc).strip()}") from None

    def _execute(self, sql: str, timeout: float, max_rows: int):
        _guard(sql, self.allowed_functions)
        return self._run_read_only(sql, timeout, max_rows)

    def _run_read_only(self, sql: str, timeout: float, max_rows: int):
        """Run ``sql`` in a read-only session as a server-side cursor, without :func:`_guard`.

        The server's own locks only (tests call this to show what the server stops). Besides
        ``statement_timeout``, a watchdog cancels the running statement from the client side
        0.2 s past the deadline: a FETCH of huge values (``repeat('a', 1e8)``) can hold the
        client in the transfer after the server's own limit has passed.
        """
        import psycopg

        deadline = time.monotonic() + timeout
        conn = self._connect(timeout)
        watchdog = threading.Timer(timeout + 0.2, _cancel_quietly, args=(conn,))
        watchdog.daemon = True
        watchdog.start()

        def fetch(n: int):
            # each FETCH is its own statement: give it what is left of the budget
            left = deadline - time.monotonic()
            if left <= 0:
                raise psycopg.errors.QueryCanceled("the time budget ran out between fetches")
            conn.execute(f"SET LOCAL statement_timeout = {max(1, int(left * 1000))}")
            return cur.fetchmany(n)

        try:
            # a server-side cursor: DECLARE takes only a query (SELECT / VALUES / TABLE, no
            # data-modifying WITH), and rows come in batches under the row and byte caps
            with conn.cursor(name=_CURSOR) as cur:
                cur.execute(sql)
                columns = [d.name for d in cur.description or []]
                rows, truncated = fetch_capped(fetch, max_rows, self.max_result_bytes)
            conn.rollback()
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted") from None
        except psycopg.Error as exc:
            raise QueryError(_without_cursor(str(exc).strip())) from None
        finally:
            watchdog.cancel()
            conn.close()
        return columns, rows, truncated

    def _data_signature(self) -> Any:
        return self._fetch(
            "SELECT relname, n_live_tup, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY relname"
        )

    def change_stamp(self) -> str:
        """Counts and a checksum of the user tables and columns (``pg_class``, ``pg_attribute``)
        plus the insert / update / delete counters of ``pg_stat_user_tables``, in one query.

        The statistics counters reach other sessions shortly after a write commits.

        Raises:
            DatabaseError: the server cannot be reached.
        """
        rows = self._fetch(
            "SELECT (SELECT count(*) || ':' || coalesce(sum(hashtext(n.nspname || '.' || c.relname || ':' || c.relkind::text)), 0) "
            "        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "        WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') "
            "        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'), "
            "       (SELECT count(*) || ':' || coalesce(sum(hashtext(c.relname || '.' || a.attname || ':' || a.atttypid::text)), 0) "
            "        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "        JOIN pg_namespace n ON n.oid = c.relnamespace "
            "        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p', 'f') "
            "        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'), "
            "       (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) || ':' || count(*) "
            "        FROM pg_stat_user_tables)"
        )
        return "/".join(str(v) for v in rows[0])

    def _read_privileges(self, conn=None) -> list[str]:
        """Superuser, server-file roles, write and CREATE rights, dblink / adminpack and user
        routines that may write, as warnings: the findings of
        :func:`quorumsql.db.doctor.postgres_findings` in the sentences of
        :func:`~quorumsql.db.doctor.connect_warnings` (see the base method)."""
        from quorumsql.db.doctor import connect_warnings, postgres_findings

        role, findings = postgres_findings(self, conn)
        return connect_warnings("postgres", role, findings)

    def _fetch(self, sql: str, params: tuple = (), conn=None) -> list[tuple]:
        import psycopg

        own = conn is None
        conn = conn or self._connect(self.query_timeout)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot introspect {self.uri}: {str(exc).strip()}") from None
        finally:
            if own:
                conn.close()

    def _introspect(self) -> DatabaseSchema:
        conn = self._connect(self.query_timeout)
        try:
            objs = self._fetch(
                "SELECT table_schema, table_name, table_type FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                "ORDER BY table_schema, table_name", (), conn,
            )
            cols = self._fetch(
                "SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable, "
                "col_description(format('%%I.%%I', c.table_schema, c.table_name)::regclass, c.ordinal_position) "
                "FROM information_schema.columns c "
                "WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') "
                "ORDER BY c.table_schema, c.table_name, c.ordinal_position", (), conn,
            )
            pks = self._fetch(
                "SELECT kcu.table_schema, kcu.table_name, kcu.column_name "
                "FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu "
                "ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema "
                "WHERE tc.constraint_type = 'PRIMARY KEY'", (), conn,
            )
            fks = self._fetch(
                "SELECT kcu.table_schema, kcu.table_name, kcu.column_name, ccu.table_schema, ccu.table_name, ccu.column_name "
                "FROM information_schema.table_constraints tc "
                "JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name "
                "AND tc.table_schema = kcu.table_schema "
                "JOIN information_schema.constraint_column_usage ccu ON tc.constraint_name = ccu.constraint_name "
                "WHERE tc.constraint_type = 'FOREIGN KEY'", (), conn,
            )

            def qualified(schema: str, name: str) -> str:
                return name if schema == "public" else f"{schema}.{name}"

            pk_set = {(s, t, c) for s, t, c in pks}
            by_table: dict[tuple[str, str], list[Column]] = {}
            for s, t, c, typ, nullable, comment in cols:
                by_table.setdefault((s, t), []).append(
                    Column(name=c, type=str(typ).upper(), primary_key=(s, t, c) in pk_set,
                           nullable=nullable == "YES", comment=comment)
                )
            tables = []
            for s, t, kind in objs:
                columns = by_table.get((s, t), [])
                for col in columns:
                    col.examples = self._examples(conn, s, t, col.name)
                tables.append(Table(name=qualified(s, t), kind="view" if kind == "VIEW" else "table", columns=columns))
            foreign = [
                ForeignKey(table=qualified(s, t), column=c, ref_table=qualified(rs, rt), ref_column=rc)
                for s, t, c, rs, rt, rc in fks
            ]
        finally:
            conn.close()
        return DatabaseSchema(db_id=self.db_id, dialect=self.dialect, tables=tables, foreign_keys=foreign)

    def _examples(self, conn, schema: str, table: str, column: str) -> list[Any]:
        try:
            rows = self._fetch(
                f"SELECT DISTINCT {_quote_ident(column)} FROM {_quote_ident(schema)}.{_quote_ident(table)} "
                f"WHERE {_quote_ident(column)} IS NOT NULL LIMIT {_EXAMPLES}", (), conn,
            )
        except DatabaseError:
            conn.rollback()
            return []
        return [r[0] for r in rows if not isinstance(r[0], (bytes, bytearray, memoryview))]
