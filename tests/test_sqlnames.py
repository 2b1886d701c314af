"""The one identifier quoting and the one column-name normalisation (quorumsql.sqlnames)."""

from __future__ import annotations

import sqlite3

import pytest

from quorumsql.agents.error_hints import close_names, error_hint
from quorumsql.db import open_database
from quorumsql.sqlnames import _SQLITE_RESERVED, normalize_column_name, quote_identifier
from tests.conftest import spider_db


@pytest.mark.parametrize("dialect,name,quoted", [
    ("sqlite", "Singer_ID", '"Singer_ID"'),
    ("sqlite", 'odd"name', '"odd""name"'),
    ("postgres", "Song Name", '"Song Name"'),
    ("mysql", "Singer_ID", "`Singer_ID`"),
    ("mysql", "odd`name", "`odd``name`"),
])
def test_always_quoted_per_dialect(dialect, name, quoted):
    assert quote_identifier(name, dialect) == quoted


@pytest.mark.parametrize("dialect,name,written", [
    ("sqlite", "Singer_ID", "Singer_ID"),
    ("sqlite", "From", '"From"'),  # reserved in SQLite
    ("sqlite", "match", "match"),  # a keyword SQLite accepts as a name
    ("sqlite", "2nd place", '"2nd place"'),
    ("mysql", "Order", "`Order`"),  # sqlglot's MySQL reserved words
    ("postgres", "user", '"user"'),  # PostgreSQL reserved (DuckDB shares the list)
    ("postgres", "Capacity", "Capacity"),
])
def test_quoted_only_when_needed(dialect, name, written):
    assert quote_identifier(name, dialect, always=False) == written


def test_quoted_names_run_on_a_real_database(concert_singer):
    db = open_database(concert_singer)
    q = [quote_identifier(n, "sqlite") for n in ("Name", "Song_release_year", "singer")]
    res = db.execute(f"SELECT {q[0]}, {q[1]} FROM {q[2]} ORDER BY {q[1]}")
    assert len(res.rows) == 6 and res.columns == ["Name", "Song_release_year"]


def _works_as_table_and_column(name: str) -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE TABLE {name} (x INT, {name} INT)")
        conn.execute(f"SELECT {name} FROM {name} WHERE {name} = 1 ORDER BY {name}")
        return True
    except sqlite3.OperationalError:
        return False


def test_the_sqlite_reserved_table_matches_the_engine():
    for word in sorted(_SQLITE_RESERVED):
        assert not _works_as_table_and_column(word), word
        assert _works_as_table_and_column(quote_identifier(word, "sqlite")), word
    # keywords outside the table really are accepted bare
    for word in ("match", "key", "range", "no", "year"):
        assert _works_as_table_and_column(word), word


def test_normalized_column_names():
    assert normalize_column_name("Pet_Type") == normalize_column_name("pet type") == "pettype"
    assert normalize_column_name("PetType") == "pettype"
    assert normalize_column_name("Song-Name (2)") == "songname2"
    assert normalize_column_name("São_Paulo") == "sãopaulo"


def test_close_names_use_the_normalized_spelling():
    cols = ["PetType", "pet_age", "weight", "PetID"]
    assert close_names("pet_type", cols)[0] == "PetType"
    assert close_names("Weigth", cols)[0] == "weight"
    assert close_names("zzz", cols) == []


def test_error_hint_names_the_close_column():
    schema = open_database(spider_db("pets_1")).schema()
    hint = error_hint("SELECT pet_typ FROM Pets", "no such column: pet_typ", schema)
    assert "similar names: PetType" in hint and "Columns of Pets: PetID, PetType" in hint
