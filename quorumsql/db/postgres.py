"""PostgreSQL connector over psycopg 3 (extra ``quorumsql[postgres]``): read-only sessions."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from quorumsql.db.base import Database, fetch_capped
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout
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


class PostgresDatabase(Database):
    """A PostgreSQL database; every session has ``default_transaction_read_only = on``.

    The server enforces ``statement_timeout`` and the read-only transaction (no INSERT / UPDATE
    / DELETE, DDL, ``nextval`` or large-object writes). It does not stop what the account's
    privileges allow outside transactions' writes: a superuser or a member of
    ``pg_read_server_files`` can read server files with ``pg_read_file`` and friends, which
    the read-only check refuses (:data:`~quorumsql.db.safety.DENIED_FUNCTIONS`) and
    :meth:`privilege_warnings` reports. The query runs as a server-side cursor (``DECLARE``
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
                options=f"-c default_transaction_read_only=on -c statement_timeout={max(1, int(timeout * 1000))}",
            )
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot reach PostgreSQL at {self.uri}: {str(exc).strip()}") from None

    def _execute(self, sql: str, timeout: float, max_rows: int):
        import psycopg

        deadline = time.monotonic() + timeout
        conn = self._connect(timeout)

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
        """Superuser, server-file roles, database/schema CREATE and table write privileges."""
        (user, superuser, createrole, createdb), = self._fetch(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user",
            (), conn,
        )
        if superuser:
            return [
                f"the PostgreSQL role {user} is a superuser: it can read and write server files "
                "(pg_read_file, COPY ... TO) and run programs, and the read-only session is only "
                "a default it could change; connect with a role that holds only SELECT"
            ]
        warnings = []
        file_roles = [
            name for (name,) in self._fetch(
                "SELECT r.rolname FROM pg_roles r WHERE r.rolname IN "
                "('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program') "
                "AND pg_has_role(current_user, r.oid, 'MEMBER') ORDER BY 1",
                (), conn,
            )
        ]
        if file_roles:
            warnings.append(
                f"the PostgreSQL role {user} is a member of {', '.join(file_roles)}: it can reach "
                "files or programs on the server (QuorumSQL refuses those functions); revoke the membership"
            )
        (tables, schemas, db_create), = self._fetch(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
            "        AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')), "
            "       (SELECT string_agg(nspname, ', ' ORDER BY nspname) FROM pg_namespace "
            "        WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_%%' "
            "        AND has_schema_privilege(oid, 'CREATE')), "
            "       has_database_privilege(current_database(), 'CREATE')",
            (), conn,
        )
        rights = []
        if tables:
            rights.append(f"write {tables} table(s)")
        if schemas:
            rights.append(f"create objects in schema(s) {schemas}")
        if db_create:
            rights.append("create schemas in the database")
        if createrole:
            rights.append("create roles")
        if createdb:
            rights.append("create databases")
        if rights:
            warnings.append(
                f"the PostgreSQL role {user} can {', '.join(rights)}: QuorumSQL's sessions are "
                "read-only, but only a role limited to SELECT is a lock the server enforces"
            )
        return warnings

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
