"""Issue 7 on a real MariaDB: the model's SQL must never write, read files or outlive its budget.

Hostile statements run against a private copy of Spider's concert_singer (``qsql_victim``), so
that a statement that did get through could not break the other MySQL tests. "Unchanged" is
checked with the table list and a CHECKSUM TABLE of every table, "no file" with a listing of the
folder the statement tried to write to.

Three levels are told apart:
- ``execute()``: the sqlglot check first (what the pipeline uses);
- ``_execute()``: the check bypassed; the connector's lexical guard and the server remain;
- ``_run_read_only()``: the server's own locks only (read-only session, time limit).
"""

from __future__ import annotations

import time

import pytest

from quorumsql.db import open_database
from quorumsql.errors import QueryError, QueryTimeout, UnsafeSQLError
from tests.conftest import load_sqlite_into_mysql, spider_db

pytestmark = pytest.mark.mysql

VICTIM = "qsql_victim"
READER, READER_PW = "qsql_reader", "reader-pw"


def _root(server):
    import pymysql

    host, port, user, password = server
    return pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)


@pytest.fixture(scope="module")
def victim(mysql_server) -> str:
    """URL (root account) of a private copy of concert_singer."""
    return load_sqlite_into_mysql(spider_db("concert_singer"), mysql_server, VICTIM)


@pytest.fixture(scope="module")
def reader_url(mysql_server, victim) -> str:
    """URL of an account that holds SELECT on the victim database and nothing else."""
    host, port, _, _ = mysql_server
    conn = _root(mysql_server)
    with conn.cursor() as cur:
        for h in ("%", "localhost"):
            cur.execute(f"DROP USER IF EXISTS '{READER}'@'{h}'")
            cur.execute(f"CREATE USER '{READER}'@'{h}' IDENTIFIED BY '{READER_PW}'")
            cur.execute(f"GRANT SELECT ON `{VICTIM}`.* TO '{READER}'@'{h}'")
    conn.close()
    return f"mysql+pymysql://{READER}:{READER_PW}@{host}:{port}/{VICTIM}"


