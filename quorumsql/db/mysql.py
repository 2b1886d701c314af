"""MySQL / MariaDB connector over pymysql: read-only transactions, server-side time limits."""

from __future__ import annotations

from typing import Any

from quorumsql.db.base import Database
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout

_EXAMPLES = 3
# Server error codes meaning "statement interrupted by the time limit":
# 3024 MySQL ER_QUERY_TIMEOUT, 1969 MariaDB ER_STATEMENT_TIMEOUT, 1317 query interrupted.
_TIMEOUT_CODES = {3024, 1969, 1317}


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MySQLDatabase(Database):
    """A MySQL or MariaDB database, read through pymysql.

    Every query runs in ``START TRANSACTION READ ONLY`` and is rolled back; the server enforces
    the time limit (``max_execution_time`` on MySQL, ``max_statement_time`` on MariaDB) and the
    client's read timeout backs it up.

    Args:
        host, port, user, password, database: connection parameters.
        query_timeout, max_rows: see :class:`~quorumsql.db.base.Database`.

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
        # Fail early, with a clear message, when the server cannot be reached.
        self._connect(read_timeout=connect_timeout).close()

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

    def _limit_statement(self, timeout: float) -> str:
        if self._mariadb:
            return f"SET SESSION max_statement_time = {max(timeout, 0.001):.3f}"
        return f"SET SESSION max_execution_time = {max(int(timeout * 1000), 1)}"

    def _execute(self, sql: str, timeout: float, max_rows: int):
        import pymysql

        # the client read timeout backs up the server limit (e.g. when the server ignores it)
        conn = self._connect(read_timeout=timeout + 5.0)
        try:
            with conn.cursor() as cur:
                cur.execute(self._limit_statement(timeout))
                cur.execute("START TRANSACTION READ ONLY")
                try:
                    cur.execute(sql)
                    columns = [d[0] for d in cur.description or []]
                    rows = cur.fetchmany(max_rows + 1)
                finally:
                    conn.rollback()
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
            if code in _TIMEOUT_CODES or "timed out" in text.lower():
                raise QueryTimeout(f"query exceeded {timeout:g} s and was interrupted") from None
            raise QueryError(f"({code}) {text}") from None
        finally:
            conn.close()
        truncated = len(rows) > max_rows
        return columns, [tuple(r) for r in rows[:max_rows]], truncated

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
