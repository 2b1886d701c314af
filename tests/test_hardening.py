"""Issue 7, database layer: hostile SQL against the check and real SQLite copies of Spider.

Each hostile statement is tried twice where it matters: through ``execute()`` (the sqlglot check
first) and through the connector's ``_execute`` (the check bypassed), to show that the
connection on its own is a second lock that writes nothing and creates no file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time

import pytest

from quorumsql.db import SQLiteDatabase, open_database
from quorumsql.db.mysql import _guard, _server_words
from quorumsql.db.safety import check_read_only
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout, UnsafeSQLError
from tests.conftest import spider_db


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def singer_copy(tmp_path):
    """A private copy of Spider's concert_singer in ``tmp_path/db`` (nothing else in that folder)."""
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "concert_singer.sqlite"
    shutil.copy(spider_db("concert_singer"), path)
    return path


# -- 1. MySQL executable comments ------------------------------------------------------------

EXECUTABLE = [
    "/*! CREATE TABLE t */ SELECT 1 AS x",
    "/*M! CREATE OR REPLACE TABLE victim (a INT) */ SELECT 1 AS x",
    "SELECT Name FROM singer /*! INTO OUTFILE '/tmp/qsql_f' */",
    "SELECT 1 /*!50000 , LOAD_FILE('/etc/passwd') */ AS x",
    "SELECT 1 /*M!100500 , 2 */ AS x",
    "SELECT 1 AS x /*!*/",
    "SELECT 1 AS x; /*! DROP TABLE singer */",
    "SELECT 1 AS x /* plain */ /*!, 2 */",
]


@pytest.mark.parametrize("sql", EXECUTABLE)
def test_mysql_executable_comments_are_refused(sql):
    with pytest.raises(UnsafeSQLError, match="executable comments"):
        check_read_only(sql, "mysql")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT '/*! CREATE TABLE t */' AS s",  # a string: data, not code
        'SELECT "/*M! DROP TABLE singer */" AS s',
        "SELECT 1 AS x -- /*! not code after a line comment */",
        "SELECT 1 AS x # /*! nor after a hash comment */",
        "SELECT 1 AS x /* a plain comment /*! inside it */",
        "SELECT 1 /*+ an optimizer hint */ AS x",
    ],
)
def test_mysql_comment_lookalikes_are_accepted(sql):
    assert check_read_only(sql, "mysql") == sql


def test_executable_comments_are_plain_comments_elsewhere():
    sql = "SELECT 1 /*! , 2 */ AS x"
    assert check_read_only(sql, "sqlite") == sql
    assert check_read_only(sql, "postgres") == sql


# -- 4. file and server functions, per dialect -----------------------------------------------


@pytest.mark.parametrize(
    "sql,dialect",
    [
        ("SELECT LOAD_FILE('/etc/passwd') AS f", "mysql"),
        ("SELECT load_file ('/etc/passwd')", "mysql"),
        ("SELECT Name FROM singer WHERE Name = LOAD_FILE('/etc/hostname')", "mysql"),
        ("SELECT GET_LOCK('x', 10)", "mysql"),
        ("SELECT pg_read_file('/etc/passwd')", "postgres"),
        ("SELECT pg_catalog.pg_read_binary_file('/etc/passwd')", "postgres"),
        ("SELECT * FROM pg_ls_dir('.')", "postgres"),
        ('SELECT "pg_ls_dir"(\'.\')', "postgres"),
        ("SELECT lo_import('/etc/passwd')", "postgres"),
        ("SELECT lo_export(1, '/tmp/x')", "postgres"),
        ("SELECT pg_stat_file('/etc/passwd')", "postgres"),
        ("SELECT * FROM dblink('dbname=x', 'DELETE FROM t') AS t(a int)", "postgres"),
        ("SELECT query_to_xml('DELETE FROM singer', true, true, '')", "postgres"),
        ("SELECT set_config('statement_timeout', '0', false)", "postgres"),
        ("SELECT load_extension('/tmp/evil.so')", "sqlite"),
        ("SELECT readfile('/etc/passwd')", "sqlite"),
        ("SELECT writefile('/tmp/x', 'y')", "sqlite"),
        ("SELECT hex(fts3_tokenizer('simple'))", "sqlite"),
    ],
)
def test_file_and_server_functions_are_refused(sql, dialect):
    with pytest.raises(UnsafeSQLError, match=r"function .*\(\) is not allowed"):
        check_read_only(sql, dialect)