def _state(server) -> dict:
    """Tables of the victim database with their checksums, and the database list."""
    conn = _root(server)
    with conn.cursor() as cur:
        cur.execute(f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{VICTIM}' ORDER BY 1")
        tables = [r[0] for r in cur.fetchall()]
        sums = {}
        for t in tables:
            cur.execute(f"CHECKSUM TABLE `{VICTIM}`.`{t}`")
            sums[t] = cur.fetchone()[1]
        cur.execute("SHOW DATABASES")
        databases = sorted(r[0] for r in cur.fetchall())
    conn.close()
    return {"tables": sums, "databases": databases}


# -- 1. executable comments: refused by the check, nothing reaches the server ---------------

EXECUTABLE = [
    "/*! CREATE TABLE t_exec (a INT) */ SELECT 1 AS x",
    "/*M! CREATE OR REPLACE TABLE singer (a INT) */ SELECT 1 AS x",
    "/*!50000 DROP TABLE concert */ SELECT 1 AS x",
    "SELECT Name FROM singer /*! INTO OUTFILE '{out}' */",
    "SELECT Name FROM singer /*M!100000 INTO DUMPFILE '{out}' */",
    "SELECT 1 /*!, LOAD_FILE('/etc/hostname') */ AS x",
]


@pytest.mark.parametrize("sql", EXECUTABLE)
def test_executable_comments_never_reach_the_server(mysql_server, victim, tmp_path, sql):
    before = _state(mysql_server)
    out = tmp_path / "out.txt"
    db = open_database(victim)
    with pytest.raises(UnsafeSQLError):
        db.execute(sql.format(out=out))
    with pytest.raises(UnsafeSQLError):
        db._execute(sql.format(out=out), 5.0, 10)  # the connector's guard reads them as code
    assert not out.exists()
    assert _state(mysql_server) == before


def test_executable_comment_text_in_a_string_is_data(victim):
    assert open_database(victim).execute("SELECT '/*! DROP TABLE singer */' AS s").rows == [("/*! DROP TABLE singer */",)]


# -- 2. the second lock: what the read-only session stops on the server ---------------------

SERVER_STOPS = [
    "DROP TABLE singer_in_concert",
    "DROP TABLE IF EXISTS concert",
    "CREATE TABLE t_new (a INT)",
    "CREATE OR REPLACE TABLE singer (a INT)",
    "CREATE TABLE t_copy AS SELECT * FROM singer",
    "CREATE DATABASE qsql_new_db",
    "CREATE VIEW v_new AS SELECT 1 AS x",
    "ALTER TABLE singer ADD COLUMN z INT",
    "RENAME TABLE concert TO concert_2",
    "TRUNCATE TABLE singer_in_concert",
    "LOCK TABLES singer WRITE",
    "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')",
    "UPDATE singer SET Age = 1",
    "DELETE FROM singer",
    "CREATE TEMPORARY TABLE t_tmp (a INT)",
    "GRANT SELECT ON *.* TO 'qsql_nobody'@'%' IDENTIFIED BY 'x'",
]


@pytest.mark.parametrize("sql", SERVER_STOPS)
def test_read_only_session_stops_ddl_and_writes_on_the_server(mysql_server, victim, sql):
    """Check and guard bypassed: the server refuses (1792), DDL's implicit commit included."""
    before = _state(mysql_server)
    db = open_database(victim)
    with pytest.raises(QueryError, match="1792"):
        db._run_read_only(sql, 5.0, 10)
    with pytest.raises(UnsafeSQLError):
        db.execute(sql)
    assert _state(mysql_server) == before


def test_what_only_the_account_stops(mysql_server, victim, reader_url, tmp_path):
    """SET GLOBAL, INTO OUTFILE and LOAD_FILE pass a read-only session for a privileged account.

    So the check (``execute``) and the connector's guard (``_execute``) refuse them, and a
    SELECT-only account is refused by the server itself.
    """
    out = tmp_path / "outfile.txt"
    root = open_database(victim)
    reader = open_database(reader_url)
    statements = [
        "SET GLOBAL max_connections = @@GLOBAL.max_connections",
        f"SELECT Name FROM singer INTO OUTFILE '{out}'",
        "SELECT LOAD_FILE('/etc/hostname') AS f",
        "SET STATEMENT tx_read_only = 0 FOR CREATE TABLE t_lifted (a INT)",
    ]
    for sql in statements:
        with pytest.raises(UnsafeSQLError):
            root.execute(sql)
        with pytest.raises(UnsafeSQLError, match="refused by the connection"):
            root._execute(sql, 5.0, 10)
    assert not out.exists()
    # the server alone: a root session lets them run ...
    root._run_read_only(statements[0], 5.0, 10)
    root._run_read_only(statements[1], 5.0, 10)
    assert out.exists()
    out.unlink()
    assert root._run_read_only(statements[2], 5.0, 10)[1][0][0]  # the file's bytes
    # ... a SELECT-only account does not
    with pytest.raises(QueryError, match="1227|Access denied"):
        reader._run_read_only(statements[0], 5.0, 10)
    with pytest.raises(QueryError, match="1045|Access denied"):
        reader._run_read_only(statements[1], 5.0, 10)
    assert not out.exists()
    assert reader._run_read_only(statements[2], 5.0, 10)[1] == [(None,)]
    with pytest.raises(QueryError, match="1142|denied"):
        reader._run_read_only(statements[3], 5.0, 10)
    assert "t_lifted" not in _state(mysql_server)["tables"]
    # and SET STATEMENT does lift the session's read-only mode for root: only the check and
    # the guard stop it (proved on a throw-away table name, dropped again)
    try:
        root._run_read_only(statements[3], 5.0, 10)
        assert "t_lifted" in _state(mysql_server)["tables"]
    finally:
        conn = _root(mysql_server)
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{VICTIM}`.t_lifted")
        conn.close()


def test_load_file_is_refused(victim):
    res = open_database(victim).try_execute("SELECT LOAD_FILE('/etc/passwd') AS f")
    assert res.error_kind == "refused" and "load_file" in res.error.lower()


# -- 3. privileges read at connect time ----------------------------------------------------


def test_root_account_is_reported(victim):
    warnings = open_database(victim).privilege_warnings()
    assert len(warnings) == 2
    assert "ALL PRIVILEGES ON *.*" in warnings[0] and "SELECT" in warnings[0]
    assert "FILE" in warnings[1] and "INTO OUTFILE" in warnings[1]


def test_select_only_account_is_not_reported(reader_url):
    db = open_database(reader_url)
    assert db.privilege_warnings() == []
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]


def test_privileges_are_read_once_and_never_raise(victim, monkeypatch):
    from quorumsql.db.mysql import MySQLDatabase

    db = open_database(victim)
    first = db.privilege_warnings()

    def boom(self, conn=None):
        raise AssertionError("privileges read twice")

    monkeypatch.setattr(MySQLDatabase, "_read_privileges", boom)
    assert db.privilege_warnings() == first  # cached at connect time
    unreadable = open_database(victim)
    assert len(unreadable.privilege_warnings()) == 1
    assert unreadable.privilege_warnings()[0].startswith("could not read the privileges")


# -- 5. a statement stopped by the time limit is a timeout, never a result --------------------


@pytest.mark.parametrize("sql", ["SELECT BENCHMARK(1e10, MD5('a'))", "SELECT SLEEP(5)", "SELECT 1 FROM singer WHERE SLEEP(1) = 0"])
def test_interrupted_statement_is_a_timeout(victim, sql):
    db = open_database(victim)
    start = time.monotonic()
    res = db.try_execute(sql, timeout=1.0)
    assert time.monotonic() - start < 2.0
    assert res.error_kind == "timeout" and res.rows == []
    with pytest.raises(QueryTimeout):
        db.execute(sql, timeout=0.5)
    assert db.execute("SELECT BENCHMARK(10, MD5('a'))", timeout=5).rows == [(0,)]  # finished: a result


# -- 7, 8. trailing comments, row and byte caps ---------------------------------------------


def test_trailing_comment_after_the_semicolon(victim):
    assert open_database(victim).execute("SELECT count(*) FROM singer; -- all of them").rows == [(6,)]


@pytest.mark.parametrize("cap,truncated", [(5, True), (6, False), (7, False)])
def test_row_cap_flag_is_exact(victim, cap, truncated):
    res = open_database(victim).execute("SELECT Name FROM singer", max_rows=cap)
    assert len(res.rows) == min(cap, 6) and res.truncated is truncated


def test_byte_cap_cuts_a_huge_result_quickly(victim):
    db = open_database(victim, max_result_bytes=2_500_000, max_rows=1_000_000)
    start = time.monotonic()
    res = db.execute("SELECT REPEAT('a', 1000000) AS big FROM singer a, singer b, singer c, singer d")
    assert time.monotonic() - start < 2.0
    assert res.truncated and len(res.rows) == 2
    endless = db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
                         max_rows=100)
    assert endless.truncated and endless.rows[-1] == (100,)
    assert db.execute("SELECT 1").rows == [(1,)]  # the server is fine afterwards


def test_session_lexes_strings_like_the_check(mysql_server, victim):
    """Even when the server's default sql_mode has NO_BACKSLASH_ESCAPES / ANSI_QUOTES."""
    conn = _root(mysql_server)
    with conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.sql_mode")
        saved = cur.fetchone()[0]
        cur.execute("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES,ANSI_QUOTES')")
    try:
        db = open_database(victim)
        assert db.execute("SELECT 'it\\'s' AS a, \"q\" AS b").rows == [("it's", "q")]
    finally:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL sql_mode = %s", (saved,))
        conn.close()


# -- 10. change stamp ---------------------------------------------------------------------


def test_refresh_if_changed_sees_a_new_table(mysql_server, victim):
    db = open_database(victim)
    db.schema()
    assert db.refresh_if_changed() is False
    conn = _root(mysql_server)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE `{VICTIM}`.critic (critic_id INT PRIMARY KEY, name VARCHAR(20))")
        assert db.refresh_if_changed() is True
        assert db.schema().table("critic") is not None
        assert db.refresh_if_changed() is False
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{VICTIM}`.critic")
        conn.close()
