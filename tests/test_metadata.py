"""Metadata-complete context on real Spider databases (../shared/data), and the store."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from pathlib import Path

import pytest

from quorumsql.config import Settings
from quorumsql.db import open_database
from quorumsql.errors import ConfigError
from quorumsql.metadata import description_texts, load_descriptions, load_or_build, retrieval
from quorumsql.metadata.patterns import date_format, shape, value_pattern
from quorumsql.schema_repr import render_metadata_schema, to_mschema
from tests.conftest import BIRD, require_shared
from tests.conftest import spider_db as spider


def bird_descriptions(db_id: str) -> Path:
    """A BIRD description folder in ../shared/data (skips, or fails under CI, when absent)."""
    return require_shared(BIRD / "dev_databases" / db_id / "database_description", "BIRD description files")


def render(meta, selection=None, *, granularity="partial", question=None, descriptions=None) -> str:
    """What the inference graph's context node does: retrieve, then render."""
    examples = retrieval.question_examples(meta, question, selection) if question else None
    return render_metadata_schema(meta.record, selection, granularity=granularity, question_examples=examples,
                                  descriptions=descriptions)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Settings:
    return Settings(cache_dir=tmp_path_factory.mktemp("qcache"))


@pytest.fixture(scope="module")
def concert(cache):
    return load_or_build(open_database(spider("concert_singer")), cache)


@pytest.fixture(scope="module")
def chinook(cache):
    return load_or_build(open_database(spider("chinook_1")), cache)


# -- column level ------------------------------------------------------------------------------
def test_ranges_counts_and_patterns_on_concert_singer(concert):
    age = concert.column("singer", "Age")
    assert (age.min_value, age.max_value) == (25, 52)
    assert age.null_count == 0 and age.distinct_count == 6 and age.row_count == 6
    cap = concert.column("stadium", "Capacity")
    assert (cap.min_value, cap.max_value) == (2000, 52500)
    # years stored as TEXT: numeric text of fixed width 4, with a numeric range
    year = concert.column("singer", "Song_release_year")
    assert year.affinity == "text" and year.pattern.kind == "numeric_text"
    assert year.pattern.fixed_width == 4 and year.pattern.shapes[0] == ("9", 1.0)
    assert (year.min_value, year.max_value) == (1992, 2016)
    assert not year.indexed
    male = concert.column("singer", "Is_male")
    assert male.pattern.fixed_width == 1 and set(male.examples) == {"T", "F"}
    country = concert.column("singer", "Country")
    assert country.distinct_count == 3 and country.indexed
    assert country.examples[0] == "France"  # most frequent first (4 of 6 singers)
    t = concert.record.table("stadium")
    assert (t.row_count, t.column_count) == (9, 7)


def test_date_pattern_and_range_on_real_dates(cache):
    meta = load_or_build(open_database(spider("chinook_1")), cache)
    d = meta.column("Invoice", "InvoiceDate")
    assert d.affinity == "date" and d.pattern.date_format == "%Y-%m-%d %H:%M:%S"
    assert str(d.min_value).startswith("2009-01-01") and str(d.max_value).startswith("2013-12-22")
    assert not d.indexed


def test_pattern_helpers():
    assert shape("AB-12") == "A-9"
    assert shape("Main St. 12") == "Aa Aa. 9"
    assert date_format(["2020-01-31", "1999-12-01"]) == "%Y-%m-%d"
    assert date_format(["20201301"]) is None  # month 13: a code, not a date
    p = value_pattern(["007", "012", "100"])
    assert p.zero_padded and p.fixed_width == 3 and p.kind == "numeric_text"


# -- inter-column ------------------------------------------------------------------------------
def test_declared_foreign_keys(concert):
    declared = {str(j) for j in concert.record.join_candidates if j.declared}
    assert "singer_in_concert.Singer_ID=singer.Singer_ID" in declared
    assert "concert.Stadium_ID=stadium.Stadium_ID" in declared


def test_inferred_join_on_formula_1(cache):
    meta = load_or_build(open_database(spider("formula_1")), cache)
    inferred = {str(j): j for j in meta.record.join_candidates if not j.declared}
    # results.statusId is not declared as a foreign key, but every value occurs in status.statusId
    assert "results.statusId=status.statusId" in inferred
    assert inferred["results.statusId=status.statusId"].containment == 1.0
    # generic "id" primary keys are not joined to each other
    assert not any(j.column.lower() == "id" and j.ref_column.lower() == "id" for j in inferred.values())


def test_duplicate_columns_verified_on_chinook(chinook):
    dups = {(p.table, p.column, p.other_table, p.other_column) for p in chinook.record.duplicates}
    # Invoice.BillingCity repeats Customer.City under another name
    assert ("Customer", "City", "Invoice", "BillingCity") in dups
    assert all(p.kind == "duplicate" and p.score == 1.0 for p in chinook.record.duplicates)