@pytest.mark.parametrize(
    "sql,dialect",
    [
        ("SELECT pg_sleep(0.1)", "postgres"),
        ("SELECT 'pg_read_file(x)' AS s", "postgres"),  # a string
        ("SELECT BENCHMARK(10, MD5('a'))", "mysql"),  # bounded by the time limit instead
        ("SELECT load_file FROM t", "mysql"),  # a column of that name, not a call
        ("SELECT length(randomblob(10))", "sqlite"),
    ],
)
def test_similar_harmless_calls_are_accepted(sql, dialect):
    assert check_read_only(sql, dialect) == sql


# -- 7. a trailing "; --" after one query ---------------------------------------------------


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgres"])
@pytest.mark.parametrize("tail", ["; --", "; -- comment", ";  /* c */", ";\n-- done\n", "; ; -- twice"])
def test_trailing_comment_after_the_semicolon_is_accepted(dialect, tail):
    assert check_read_only("SELECT 1 AS x" + tail, dialect) == "SELECT 1 AS x"


@pytest.mark.parametrize("sql", ["SELECT 1; -- c\nSELECT 2", "SELECT 1; /* c */ DROP TABLE singer", "-- only a comment", ";"])
def test_comments_do_not_hide_a_second_statement_or_nothing(sql):
    with pytest.raises(UnsafeSQLError):
        check_read_only(sql, "sqlite")


def test_trailing_comment_runs_on_sqlite(concert_singer):
    db = open_database(concert_singer)
    res = db.try_execute("SELECT count(*) FROM singer; -- all singers")
    assert res.ok and res.rows == [(6,)]


def test_non_text_sql_is_refused_not_a_type_error(concert_singer):
    res = open_database(concert_singer).try_execute(None)  # type: ignore[arg-type]
    assert res.error_kind == "refused"
    with pytest.raises(UnsafeSQLError, match="expected SQL text"):
        check_read_only(123, "sqlite")  # type: ignore[arg-type]


# -- 2. the MySQL connector's own guard (no server needed: nothing is sent) ------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SET GLOBAL max_connections = 1",
        "SET STATEMENT tx_read_only = 0 FOR CREATE TABLE t (a INT)",
        "SELECT 1 INTO OUTFILE '/tmp/qsql_x'",
        "SELECT 1 INTO DUMPFILE '/tmp/qsql_x'",
        "SELECT * FROM singer INTO OUTFILE '/tmp/qsql_x' FIELDS TERMINATED BY ','",
        "SELECT 1 /*! INTO OUTFILE '/tmp/qsql_x' */",
        "/*!50000 SET GLOBAL max_connections = 1 */",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT 1 --1, LOAD_FILE('/etc/passwd')",  # "--1" is not a comment on MySQL
        "SHUTDOWN",
        "KILL 1",
        "FLUSH TABLES",
        "LOCK TABLES singer WRITE",
        "DO SLEEP(1)",
        "HANDLER singer OPEN",
        "DROP TABLE singer",
        "CREATE OR REPLACE TABLE singer (a INT)",
        "SELECT 1; DROP TABLE singer",
        "   ",
    ],
)
def test_mysql_guard_refuses_what_the_server_may_not(sql):
    with pytest.raises(UnsafeSQLError, match="refused by the connection"):
        _guard(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT Name FROM singer WHERE Name = 'INTO OUTFILE' -- INTO OUTFILE",
        "SELECT `into` FROM t",
        "WITH a AS (SELECT 1 AS x) SELECT x FROM a;",
        "(SELECT 1) UNION (SELECT 2)",
        "SELECT 'it\\'s', \"a \"\"b\"\"\" AS s",
        "SELECT 1 # LOAD_FILE('/etc/passwd')",
    ],
)
def test_mysql_guard_lets_read_queries_through(sql):
    assert _guard(sql) is None  # no refusal
    tokens = _server_words(sql)
    words = {value.upper() for kind, value in tokens if kind == "word"}
    # what looked dangerous sat in a string, a quoted name or a comment, where the server never reads it
    assert tokens[0] in (("word", "SELECT"), ("word", "WITH"), ("symbol", "("))
    assert not {"INTO", "OUTFILE", "LOAD_FILE"} & words


