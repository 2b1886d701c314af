"""M-Schema, DDL and metadata renderings (the metadata ones on real Spider stores)."""

import re
import sqlite3

import pytest
import sqlglot

from quorumsql.config import Settings
from quorumsql.db import open_database
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.metadata import ProfileOptions, description_texts, load_or_build, retrieval
from quorumsql.schema_repr import format_examples, render_metadata_schema, to_ddl, to_mschema
from tests.conftest import spider_db

DESIGN_EXAMPLE = """【DB_ID】 movie_platform
【Schema】
# Table: movies
[
(movie_id:INTEGER, Primary Key, Examples: [1, 2, 3]),
(movie_title:TEXT, Name of the movie, Examples: [La Antena, Elementary Particles, It's Winter]),
(release_date:DATE, Examples: [2007-01-01])
]
# Table: ratings, user ratings
[
(rating_id:INTEGER, Examples: [15610495, 10704606]),
(movie_id:INTEGER, Examples: [1066, 1067])
]
【Foreign keys】
ratings.movie_id=movies.movie_id"""


def _movie_schema() -> DatabaseSchema:
    return DatabaseSchema(
        db_id="movie_platform",
        dialect="sqlite",
        tables=[
            Table(
                name="movies",
                columns=[
                    Column(name="movie_id", type="integer", primary_key=True, examples=[1, 2, 3, 4]),
                    Column(name="movie_title", type="text", comment="Name of the movie",
                           examples=["La Antena", "Elementary Particles", "It's Winter"]),
                    Column(name="release_date", type="date", examples=["2007-01-01", "2008-05-01"]),
                ],
            ),
            Table(
                name="ratings",
                comment="user ratings",
                columns=[
                    Column(name="rating_id", type="INTEGER", examples=[15610495, 10704606]),
                    Column(name="movie_id", type="INTEGER", examples=[1066, 1067, None]),
                ],
            ),
        ],
        foreign_keys=[ForeignKey(table="ratings", column="movie_id", ref_table="movies", ref_column="movie_id")],
    )


def test_mschema_matches_the_design_example_exactly():
    assert to_mschema(_movie_schema()) == DESIGN_EXAMPLE


def test_mschema_example_rules():
    assert format_examples(["a" * 30, "b"], "TEXT") == ["a" * 30]  # > 20 chars: one example
    assert format_examples(["a" * 51], "TEXT") == []  # > 50 chars: none
    assert format_examples(["x@example.com", "y@example.org"], "TEXT") == []  # e-mails: none
    assert format_examples(["https://a.io/x"], "TEXT") == []  # URLs: none
    assert format_examples(["2020-01-01 10:00:00", "2021-01-01 10:00:00"], "TEXT") == ["2020-01-01 10:00:00"]
    assert format_examples([1.5, 2, None], "REAL") == ["1.5", "2"]
    assert format_examples(["x"], "VARCHAR", limit=0) == []


def test_mschema_of_a_linked_subset_keeps_keys(concert_singer):
    schema = open_database(concert_singer).schema()
    text = to_mschema(schema, {"singer": ["Name"], "singer_in_concert": []})
    assert "# Table: stadium" not in text and "# Table: concert\n" not in text
    assert "(Name:TEXT" in text and "(Country:" not in text
    # primary keys and the join column between the selected tables stay
    assert "(Singer_ID:INT, Primary Key" in text
    assert "singer_in_concert.Singer_ID=singer.Singer_ID" in text
    assert "concert.Stadium_ID" not in text


def test_mschema_type_is_cut_and_upper_cased():
    schema = DatabaseSchema(
        db_id="d", dialect="mysql",
        tables=[Table(name="t", columns=[Column(name="c", type="varchar(20)"), Column(name="u", type="")])],
    )
    assert "(c:VARCHAR)" in to_mschema(schema) and "(u:ANY)" in to_mschema(schema)


def test_ddl_with_sample_rows(concert_singer):
    db = open_database(concert_singer)
    rows = db.execute("SELECT * FROM singer LIMIT 3")
    text = to_ddl(db.schema(), {"singer": None, "singer_in_concert": None},
                  sample_rows={"singer": (rows.columns, rows.rows)})
    assert text.startswith("CREATE TABLE singer (\n  Singer_ID INT PRIMARY KEY,")
    assert "PRIMARY KEY (concert_ID, Singer_ID)" in text
    assert "FOREIGN KEY (Singer_ID) REFERENCES singer(Singer_ID)" in text
    assert "3 example rows:" in text and "Joe Sharp" in text
    # the DDL is valid SQL: it recreates the tables in an empty database
    conn = sqlite3.connect(":memory:")
    conn.executescript(text)
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master")} >= {"singer", "singer_in_concert"}


# -- descriptions, reserved names and the metadata-complete extras (issue 8) ----------------------
FORMATS = ("mschema", "ddl", "metadata_partial", "metadata_complete")


@pytest.fixture(scope="module")
def concert_store(tmp_path_factory):
    return load_or_build(open_database(spider_db("concert_singer")),
                         Settings(cache_dir=tmp_path_factory.mktemp("repr")))


