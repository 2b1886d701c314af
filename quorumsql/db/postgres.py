"""PostgreSQL connector over psycopg 3 (extra ``quorumsql[postgres]``): read-only sessions."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from quorumsql.db.base import Database
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout

_EXAMPLES = 3


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresDatabase(Database):
    """A PostgreSQL database; every session has ``default_transaction_read_only = on``.

    The server enforces ``statement_timeout``; tables come from the schemas on the search path
    other than the system schemas, named ``schema.table`` outside ``public``.

    Args:
        url: ``postgresql://user:pw@host:port/name``.

    Raises:
        DatabaseError: psycopg missing, server unreachable, login refused.
    """

    dialect = "postgres"

    def __init__(self, url: str, *, connect_timeout: float = 10.0, **kwargs: Any) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise DatabaseError(
                "PostgreSQL needs psycopg: pip install 'quorumsql[postgres]'"
            ) from None
        parts = urlsplit(url)
        self._url = urlunsplit(("postgresql",) + tuple(parts)[1:])
        self.connect_timeout = connect_timeout
        super().__init__(parts.path.lstrip("/") or "postgres", **kwargs)
        self._connect(self.query_timeout).close()

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

        conn = self._connect(timeout)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                columns = [d.name for d in cur.description or []]
                rows = cur.fetchmany(max_rows + 1)
            conn.rollback()
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted") from None
        except psycopg.Error as exc:
            raise QueryError(str(exc).strip()) from None
        finally:
            conn.close()
        return columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows

    def _data_signature(self) -> Any:
        return self._fetch(
            "SELECT relname, n_live_tup, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY relname"
        )

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
