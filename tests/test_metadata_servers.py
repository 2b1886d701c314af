"""Metadata built on real MariaDB and PostgreSQL servers agrees with the SQLite build of the same data.

The profiler writes its queries once in SQLite syntax and transpiles them with sqlglot; these tests
run :func:`quorumsql.metadata.load_or_build` on copies of real Spider databases on throw-away
servers (``tests/conftest.py`` starts them) and check the content, not only that a store exists:

* concert_singer: integers, numbers stored as text, a small join graph;
* cre_Doc_Template_Mgt: DATETIME columns (typed on the servers), columns that are all NULL,
  empty strings, text codes referenced by a foreign key;
* cre_Doc_Tracking_DB: long free text (not indexed), more dates and codes.

Column statistics (row, NULL and distinct counts, uniqueness, ranges, patterns, examples, what
goes into the value index) must equal what the same build gives on the SQLite file, and the
facts checked against the data directly (through ``sqlite3``) must hold on every engine.
"""

from __future__ import annotations

import math
import sqlite3

import pytest

from quorumsql.config import Settings
from quorumsql.db import open_database
from quorumsql.metadata import load_or_build
from quorumsql.schema_repr import render_metadata_schema
from tests.conftest import load_sqlite_into_mysql, load_sqlite_into_postgres, spider_db

DBS = ("concert_singer", "cre_Doc_Template_Mgt", "cre_Doc_Tracking_DB")