def _render(fmt: str, store, descriptions, selection=None) -> str:
    if fmt == "mschema":
        return to_mschema(store.schema, selection, descriptions=descriptions)
    if fmt == "ddl":
        return to_ddl(store.schema, selection, descriptions=descriptions)
    return render_metadata_schema(store.record, selection, granularity=fmt.split("_", 1)[1],
                                  descriptions=descriptions)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_description_mapping_reaches_every_format(fmt, concert_store):
    # keys in another case than the database's, as users write them
    descriptions = {("SINGER", "age"): "age in years\non the day of the concert",
                    ("stadium", "capacity"): "number of seats"}
    text = _render(fmt, concert_store, descriptions)
    if fmt == "ddl":
        assert "  Age INT, -- age in years on the day of the concert\n" in text
        assert "  Capacity INT, -- number of seats\n" in text
        conn = sqlite3.connect(":memory:")
        conn.executescript(text)  # comments keep the statements valid
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 4
    else:
        assert "(Age:INT, age in years on the day of the concert, " in text
        assert "(Capacity:INT, number of seats, " in text
    # and only next to its own column
    assert text.count("number of seats") == 1
    plain = _render(fmt, concert_store, None)
    assert "age in years" not in plain and "number of seats" not in plain


def test_ddl_comments_are_valid_in_each_dialect(concert_store):
    for dialect in ("sqlite", "mysql", "postgres"):
        schema = concert_store.schema.model_copy(update={"dialect": dialect})
        text = to_ddl(schema, descriptions={("singer", "Name"): "full name -- as printed"})
        assert "Name TEXT, -- full name -- as printed" in text
        statements = sqlglot.parse(text, read=dialect)
        assert len([s for s in statements if s is not None]) == 4
        assert all(isinstance(s, sqlglot.exp.Create) for s in statements if s is not None)


@pytest.mark.parametrize("db_id,expected", [
    ("railway", '  "From" TEXT,'),  # FROM is reserved in SQLite: quoted
    ("city_record", "CREATE TABLE match ("),  # MATCH is a keyword SQLite accepts as a name: left bare
])
def test_ddl_quotes_reserved_names_only(db_id, expected):
    schema = open_database(spider_db(db_id)).schema()
    text = to_ddl(schema)
    assert expected in text
    assert text.count('"') == (2 if db_id == "railway" else 0)
    conn = sqlite3.connect(":memory:")
    conn.executescript(text)  # the DDL recreates every table
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == len(schema.tables)


@pytest.fixture(scope="module")
def chinook_sampled(tmp_path_factory):
    # dependencies mined on 1,000 sampled rows (Track has 3,503)
    return load_or_build(open_database(spider_db("chinook_1")), Settings(cache_dir=tmp_path_factory.mktemp("fd")),
                         options=ProfileOptions(fd_sample_rows=1000))


def test_complete_names_related_columns_outside_the_linked_subset(chinook_sampled):
    text = render_metadata_schema(chinook_sampled.record, {"Customer": ["City"]}, granularity="complete")
    assert "# Table: Invoice" not in text
    # the duplicate lives in a table that is not rendered: named table.column, marked as outside
    assert "Customer.City == Invoice.BillingCity (Invoice.BillingCity is not in this schema)" in text
    both = render_metadata_schema(chinook_sampled.record, {"Customer": ["City"], "Invoice": ["BillingCity"]},
                                  granularity="complete")
    assert "Customer.City == Invoice.BillingCity\n" in both + "\n"
    # every similar pair touching a rendered column is listed, its partner named
    for kind, table, column in chinook_sampled.record.related_columns("Customer", "City"):
        assert f"{table}.{column}" in text


def test_complete_gives_the_sample_behind_a_dependency(chinook_sampled):
    track = chinook_sampled.record.table("Track")
    text = render_metadata_schema(chinook_sampled.record, {"Track": None}, granularity="complete")
    assert track.row_count == 3503
    deps = [d for d in chinook_sampled.record.dependencies if d.table == "Track"]
    assert deps and all(d.sampled_rows == 1000 for d in deps)  # which ones hold depends on the sample
    lines = [line for line in text.splitlines() if line.startswith("Track: ")]
    assert len(lines) == len(deps)
    assert all(re.fullmatch(r"Track: [\w, ]+ -> \w+ \((N:1|1:1) on 1,000 rows sampled of 3,503\)", line)
               for line in lines)
    small = render_metadata_schema(chinook_sampled.record, {"Customer": None}, granularity="complete")
    assert "Customer: City -> Country (N:1 on all 59 rows)" in small


def test_complete_shows_bird_data_format_and_value_description_once(tmp_path):
    desc = tmp_path / "database_description"
    desc.mkdir()
    (desc / "singer.csv").write_text(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "Song_release_year,song release year,year the song came out,date,four digits\n",
        encoding="utf-8",
    )
    store = load_or_build(open_database(spider_db("concert_singer")), Settings(cache_dir=tmp_path / "c"),
                          descriptions_dir=tmp_path)
    sel = {"singer": ["Song_release_year"]}
    text = render_metadata_schema(store.record, sel, granularity="complete")
    assert "(Song_release_year:TEXT, year the song came out, " in text
    assert "Format: date" in text and "Values: four digits" in text
    # the API's mapping already carries format and values: not repeated
    mapping = description_texts(desc)
    assert mapping == {("singer", "Song_release_year"): "year the song came out; format: date; four digits"}
    again = render_metadata_schema(store.record, sel, granularity="complete", descriptions=mapping)
    assert again.count("four digits") == 1 and again.count("date") == 1


def test_question_examples_come_from_retrieval(concert_store):
    q = "Which singers come from the Netherlands?"
    examples = retrieval.question_examples(concert_store, q, {"singer": ["Country"]})
    assert examples == {("singer", "Country"): ["Netherlands"]}
    text = render_metadata_schema(concert_store.record, {"singer": ["Country"]}, question_examples=examples)
    assert "(Country:TEXT, Examples: [Netherlands, France, United States])" in text