def test_functional_dependencies(chinook, cache):
    deps = {str(d) for d in chinook.record.dependencies}
    assert "Customer: City -> Country (N:1)" in deps
    bike = load_or_build(open_database(spider("bike_1")), cache)
    bike_deps = {str(d) for d in bike.record.dependencies}
    # trip has 9,959 rows: station names and ids map one to one
    assert "trip: start_station_name -> start_station_id (1:1)" in bike_deps
    # keys are never reported as left sides (they determine everything trivially)
    assert not any(d.lhs == ["id"] for d in bike.record.dependencies if d.table == "trip")


def test_similar_columns_threshold(concert):
    assert concert.record.similar, "expected similar columns at the default threshold"
    assert all(p.kind == "similar" and p.score >= 0.8 for p in concert.record.similar)
    related = concert.record.related_columns("singer", "Name")
    assert ("similar", "singer", "Song_Name") in related


# -- store -------------------------------------------------------------------------------------
class CountingDB:
    """Wraps a connector and counts the queries sent through it."""

    def __init__(self, db):
        self._db = db
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._db, name)

    def execute(self, *a, **k):
        self.calls += 1
        return self._db.execute(*a, **k)

    def try_execute(self, *a, **k):
        self.calls += 1
        return self._db.try_execute(*a, **k)


def test_second_build_does_no_work(tmp_path):
    settings = Settings(cache_dir=tmp_path / "c")
    first = CountingDB(open_database(spider("pets_1")))
    m1 = load_or_build(first, settings)
    assert m1.built and first.calls > 0 and m1.queries == first.calls
    second = CountingDB(open_database(spider("pets_1")))
    m2 = load_or_build(second, settings)
    assert not m2.built and second.calls == 0 and m2.queries == 0
    assert m2.record.built_at == m1.record.built_at
    assert m2.value_index.lookup("Smith", k=1)  # indexes load from the store