SERVERS = [
    pytest.param("mysql", marks=pytest.mark.mysql, id="mariadb"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
]


def _copy(request, dialect: str, db_id: str, name: str) -> str:
    """URL of ``db_id`` copied into the session's server of ``dialect`` as database ``name``."""
    if dialect == "mysql":
        return load_sqlite_into_mysql(spider_db(db_id), request.getfixturevalue("mysql_server"), name)
    return load_sqlite_into_postgres(spider_db(db_id), request.getfixturevalue("postgres_server"), name)


def _truth(db_id: str, sql: str) -> list[tuple]:
    """Rows of ``sql`` run with the standard library on the original SQLite file."""
    conn = sqlite3.connect(f"file:{spider_db(db_id)}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Settings:
    return Settings(cache_dir=tmp_path_factory.mktemp("meta-servers"))


@pytest.fixture(scope="module")
def sqlite_meta(cache):
    return {db_id: load_or_build(open_database(spider_db(db_id)), cache) for db_id in DBS}


@pytest.fixture(scope="module", params=SERVERS)
def server(request, cache):
    """``(dialect, {db_id: (url, metadata)})`` for one server, built once per module."""
    dialect = request.param
    built = {}
    for db_id in DBS:
        url = _copy(request, dialect, db_id, f"qsql_meta_{db_id.lower()}")
        built[db_id] = (url, load_or_build(open_database(url), cache))
    return dialect, built


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


# -- column level ------------------------------------------------------------------------------
def test_every_column_profile_equals_the_sqlite_profile(server, sqlite_meta):
    dialect, built = server
    for db_id in DBS:
        _, meta = built[db_id]
        base = sqlite_meta[db_id]
        failed = [n for n in meta.record.skipped if "failed" in n]
        assert failed == [], (dialect, db_id, failed)
        assert {t.name.lower(): t.row_count for t in meta.tables} == {t.name.lower(): t.row_count for t in base.tables}
        for col in base.columns:
            other = meta.column(col.table, col.name)
            assert other is not None, (dialect, col.qualified)
            where = (dialect, db_id, col.qualified)
            assert (other.row_count, other.null_count, other.distinct_count, other.unique) == (
                col.row_count, col.null_count, col.distinct_count, col.unique), where
            assert other.affinity == col.affinity, where
            assert _same(other.min_value, col.min_value) and _same(other.max_value, col.max_value), (
                where, other.min_value, other.max_value, col.min_value, col.max_value)
            assert other.indexed == col.indexed, where
            assert sorted(map(str, other.examples)) == sorted(map(str, col.examples)), where
            assert (other.pattern is None) == (col.pattern is None), where
            if col.pattern is not None:
                assert (other.pattern.kind, other.pattern.date_format, other.pattern.fixed_width) == (
                    col.pattern.kind, col.pattern.date_format, col.pattern.fixed_width), where


def test_profiles_state_the_data_on_every_engine(server):
    """Ranges and counts read straight from the SQLite file hold for the server build."""
    dialect, built = server
    concert = built["concert_singer"][1]
    lo, hi, distinct = _truth("concert_singer", "SELECT min(Age), max(Age), count(DISTINCT Age) FROM singer")[0]
    age = concert.column("singer", "Age")
    assert (age.min_value, age.max_value, age.distinct_count, age.affinity) == (lo, hi, distinct, "number")
    (lo, hi), = _truth("concert_singer", "SELECT min(CAST(Song_release_year AS INT)), max(CAST(Song_release_year AS INT)) "
                                         "FROM singer")
    year = concert.column("singer", "Song_release_year")  # years stored as text: numeric text with a range
    assert year.pattern.kind == "numeric_text" and (year.min_value, year.max_value) == (lo, hi)

    docs = built["cre_Doc_Template_Mgt"][1]
    (rows,), = _truth("cre_Doc_Template_Mgt", "SELECT count(*) FROM Documents")
    other = docs.column("Documents", "Other_Details")
    assert other.null_count == other.row_count == rows and other.affinity == "empty"
    first, last = _truth("cre_Doc_Template_Mgt", "SELECT min(Date_Effective_From), max(Date_Effective_From) FROM Templates")[0]
    start = docs.column("Templates", "Date_Effective_From")
    assert start.affinity == "date" and (start.min_value, start.max_value) == (first, last)
    assert start.pattern.date_format == "%Y-%m-%d %H:%M:%S" and not start.indexed
    # the server's typed timestamps are rendered as the SQLite text is
    text = render_metadata_schema(docs.record, {"Templates": ["Date_Effective_From"]}, granularity="complete")
    assert f"Range: [{first}, {last}]" in text and "Pattern: date %Y-%m-%d %H:%M:%S" in text

    # long free text: recognised by its average length (a DECIMAL sum on the servers)
    tracking = built["cre_Doc_Tracking_DB"][1]
    (avg,), = _truth("cre_Doc_Tracking_DB", "SELECT avg(length(Role_Description)) FROM Roles")
    role = tracking.column("Roles", "Role_Description")
    assert role.pattern.kind == "free_text" and not role.indexed and role.examples == []
    assert role.pattern.avg_length == pytest.approx(avg, abs=0.01)


# -- value index -------------------------------------------------------------------------------
def test_value_index_finds_cell_values(server):
    dialect, built = server
    concert = built["concert_singer"][1]
    (country, _), = _truth("concert_singer", "SELECT Country, count(*) AS n FROM singer GROUP BY Country "
                                             "ORDER BY n DESC LIMIT 1")
    assert concert.value_index.lookup(country, k=3)[0] == ("singer", "Country", country, 1.0)
    names = [n for (n,) in _truth("concert_singer", "SELECT Name FROM stadium")]
    misspelt = names[0][:-1]  # one character short: found approximately
    hit = concert.value_index.lookup(misspelt, k=3)[0]
    assert hit[:3] == ("stadium", "Name", names[0]) and 0 < hit[3] < 1

    docs = built["cre_Doc_Template_Mgt"][1]
    for (desc,) in _truth("cre_Doc_Template_Mgt", "SELECT Template_Type_Description FROM Ref_Template_Types"):
        hits = docs.value_index.lookup(desc, k=5)
        assert ("Ref_Template_Types", "Template_Type_Description", desc, 1.0) in hits, (dialect, desc, hits)


# -- relations ---------------------------------------------------------------------------------
def test_relations_match_the_sqlite_build(server, sqlite_meta):
    dialect, built = server
    for db_id in DBS:
        url, meta = built[db_id]
        base = sqlite_meta[db_id]
        server_fks = {str(fk) for fk in open_database(url).schema().foreign_keys}
        assert server_fks, (dialect, db_id)  # the copy kept at least one declared key
        declared = {str(j) for j in meta.record.join_candidates if j.declared}
        assert declared == server_fks
        # every join the server build knows, the SQLite build knows too (SQLite keeps keys that
        # the servers refuse, e.g. a text column referencing an integer one)
        assert {str(j) for j in meta.record.join_candidates} <= {str(j) for j in base.record.join_candidates}
        assert sorted(map(str, meta.record.dependencies)) == sorted(map(str, base.record.dependencies))
        assert sorted(map(str, meta.record.duplicates)) == sorted(map(str, base.record.duplicates))
    # a real dependency of cre_Doc_Template_Mgt's data is found on every engine
    deps = {str(d) for d in built["cre_Doc_Template_Mgt"][1].record.dependencies}
    assert any(d.startswith("Paragraphs: Paragraph_Text -> Document_ID") for d in deps), deps


def test_the_store_is_reused_while_the_server_data_is_unchanged(server, cache):
    dialect, built = server
    url, meta = built["concert_singer"]
    again = load_or_build(open_database(url), cache)
    assert not again.built and again.queries == 0 and again.path == meta.path
    assert again.column("singer", "Age").model_dump() == meta.column("singer", "Age").model_dump()


# -- server types SQLite does not have ----------------------------------------------------------
@pytest.mark.postgres
def test_postgres_boolean_and_json_columns_do_not_wipe_a_table(request, tmp_path):
    """PostgreSQL has no MIN/MAX of boolean and no equality (so no COUNT(DISTINCT)) on json."""
    import psycopg

    url = _copy(request, "postgres", "employee_hire_evaluation", "qsql_meta_types")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute('ALTER TABLE hiring ALTER COLUMN "Is_full_time" TYPE boolean USING "Is_full_time" = \'T\'')
        conn.execute('ALTER TABLE employee ALTER COLUMN "City" TYPE json USING to_json("City")')
    meta = load_or_build(open_database(url), Settings(cache_dir=tmp_path))
    (n, full, distinct), = _truth("employee_hire_evaluation", "SELECT count(*), sum(Is_full_time = 'T'), "
                                                              "count(DISTINCT Is_full_time) FROM hiring")
    flag = meta.column("hiring", "Is_full_time")
    assert (flag.row_count, flag.distinct_count, flag.null_count) == (n, distinct, 0)
    assert (flag.min_value, flag.max_value) == (0 if full < n else 1, 1 if full else 0)
    assert flag.skipped == [] and meta.column("hiring", "Start_from").row_count == n
    # json: that column's statistics fail; its neighbours in the same query still get theirs
    city = meta.column("employee", "City")
    assert any(s.startswith("statistics query failed") for s in city.skipped)
    (lo, hi, people), = _truth("employee_hire_evaluation", "SELECT min(Age), max(Age), count(*) FROM employee")
    age = meta.column("employee", "Age")
    assert (age.min_value, age.max_value, age.row_count) == (lo, hi, people)
    assert meta.record.table("employee").row_count == people
