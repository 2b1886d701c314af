"""The MySQL connector against a real MariaDB server (started by CI or by the fixture)."""

from __future__ import annotations

import pytest

from quorumsql import answer, open_database
from quorumsql.config import Settings
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout, UnsafeSQLError

pytestmark = pytest.mark.mysql


def test_introspection_and_execution(mysql_concert_singer):
    db = open_database(mysql_concert_singer)
    assert db.dialect == "mysql" and db.db_id == "concert_singer"
    schema = db.schema()
    assert {t.name for t in schema.tables} == {"stadium", "singer", "concert", "singer_in_concert"}
    assert schema.table("singer").primary_key == ["Singer_ID"]
    assert "singer_in_concert.concert_ID=concert.concert_ID" in {str(f) for f in schema.foreign_keys}
    assert len(schema.table("singer").column("Name").examples) == 3
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]
    assert "password" not in db.uri


def test_refusals_and_the_read_only_transaction(mysql_concert_singer):
    db = open_database(mysql_concert_singer)
    for sql in ("DELETE FROM singer", "SELECT 1; DROP TABLE singer", "DROP DATABASE concert_singer"):
        with pytest.raises(UnsafeSQLError):
            db.execute(sql)
    # the second lock: even past the check, the session is READ ONLY on the server ...
    with pytest.raises(QueryError, match="1792"):
        db._run_read_only("DELETE FROM singer", 5.0, 10)
    # ... and the connector's own guard refuses it before sending
    with pytest.raises(UnsafeSQLError, match="refused by the connection"):
        db._execute("DELETE FROM singer", 5.0, 10)
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]


def test_server_side_timeout(mysql_concert_singer):
    db = open_database(mysql_concert_singer)
    heavy = (
        "SELECT count(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, "
        "information_schema.COLUMNS c"
    )
    with pytest.raises(QueryTimeout):
        db.execute(heavy, timeout=1.0)
    assert db.execute("SELECT 1").rows == [(1,)]  # the server is fine afterwards


def test_row_cap(mysql_concert_singer):
    res = open_database(mysql_concert_singer, max_rows=2).execute("SELECT Name FROM singer")
    assert len(res.rows) == 2 and res.truncated


def test_unreachable_and_unknown(mysql_server):
    host, port, user, _ = mysql_server
    with pytest.raises(DatabaseError, match="cannot reach MySQL"):
        open_database("mysql+pymysql://root@127.0.0.1:9/x")
    with pytest.raises(DatabaseError, match="does not exist"):
        open_database(f"mysql+pymysql://{user}@{host}:{port}/no_such_db_qsql")


@pytest.mark.e2e
def test_answer_on_mariadb_with_the_embedded_model(mysql_concert_singer, embedded_server):
    ans = answer("How many singers do we have?", mysql_concert_singer, settings=Settings.load(llm_base_url=""), preset="fast")
    assert ans.rows == [(6,)]
