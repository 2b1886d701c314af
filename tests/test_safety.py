"""The read-only check (sqlglot) on its own, across dialects."""

import pytest

from quorumsql.db.safety import check_read_only
from quorumsql.errors import UnsafeSQLError


@pytest.mark.parametrize(
    "sql,dialect",
    [
        ("SELECT * FROM singer", "sqlite"),
        ("select count(*) from singer;", "sqlite"),
        ("WITH a AS (SELECT 1 AS x) SELECT x FROM a", "sqlite"),
        ("SELECT name FROM a UNION SELECT name FROM b", "sqlite"),
        ("SELECT name FROM a EXCEPT SELECT name FROM b", "sqlite"),
        ("SELECT `Name` FROM `singer` LIMIT 3", "mysql"),
        ("SELECT 'drop table x; delete' AS s", "sqlite"),  # keywords inside strings are data
        ("SELECT a FROM t WHERE b = 'x' -- DROP TABLE t", "sqlite"),
        ("VALUES (1), (2)", "sqlite"),
    ],
)
def test_accepts_read_queries(sql, dialect):
    assert check_read_only(sql, dialect).rstrip(";") == sql.strip().rstrip(";")


@pytest.mark.parametrize(
    "sql,dialect",
    [
        ("DROP TABLE singer", "sqlite"),
        ("SELECT * INTO new_t FROM singer", "postgres"),
        ("SELECT * FROM t FOR UPDATE", "mysql"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "postgres"),
        ("SELECT 1; SELECT 2", "sqlite"),
        ("SET GLOBAL read_only = 0", "mysql"),
        ("LOCK TABLES t WRITE", "mysql"),
        ("REPLACE INTO t VALUES (1)", "sqlite"),
        ("GRANT ALL ON *.* TO x", "mysql"),
        ("TRUNCATE TABLE t", "mysql"),
    ],
)
def test_refuses_everything_else(sql, dialect):
    with pytest.raises(UnsafeSQLError):
        check_read_only(sql, dialect)