def test_cli_index_twice(tmp_path, capsys):
    from quorumsql.metadata import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    argv = ["index", str(spider("pets_1")), "--cache-dir", str(tmp_path), "--no-progress"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert "built" in capsys.readouterr().out
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out


def test_changed_database_is_reprofiled_with_partial_reuse(tmp_path):
    path = tmp_path / "concert_singer.sqlite"
    shutil.copy(spider("concert_singer"), path)
    settings = Settings(cache_dir=tmp_path / "c")
    m1 = load_or_build(open_database(path), settings)
    assert m1.column("singer", "Age").max_value == 52
    with sqlite3.connect(path) as conn:  # the test changes its own copy
        conn.execute("UPDATE singer SET Age = 99 WHERE Name = 'Joe Sharp'")
    m2 = load_or_build(open_database(path), settings)
    assert m2.built and m2.path != m1.path
    assert m2.column("singer", "Age").max_value == 99  # never served stale
    assert any("3 unchanged tables reused" in s for s in m2.record.skipped)
    assert m2.queries < m1.queries


# -- bad input ---------------------------------------------------------------------------------
@pytest.fixture()
def awkward_db(tmp_path) -> Path:
    path = tmp_path / "awkward.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE empty_t (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE stuff (a, b TEXT, c BLOB, "nothing" TEXT, big TEXT, code TEXT);
        CREATE VIEW stuff_view AS SELECT a, b FROM stuff;
        """
    )
    rows = []
    for i in range(30):
        mixed = i if i % 3 else f"v{i}"
        rows.append((mixed, f"name {i % 7}", bytes([i, 255, 0]), None, "x" * 5000 + str(i), f"{i:05d}"))
    conn.executemany("INSERT INTO stuff VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("INSERT INTO stuff (a, b) VALUES (1, CAST(X'4D61FF6C' AS TEXT))")  # not UTF-8
    conn.commit()
    conn.close()
    return path


def test_awkward_database_profiles_and_says_what_it_skipped(awkward_db, tmp_path):
    before = awkward_db.read_bytes()
    meta = load_or_build(open_database(awkward_db), Settings(cache_dir=tmp_path / "c"))
    assert awkward_db.read_bytes() == before  # read-only
    notes = " | ".join(meta.record.skipped)
    assert "empty_t: empty table" in notes
    stuff = {c.name: c for c in meta.columns if c.table == "stuff"}
    assert stuff["a"].affinity == "mixed" and any("mixed storage types" in s for s in stuff["a"].skipped)
    assert stuff["c"].affinity == "blob" and any("BLOB" in s for s in stuff["c"].skipped)
    assert stuff["nothing"].null_count == 31 and any("NULL" in s for s in stuff["nothing"].skipped)
    assert stuff["big"].pattern.kind == "free_text" and not stuff["big"].indexed
    assert stuff["code"].pattern.zero_padded and stuff["code"].pattern.fixed_width == 5
    assert any("not valid UTF-8" in s for s in stuff["b"].skipped)
    view = meta.record.table("stuff_view")
    assert view.kind == "view" and view.row_count == 31
    assert meta.value_index.lookup("name 3", k=3)[0][2] == "name 3"
    text = render(meta, granularity="complete")
    assert "# Table: empty_t (0 rows, 2 columns)" in text
    assert "stuff_view (31 rows, 2 columns, view)" in text


# -- renderings --------------------------------------------------------------------------------
def test_partial_rendering_is_mschema_with_question_examples(concert):
    q = "Which singers come from the Netherlands?"
    sel = {"singer": ["Name", "Country"]}
    text = render(concert, sel, granularity="partial", question=q)
    assert text.startswith("【DB_ID】 concert_singer\n【Schema】\n# Table: singer\n[")
    assert "(Country:TEXT, Examples: [Netherlands, France, United States])" in text
    assert "stadium" not in text and "Age" not in text
    plain = to_mschema(concert.schema, sel)
    assert plain.splitlines()[:4] == text.splitlines()[:4]


def test_complete_rendering_restricted_to_linked_schema(chinook):
    sel = {"Customer": ["City", "Country"], "Invoice": ["BillingCity", "InvoiceDate"]}
    text = render(chinook, sel, granularity="complete", question="invoices billed in Amsterdm")
    assert "(Country:VARCHAR, Examples:" in text and "Nulls: 0, Distinct: 24" in text
    assert "Pattern: date %Y-%m-%d %H:%M:%S" in text
    assert "Range: [2009-01-01 00:00:00, 2013-12-22 00:00:00]" in text
    assert "Customer.City == Invoice.BillingCity" in text  # duplicate, both ends shown
    assert "Customer: City -> Country (N:1 on all 59 rows)" in text  # mined on the whole table
    assert "(BillingCity:VARCHAR, Examples: [Amsterdam" in text  # from the value index
    assert "Track" not in text and "Employee" not in text
    # the whole schema is much longer than the linked rendering
    assert len(render(chinook, granularity="complete")) > 5 * len(text)
    with pytest.raises(ValueError):
        render(chinook, granularity="everything")


# -- descriptions ------------------------------------------------------------------------------
def test_bird_description_files_are_read():
    descs = load_descriptions(bird_descriptions("superhero"))
    d = descs[("hero_power", "power_id")]
    assert "Maps to superpower(id)" in d.description
    assert descs[("superhero", "height_cm")].data_format == "integer"
    with pytest.raises(ConfigError):
        load_descriptions(BIRD / "no_such_db")


def test_descriptions_reach_the_profiles_and_the_column_index(tmp_path):
    desc = tmp_path / "database_description"
    desc.mkdir()
    (desc / "singer.csv").write_text(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "Is_male,is male,whether the singer is a man,text,\"T: male; F: female\"\n",
        encoding="cp1252",
    )
    meta = load_or_build(open_database(spider("concert_singer")), Settings(cache_dir=tmp_path / "c"),
                         descriptions_dir=tmp_path)
    col = meta.column("singer", "Is_male")
    assert col.description_source == "file" and "whether the singer is a man" in col.description
    assert "Values: T: male; F: female" in render(meta, {"singer": ["Is_male"]}, granularity="complete")
    assert meta.column_index.query("is the singer a man or a woman", k=1)[0][:2] == ("singer", "Is_male")


def test_one_description_text_for_every_caller():
    from quorumsql.benchmarks.datasets import load_bird_descriptions

    folder = bird_descriptions("california_schools")
    texts = description_texts(folder)
    assert load_bird_descriptions(folder) == texts  # the BIRD loader uses the same reader
    rows = load_descriptions(folder)
    # full name, description and value description, ";"-separated, one line
    zip_text = texts[("schools", "MailZip")]
    assert zip_text.startswith("mailing zip; The zip code associated with the mailing address")
    assert "\n" not in zip_text and "  " not in zip_text
    # a date format is worth saying (the column is TEXT); "integer" or "text" is not
    assert texts[("schools", "OpenDate")] == "The date the school opened.; format: date"
    assert all("format: integer" not in t and "format: text" not in t for t in texts.values())
    # a value description explaining codes is kept
    funding = rows[("schools", "fundingtype")]
    assert funding.value_description and " ".join(funding.value_description.split()) in \
        texts[(funding.table, funding.column)]
    # rows that only repeat the column name give no text at all
    assert ("frpm", "CDSCode") not in texts and ("frpm", "cdscode") in rows


def test_an_unchanged_database_is_reused_by_its_change_stamp_without_introspection(tmp_path, monkeypatch):
    import shutil
    import sqlite3

    from quorumsql.config import Settings
    from quorumsql.db import open_database
    from quorumsql.db.sqlite import SQLiteDatabase
    from quorumsql.metadata import load_or_build
    from tests.conftest import spider_db

    path = tmp_path / "pets_1.sqlite"
    shutil.copy(spider_db("pets_1"), path)
    settings = Settings.load(cache_dir=tmp_path / "cache")
    first = load_or_build(open_database(path), settings)
    assert first.built
    expected = open_database(path).schema()

    calls = []
    real = SQLiteDatabase._introspect
    monkeypatch.setattr(SQLiteDatabase, "_introspect", lambda self: calls.append(1) or real(self))
    db = open_database(path)
    again = load_or_build(db, settings)
    assert not again.built and calls == []  # neither the fingerprint nor a profile read the schema
    assert db.schema() == expected and calls == []  # the store's schema was adopted

    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO Pets VALUES (9999, 'cat', 3, 1.5)")
    changed = load_or_build(open_database(path), settings)
    assert changed.built and calls  # a new stamp: fingerprinted and rebuilt
