"""The PostgreSQL connector against a real PostgreSQL cluster started by the fixture."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from quorumsql import answer, open_database
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout, UnsafeSQLError

pytestmark = pytest.mark.postgres


def test_introspection_and_execution(postgres_concert_singer):
    db = open_database(postgres_concert_singer)
    assert db.dialect == "postgres" and db.db_id == "concert_singer"
    schema = db.schema()
    assert {t.name for t in schema.tables} == {"stadium", "singer", "concert", "singer_in_concert"}
    assert schema.table("singer").primary_key == ["Singer_ID"]
    assert schema.table("singer_in_concert").primary_key == ["concert_ID", "Singer_ID"]
    assert "singer_in_concert.concert_ID=concert.concert_ID" in {str(f) for f in schema.foreign_keys}
    assert len(schema.table("singer").column("Name").examples) == 3
    assert db.execute('SELECT count(*) FROM singer').rows == [(6,)]


def test_refusals_read_only_session_and_timeout(postgres_server, postgres_concert_singer):
    import psycopg

    host, port, user = postgres_server
    with psycopg.connect(host=host, port=port, user=user, dbname="concert_singer", autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE IF NOT EXISTS qsql_counter")
    db = open_database(postgres_concert_singer)
    with pytest.raises(UnsafeSQLError):
        db.execute("DELETE FROM singer")
    # past the check, the connector's guard refuses before sending anything
    with pytest.raises(UnsafeSQLError, match="refused by the connection.*DELETE"):
        db._execute("DELETE FROM singer", 5.0, 10)
    with pytest.raises(UnsafeSQLError, match="nextval"):
        db._execute("SELECT nextval('qsql_counter')", 5.0, 10)
    # the server's own locks, past both: the query runs as a server-side cursor, which takes
    # only a query, inside a read-only transaction, which refuses writes made by functions
    with pytest.raises(QueryError, match="syntax error"):
        db._run_read_only("DELETE FROM singer", 5.0, 10)
    with pytest.raises(QueryError, match="data-modifying"):
        db._run_read_only("WITH d AS (DELETE FROM singer RETURNING *) SELECT * FROM d", 5.0, 10)
    with pytest.raises(QueryError, match="read-only transaction"):
        db._run_read_only("SELECT nextval('qsql_counter')", 5.0, 10)
    with pytest.raises(QueryTimeout):
        db.execute("SELECT pg_sleep(3)", timeout=0.5)
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]
    with psycopg.connect(host=host, port=port, user=user, dbname="concert_singer", autocommit=True) as conn:
        conn.execute("DROP SEQUENCE qsql_counter")


def test_answer_on_postgres(postgres_concert_singer):
    llm = FakeListChatModel(responses=['```sql\nSELECT count(*) FROM singer\n```'])
    ans = answer("How many singers do we have?", postgres_concert_singer, llm=llm, preset="fast")
    assert ans.rows == [(6,)] and ans.db_id == "concert_singer"
    assert "PostgreSQL" in ans.candidates[0].conversation[0].content  # the prompt names the dialect


def test_unreachable(postgres_server):
    with pytest.raises(DatabaseError, match="cannot reach PostgreSQL"):
        open_database("postgresql://postgres@127.0.0.1:9/x")


# -- issue 7: hardening --------------------------------------------------------------------

READER = "qsql_reader"


@pytest.fixture(scope="module")
def pg_reader_url(postgres_server, postgres_concert_singer) -> str:
    """URL of a role that may connect and SELECT on concert_singer, nothing else."""
    import psycopg

    host, port, user = postgres_server
    with psycopg.connect(host=host, port=port, user=user, dbname="concert_singer", autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {READER}" if conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,)).fetchone() else "SELECT 1")
        conn.execute(f"DROP ROLE IF EXISTS {READER}")
        conn.execute(f"CREATE ROLE {READER} LOGIN")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")
    return f"postgresql://{READER}@{host}:{port}/concert_singer"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT pg_stat_file('postgresql.conf')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT query_to_xml('SELECT pg_read_file(''/etc/passwd'')', true, true, '')",
    ],
)
def test_file_functions_are_refused(postgres_concert_singer, sql):
    """The superuser fixture role could run each of them: only the check stops them."""
    res = open_database(postgres_concert_singer).try_execute(sql)
    assert res.error_kind == "refused" and "not allowed" in res.error and res.rows == []


def test_privilege_warnings(postgres_concert_singer, pg_reader_url):
    warnings = open_database(postgres_concert_singer).privilege_warnings()
    assert len(warnings) == 1 and "superuser" in warnings[0]
    reader = open_database(pg_reader_url)
    assert reader.privilege_warnings() == []
    assert reader.execute('SELECT count(*) FROM singer').rows == [(6,)]
    with pytest.raises(QueryError, match="permission denied"):
        reader._run_read_only("SELECT pg_read_file('/etc/passwd')", 5.0, 10)  # the server, for this role


def test_write_privileges_are_reported(postgres_server, postgres_concert_singer, pg_reader_url):
    import psycopg

    host, port, user = postgres_server
    with psycopg.connect(host=host, port=port, user=user, dbname="concert_singer", autocommit=True) as conn:
        conn.execute(f"GRANT INSERT ON singer TO {READER}")
        conn.execute(f"GRANT pg_read_server_files TO {READER}")
    try:
        warnings = open_database(pg_reader_url).privilege_warnings()
        assert any("pg_read_server_files" in w for w in warnings)
        assert any("write 1 table" in w for w in warnings)
    finally:
        with psycopg.connect(host=host, port=port, user=user, dbname="concert_singer", autocommit=True) as conn:
            conn.execute(f"REVOKE INSERT ON singer FROM {READER}")
            conn.execute(f"REVOKE pg_read_server_files FROM {READER}")


def test_trailing_comment_caps_and_empty_results(postgres_concert_singer):
    db = open_database(postgres_concert_singer)
    assert db.execute("SELECT count(*) FROM singer; -- all").rows == [(6,)]
    for cap, truncated in ((5, True), (6, False)):
        res = db.execute('SELECT "Name" FROM singer', max_rows=cap)
        assert len(res.rows) == min(cap, 6) and res.truncated is truncated
    empty = db.execute('SELECT "Name", "Age" FROM singer WHERE false')
    assert empty.columns == ["Name", "Age"] and empty.rows == [] and not empty.truncated
    big = open_database(postgres_concert_singer, max_result_bytes=2_500_000).execute(
        "SELECT repeat('a', 1000000) FROM generate_series(1, 1000000)"
    )
    assert big.truncated and len(big.rows) == 2
    endless = db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
                         max_rows=50)
    assert endless.truncated and endless.rows[-1] == (50,)


def test_malformed_postgres_urls(postgres_server):
    host, port, user = postgres_server
    for spec in (f"postgresql://{user}@{host}:99999/x", f"postgresql://{user}@{host}:abc/x"):
        with pytest.raises(DatabaseError, match="port"):
            open_database(spec)


def test_refresh_if_changed_sees_a_new_table(postgres_server, postgres_concert_singer):
    import psycopg

    host, port, user = postgres_server
    db = open_database(postgres_concert_singer)
    db.schema()
    assert db.refresh_if_changed() is False
    with psycopg.connect(host=host, port=port, user=user, dbname="concert_singer", autocommit=True) as conn:
        conn.execute("CREATE TABLE critic (critic_id INTEGER PRIMARY KEY, name TEXT)")
    try:
        assert db.refresh_if_changed() is True
        assert db.schema().table("critic") is not None
        assert db.refresh_if_changed() is False
    finally:
        with psycopg.connect(host=host, port=port, user=user, dbname="concert_singer", autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS critic")