def test_mysql_lexer_follows_the_server():
    def flat(sql):
        return [value for _, value in _server_words(sql)]

    assert flat("SELECT 1 --1") == ["SELECT", "1", "-", "-", "1"]
    assert flat("SELECT 1 -- x\n, 2") == ["SELECT", "1", ",", "2"]
    assert flat("SELECT 1 --\x7f x\n, 2") == ["SELECT", "1", ",", "2"]  # DEL is a control character
    assert flat("SELECT /*M!100500 2, */ 1") == ["SELECT", "2", ",", "1"]
    assert _server_words("SELECT 'a\\'b' /* c */ x") == [("word", "SELECT"), ("string", "a\\'b"), ("word", "x")]
    # U+00A0 is a name character to the server, never a space
    assert _server_words("SELECT a\u00a0FROM t") == [("word", "SELECT"), ("word", "a\u00a0FROM"), ("word", "t")]
    assert _server_words("SELECT `load_file`(1)")[1] == ("quoted", "load_file")


# -- 6. SQLite bounded in files: the connection refuses with the check bypassed ---------------


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{dir}/plain.db' AS x",
        "ATTACH DATABASE 'file:{dir}/uri.db?mode=rwc' AS x",
        "ATTACH 'file:{dir}/uri2.db?mode=rwc&cache=shared' AS y",
        "VACUUM INTO '{dir}/copy.db'",
        "VACUUM",
        "DETACH DATABASE main",
        "PRAGMA user_version = 7",
        "PRAGMA journal_mode = WAL",
        "PRAGMA writable_schema = ON",
        "PRAGMA main.page_size = 1024",
        "SELECT hex(fts3_tokenizer('simple'))",
        "SELECT load_extension('{dir}/evil')",
        "CREATE TEMP TABLE t (a)",
        "CREATE TABLE t (a)",
        "DROP TABLE singer",
        "DELETE FROM singer",
        "ANALYZE",
        "REINDEX",
    ],
)
def test_sqlite_connection_creates_and_changes_nothing_past_the_check(singer_copy, sql):
    folder = singer_copy.parent
    before_files = sorted(os.listdir(folder))
    before = _sha(singer_copy)
    db = open_database(singer_copy)
    with pytest.raises(QueryError):
        db._execute(sql.format(dir=folder), 5.0, 10)
    assert sorted(os.listdir(folder)) == before_files  # no file created
    assert _sha(singer_copy) == before
    # and the check refuses it first
    assert db.try_execute(sql.format(dir=folder)).error_kind == "refused"


def test_sqlite_introspection_and_read_pragmas_still_work(singer_copy):
    db = open_database(singer_copy)
    assert [t.name for t in db.schema().tables] == ["stadium", "singer", "concert", "singer_in_concert"]
    cols, rows, _ = db._execute("PRAGMA table_info(singer)", 5.0, 100)
    assert [r[1] for r in rows][:2] == ["Singer_ID", "Name"]
    cols, rows, _ = db._execute("SELECT name FROM pragma_table_info('concert')", 5.0, 100)
    assert "concert_Name" in [r[0] for r in rows]
    assert db._execute("PRAGMA user_version", 5.0, 10)[1] == [(0,)]


# -- 6. SQLite bounded in time and memory: value size and result bytes -----------------------


@pytest.mark.parametrize("sql", ["SELECT randomblob(1e9)", "SELECT zeroblob(1e9)", "SELECT length(randomblob(1e9))"])
def test_huge_values_fail_fast(singer_copy, sql):
    db = open_database(singer_copy, query_timeout=3.0)
    start = time.monotonic()
    res = db.try_execute(sql)
    assert time.monotonic() - start < 1.0  # it used to run 6.5 s past the 3 s timeout
    assert res.error_kind == "error" and "too big" in res.error and "33,554,432 bytes" in res.error


def test_value_cap_is_configurable(singer_copy):
    db = open_database(singer_copy, max_value_bytes=1000)
    assert db.execute("SELECT length(randomblob(999))").rows == [(999,)]
    assert "too big" in db.try_execute("SELECT randomblob(1001)").error
    assert "too big" in db.try_execute("SELECT group_concat(Name, randomblob(400)) FROM singer").error


def test_byte_cap_cuts_the_result_and_says_so(singer_copy):
    db = open_database(singer_copy, max_result_bytes=3_500_000)
    start = time.monotonic()
    res = db.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x, randomblob(1000000) FROM c"
    )
    assert time.monotonic() - start < 2.0
    assert res.truncated and len(res.rows) == 3  # 3 x 1 MB fit, the 4th would pass 3.5 MB
    assert [r[0] for r in res.rows] == [1, 2, 3]


