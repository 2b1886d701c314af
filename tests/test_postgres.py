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


def test_refusals_read_only_session_and_timeout(postgres_concert_singer):
    db = open_database(postgres_concert_singer)
    with pytest.raises(UnsafeSQLError):
        db.execute("DELETE FROM singer")
    with pytest.raises(QueryError, match="read-only"):
        db._execute("DELETE FROM singer", 5.0, 10)  # the second lock
    with pytest.raises(QueryTimeout):
        db.execute("SELECT pg_sleep(3)", timeout=0.5)
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]


def test_answer_on_postgres(postgres_concert_singer):
    llm = FakeListChatModel(responses=['```sql\nSELECT count(*) FROM singer\n```'])
    ans = answer("How many singers do we have?", postgres_concert_singer, llm=llm, preset="fast")
    assert ans.rows == [(6,)] and ans.db_id == "concert_singer"
    assert "PostgreSQL" in ans.candidates[0].conversation[0].content  # the prompt names the dialect


def test_unreachable(postgres_server):
    with pytest.raises(DatabaseError, match="cannot reach PostgreSQL"):
        open_database("postgresql://postgres@127.0.0.1:9/x")
