"""M-Schema and DDL renderings."""

from quorumsql.db import open_database
from quorumsql.db.schema import Column, DatabaseSchema, ForeignKey, Table
from quorumsql.schema_repr import format_examples, to_ddl, to_mschema

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
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.executescript(text)
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master")} >= {"singer", "singer_in_concert"}