def test_default_byte_cap_whatever_the_row_cap(singer_copy):
    db = open_database(singer_copy, max_rows=1_000_000)
    res = db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) "
                     "SELECT randomblob(20000000) FROM c")
    assert res.truncated and len(res.rows) == 3  # 3 x 20 MB under the 64 MiB default


# -- 8. the row cap says when rows were cut ---------------------------------------------------


@pytest.mark.parametrize("cap,truncated", [(5, True), (6, False), (7, False), (0, True)])
def test_row_cap_flag_is_exact(concert_singer, cap, truncated):
    res = open_database(concert_singer).execute("SELECT Name FROM singer", max_rows=cap)
    assert len(res.rows) == min(cap, 6) and res.truncated is truncated


def test_endless_query_is_cut_by_the_row_cap(concert_singer):
    res = open_database(concert_singer).execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c", max_rows=1000
    )
    assert res.truncated and res.rows[-1] == (1000,)


def test_timeout_is_a_timeout_not_a_result(concert_singer):
    db = open_database(concert_singer)
    res = db.try_execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c", timeout=0.5
    )
    assert res.error_kind == "timeout" and res.rows == []
    with pytest.raises(QueryTimeout):
        db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c", timeout=0.3)


# -- 9. malformed URLs: one DatabaseError, no ValueError, no password in the message ----------


@pytest.mark.parametrize(
    "spec",
    [
        "mysql://root@127.0.0.1:99999/x",
        "mysql://root@127.0.0.1:abc/x",
        "mysql+pymysql://root:s3cret@127.0.0.1:abc/x",
        "mysql://root@127.0.0.1:0/x",
        "mysql://root@127.0.0.1:-1/x",
        "mariadb://root@[::1/x",
        "postgresql://u@127.0.0.1:99999/x",
        "postgresql://u:s3cret@127.0.0.1:port/x",
        "postgres://u@[127.0.0.1/x",
        "mysql://root@127.0.0.1:3306/",
        "ftp://x/y",
        "",
    ],
)
def test_malformed_urls_raise_database_error(spec):
    with pytest.raises(DatabaseError) as err:
        open_database(spec)
    message = str(err.value)
    assert message and "s3cret" not in message


@pytest.mark.parametrize("value", [None, 123, 4.5, b"/tmp/x.sqlite", ["a.sqlite"]])
def test_non_path_values_raise_database_error(value):
    with pytest.raises(DatabaseError, match="expected a database path or URL"):
        open_database(value)  # type: ignore[arg-type]


# -- 3. privileges: nothing to say about a read-only SQLite file ------------------------------


def test_sqlite_has_no_privilege_warnings(concert_singer):
    assert open_database(concert_singer).privilege_warnings() == []


# -- 10. change stamp and refresh_if_changed -------------------------------------------------


def test_refresh_if_changed_sees_a_new_table(singer_copy):
    db = open_database(singer_copy)
    first = db.change_stamp()
    assert db.change_stamp() == first  # cheap and stable
    assert db.refresh_if_changed() is False  # nothing cached yet: nothing to refresh
    assert db.schema().table("critic") is None
    assert db.refresh_if_changed() is False  # unchanged
    with sqlite3.connect(singer_copy) as conn:
        conn.execute("CREATE TABLE critic (critic_id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO critic VALUES (1, 'Ann')")
    conn.close()
    assert db.change_stamp() != first
    assert db.refresh_if_changed() is True
    assert db.schema().table("critic").column("name").examples == ["Ann"]
    assert db.refresh_if_changed() is False


def test_change_stamp_follows_the_wal_file(singer_copy):
    writer = sqlite3.connect(singer_copy)
    writer.execute("PRAGMA journal_mode = WAL")
    db = open_database(singer_copy)
    db.schema()
    stamp = db.change_stamp()
    writer.execute("INSERT INTO singer (Singer_ID, Name) VALUES (99, 'New')")
    writer.commit()  # lands in the -wal file; the main file is unchanged
    assert db.change_stamp() != stamp
    assert db.refresh_if_changed() is True
    assert db.execute("SELECT count(*) FROM singer").rows == [(7,)]
    writer.close()


def test_schema_refresh_argument(singer_copy):
    db = SQLiteDatabase(singer_copy)
    cached = db.schema()
    assert db.schema() is cached
    assert db.schema(refresh=True) is not cached
