"""Connectors on real Spider SQLite files: introspection, read-only execution, limits, bad input."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from quorumsql.db import SQLiteDatabase, open_database
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout, UnsafeSQLError


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_introspects_concert_singer(concert_singer):
    schema = open_database(concert_singer).schema()
    assert schema.db_id == "concert_singer" and schema.dialect == "sqlite"
    assert [t.name for t in schema.tables] == ["stadium", "singer", "concert", "singer_in_concert"]
    singer = schema.table("SINGER")
    assert singer.primary_key == ["Singer_ID"]
    assert [c.name for c in singer.columns][:3] == ["Singer_ID", "Name", "Country"]
    assert schema.table("singer_in_concert").primary_key == ["concert_ID", "Singer_ID"]
    fks = {str(fk) for fk in schema.foreign_keys}
    assert fks == {
        "concert.Stadium_ID=stadium.Stadium_ID",
        "singer_in_concert.Singer_ID=singer.Singer_ID",
        "singer_in_concert.concert_ID=concert.concert_ID",
    }
    # examples are real distinct values of the column
    assert set(singer.column("Country").examples) <= {"Netherlands", "United States", "France"}
    assert len(singer.column("Country").examples) == 3


def test_execute_returns_rows(concert_singer):
    db = open_database(concert_singer)
    res = db.execute("SELECT count(*) FROM singer;")
    assert res.rows == [(6,)] and res.columns == ["count(*)"] and not res.truncated


@pytest.mark.parametrize(
    "spec",
    [
        lambda p: str(p),
        lambda p: p,
        lambda p: f"sqlite:///{p}",
    ],
)
def test_open_database_forms(concert_singer, spec):
    db = open_database(spec(concert_singer))
    assert isinstance(db, SQLiteDatabase) and db.db_id == "concert_singer"
    assert open_database(db) is db


def test_relative_sqlite_url(concert_singer, monkeypatch):
    monkeypatch.chdir(concert_singer.parent)
    assert open_database("sqlite:///concert_singer.sqlite").execute("SELECT 1").rows == [(1,)]


def test_row_cap_truncates(concert_singer):
    res = open_database(concert_singer, max_rows=2).execute("SELECT Name FROM singer")
    assert len(res.rows) == 2 and res.truncated


def test_timeout_interrupts_sqlite(concert_singer):
    db = open_database(concert_singer)
    with pytest.raises(QueryTimeout, match="0.3 s"):
        db.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            timeout=0.3,
        )


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE singer",
        "DELETE FROM singer",
        "INSERT INTO singer (Singer_ID) VALUES (99)",
        "UPDATE singer SET Age = 1",
        "SELECT 1; DROP TABLE singer",
        "SELECT 1; SELECT 2",
        "CREATE TABLE x (a int)",
        "PRAGMA writable_schema = 1",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "VACUUM",
        "",
        "   ;  ",
    ],
)
def test_writes_and_multiple_statements_are_refused(concert_singer, sql):
    before = _sha(concert_singer)
    db = open_database(concert_singer)
    with pytest.raises(UnsafeSQLError):
        db.execute(sql)
    res = db.try_execute(sql)
    assert res.error_kind == "refused" and res.rows == []
    assert _sha(concert_singer) == before


def test_sqlite_connection_is_read_only_even_past_the_check(concert_singer):
    """The second lock: the connector opens SQLite with mode=ro."""
    db = open_database(concert_singer)
    with pytest.raises(QueryError, match="readonly|read-only|query_only"):
        db._execute("DELETE FROM singer", 5.0, 10)
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]


def test_query_error_message(concert_singer):
    res = open_database(concert_singer).try_execute("SELECT nosuch FROM singer")
    assert res.error_kind == "error" and "no such column: nosuch" in res.error


@pytest.mark.parametrize("kind", ["missing", "directory", "not_sqlite", "empty_spec", "bad_scheme"])
def test_bad_database_inputs(tmp_path, kind):
    spec = {
        "missing": str(tmp_path / "nope.sqlite"),
        "directory": str(tmp_path),
        "not_sqlite": str(tmp_path / "x.txt"),
        "empty_spec": "  ",
        "bad_scheme": "oracle://u@h/db",
    }[kind]
    (tmp_path / "x.txt").write_text("hello, not a database")
    with pytest.raises(DatabaseError) as err:
        open_database(spec)
    assert err.value.args[0]  # a message for people
    assert "Traceback" not in str(err.value)


def test_non_utf8_text_and_blobs_are_read(tmp_path):
    path = tmp_path / "odd.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
    conn.execute("INSERT INTO t VALUES (1, CAST(X'4361666580' AS TEXT), X'00FF')")
    conn.commit()
    conn.close()
    db = open_database(path)
    rows = db.execute("SELECT name, data FROM t").rows
    assert rows[0][0].startswith("Caf") and rows[0][1] == b"\x00\xff"
    assert db.schema().table("t").column("data").examples == []  # BLOBs are not examples


def test_fingerprint_changes_with_data(tmp_path):
    path = tmp_path / "f.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a INT)")
    conn.commit()
    first = open_database(path).fingerprint()
    assert open_database(path).fingerprint() == first
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    assert open_database(path).fingerprint() != first
