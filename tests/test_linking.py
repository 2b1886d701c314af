"""Schema linking on real Spider databases: each stage, the union, degradations, the budget.

Fake chat models script the keyword list, the draft SQL and the candidates; retrieval runs on
the real metadata store (value index, column index) of real Spider databases.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from quorumsql import Pipeline
from quorumsql.agents.column_selector import parse_selection
from quorumsql.agents.keywords import parse_keywords
from quorumsql.agents.linker import assemble_linked_schema, join_path, referenced_columns
from quorumsql.config import Preset, Settings
from quorumsql.db import open_database
from tests.conftest import spider_db


def sql(text: str) -> str:
    return f"```sql\n{text}\n```"


@pytest.fixture
def settings(tmp_path):
    return Settings.load(cache_dir=tmp_path / "cache")


def linking_preset(**kw) -> Preset:
    return Preset(name="linked", temperatures=[0.0], refine_rounds=2, linking=True, **kw)


def run(settings, responses, question, db, **preset_kw):
    pipe = Pipeline(settings, llm=FakeListChatModel(responses=responses), preset=linking_preset(**preset_kw))
    return pipe.answer(question, db)


def event(ans, node):
    return next(e for e in ans.trace if e.node == node)


# -- stages -----------------------------------------------------------------------------------
def test_sqlglot_resolves_aliases_subqueries_ctes_and_star():
    schema = open_database(spider_db("concert_singer")).schema()
    refs = referenced_columns(
        "WITH s AS (SELECT * FROM stadium) SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 "
        "ON T1.singer_id = T2.singer_id WHERE T2.concert_id IN (SELECT concert_id FROM concert WHERE year = 2014)",
        schema,
    )
    assert set(refs.tables) == {"stadium", "singer", "singer_in_concert", "concert"}
    cols = set(refs.columns)
    assert {("singer", "Name"), ("singer", "Singer_ID"), ("singer_in_concert", "concert_ID"), ("concert", "Year")} <= cols
    assert {("stadium", c.name) for c in schema.table("stadium").columns} <= cols  # the CTE's *
    assert referenced_columns("SELEC nothing FROM", schema) is None or not referenced_columns("SELEC nothing FROM", schema).tables


def test_a_column_reached_only_through_a_foreign_key_path():
    schema = open_database(spider_db("car_1")).schema()
    extra, keys = join_path(schema, ["continents", "car_names"])
    assert extra == ["countries", "car_makers", "model_list"]
    assert ("car_makers", "Country") in keys and ("model_list", "Maker") in keys
    linked = assemble_linked_schema(schema, column_hits=[("continents", "Continent"), ("car_names", "Make")])
    assert linked.contains("car_makers", "Country") and linked.sources["car_makers.Country"] == ["path"]
    assert "joined through countries, car_makers, model_list" in linked.notes


def test_a_value_reached_only_through_the_value_index(settings):
    db = spider_db("concert_singer")
    ans = run(settings, ['["Netherlands"]', sql("SELECT Name FROM singer"), sql("SELECT Name FROM singer WHERE Country = 'Netherlands'")],
              "Which singers come from the Netherlands?", db, column_top_k=0)
    link = event(ans, "link")
    assert link.data["sources"]["singer.Country"] == ["value"]  # neither the draft nor a column lookup chose it
    prompt = next(c for c in ans.candidates if c.id == "c0").conversation[1].content
    assert "(Country:TEXT, Examples: [Netherlands," in prompt  # the matched value shown first
    assert ans.rows == [("Joe Sharp",)]


def test_keywords_survive_a_malformed_list_by_falling_back_to_ngrams(settings):
    assert parse_keywords('Sure! ["singer", "age"') == ["singer", "age"]  # cut off mid-list
    assert parse_keywords("- singers\n- France") == ["singers", "France"]
    ans = run(settings, ["I am not sure what you mean.", sql("SELECT count(*) FROM singer"), sql("SELECT count(*) FROM singer")],
              "How many singers from France?", spider_db("concert_singer"))
    kw = event(ans, "keywords")
    assert kw.data["fallback"] and "france" in kw.data["keywords"]
    assert ans.rows == [(6,)]


def test_column_selector_narrows_and_ignores_unknown_names(settings):
    available = {"singer": ["Name", "Country", "Age"], "stadium": ["Name"]}
    assert parse_selection('{"singer": ["name", "ghost"], "nope": ["x"]}', available) == {"singer": ["Name"]}
    assert parse_selection("no json here", available) == {}
    ans = run(settings, ['["singers", "France"]', sql("SELECT Name, Age FROM singer WHERE Country = 'France'"),
                         '```json\n{"singer": ["Name", "Country"]}\n```', sql("SELECT Name FROM singer WHERE Country = 'France'")],
              "Names of singers from France?", spider_db("concert_singer"), column_selector=True)
    sel = event(ans, "select_columns")
    assert sel.data["selection"] == {"singer": ["Name", "Country"]}
    prompt = next(c for c in ans.candidates if c.id == "c0").conversation[1].content
    assert "(Age:" not in prompt and "(Country:" in prompt and "# Table: stadium" not in prompt


def test_the_draft_is_kept_as_a_candidate_and_votes(settings):
    ans = run(settings, ['["singers"]', sql("SELECT count(*) FROM singer"), sql("SELECT count(*) FROM singer")],
              "How many singers do we have?", spider_db("concert_singer"))
    draft = next(c for c in ans.candidates if c.id == "draft")
    assert draft.generator == "draft/mschema" and draft.votes == 2 and ans.rows == [(6,)]


def test_a_column_outside_the_linked_set_is_recovered_from_the_full_schema(settings):
    # linking keeps singer.Name only; the candidate misspells Age, the refiner's error hint
    # names the real columns from the full schema, the revision runs, and the trace says
    # that linking missed the column
    ans = run(settings, ['["singers"]', sql("SELECT Name FROM singer"), sql("SELECT avg(Agee) FROM singer"),
                         sql("SELECT avg(Age) FROM singer")],
              "What is the average age of the singers?", spider_db("concert_singer"), column_top_k=0, keep_draft=False)
    assert "Age" not in event(ans, "link").data["selection"]["singer"]
    c0 = ans.candidates[0]
    assert [a.state for a in c0.attempts] == ["error", "ok"] and "no such column" in c0.attempts[0].error
    # the hint the refiner sends is computed over the whole schema, where Age exists
    from quorumsql.agents.error_hints import error_hint

    full = open_database(spider_db("concert_singer")).schema()
    assert "Age" in error_hint("SELECT avg(Agee) FROM singer", c0.attempts[0].error, full)
    assert "linking missed singer.Age (used by c0)" in event(ans, "link_check").message
    assert ans.rows and ans.sql == "SELECT avg(Age) FROM singer"


# -- degradations -----------------------------------------------------------------------------
def test_a_question_that_names_nothing_keeps_the_whole_schema(settings):
    ans = run(settings, ['["weather"]', "I cannot answer that.", "Still no SQL.", sql("SELECT 1")],
              "Will it rain tomorrow?", spider_db("concert_singer"), column_top_k=0)
    link = event(ans, "link")
    assert "linking found nothing in the schema: keeping every table" in link.message
    assert len(link.data["selection"]) == 4
    assert "did not parse or names no table" in link.message or "was missing" in link.message


def test_a_one_table_schema_links_to_that_table(settings, tmp_path):
    path = tmp_path / "one.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT, population INTEGER)")
        conn.executemany("INSERT INTO city VALUES (?, ?, ?)", [(1, "Porto", 230000), (2, "Braga", 190000)])
    ans = run(settings, ['["Porto", "population"]', sql("SELECT population FROM city WHERE name = 'Porto'"),
                         sql("SELECT population FROM city WHERE name = 'Porto'")],
              "What is the population of Porto?", path)
    assert set(event(ans, "link").data["selection"]) == {"city"}
    assert ans.rows == [(230000,)]


def test_a_missing_metadata_store_degrades_to_the_draft(settings, monkeypatch):
    from quorumsql.errors import DatabaseError
    from quorumsql.resources import Resources

    def broken(self, db):
        raise DatabaseError("cache directory is not writable")

    monkeypatch.setattr(Resources, "metadata", broken)
    ans = run(settings, ['["singers"]', sql("SELECT Name FROM singer"), sql("SELECT Name FROM singer")],
              "List the singers' names.", spider_db("concert_singer"))
    assert "retrieval unavailable" in event(ans, "retrieve").message
    assert "singer" in event(ans, "link").data["selection"] and len(ans.rows) == 6


def test_a_schema_over_the_budget_is_retrieved_first_and_the_prompt_fits(settings, tmp_path):
    from quorumsql.llm.usage import estimate_tokens

    path = tmp_path / "wide.sqlite"
    with sqlite3.connect(path) as conn:
        for i in range(60):
            cols = ", ".join(f"attr_{i}_{j} TEXT" for j in range(8))
            conn.execute(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, {cols})")
        conn.execute("CREATE TABLE orchard (id INTEGER PRIMARY KEY, fruit TEXT, harvest_kg INTEGER)")
        conn.executemany("INSERT INTO orchard VALUES (?, ?, ?)", [(1, "quince", 40), (2, "medlar", 12)])
    budget = 600
    ans = run(settings, ['["quince", "harvest"]', sql("SELECT harvest_kg FROM orchard WHERE fruit = 'quince'"),
                         sql("SELECT harvest_kg FROM orchard WHERE fruit = 'quince'")],
              "How many kilograms of quince were harvested?", path, prompt_budget=budget)
    link = event(ans, "link")
    assert "over the budget of 600" in link.message
    prompt = ans.candidates[-1].conversation[1].content
    assert estimate_tokens(prompt) <= budget and "orchard" in prompt  # the whole prompt fits
    assert ans.rows == [(40,)]


def test_the_refiner_uses_a_copied_database_unchanged(settings, tmp_path):
    db = tmp_path / "concert_singer.sqlite"
    shutil.copy(spider_db("concert_singer"), db)
    before = db.read_bytes()
    run(settings, ['["singers"]', sql("SELECT count(*) FROM singer"), sql("SELECT count(*) FROM singer")],
        "How many singers?", db)
    assert db.read_bytes() == before


def test_auto_links_only_a_schema_over_the_budget(settings, tmp_path):
    small = Pipeline(settings, llm=FakeListChatModel(responses=[sql("SELECT count(*) FROM singer")]),
                     preset=Preset(name="auto", temperatures=[0.0], linking="auto"))
    ans = small.answer("How many singers do we have?", spider_db("concert_singer"))
    assert [e.node for e in ans.trace][:2] == ["context", "generate"] and ans.rows == [(6,)]
    assert ans.trace[0].data["linking"] is False
    # the same database with a budget it does not fit in: the linking stages run
    tight = Pipeline(settings, llm=FakeListChatModel(responses=['["singers"]', sql("SELECT count(*) FROM singer"),
                                                                 sql("SELECT count(*) FROM singer")]),
                     preset=Preset(name="auto", temperatures=[0.0], linking="auto", prompt_budget=200))
    ans = tight.answer("How many singers do we have?", spider_db("concert_singer"))
    assert [e.node for e in ans.trace][:4] == ["context", "keywords", "retrieve", "link"]
    assert "over the prompt budget of 200: linking" in ans.trace[0].message and ans.rows == [(6,)]


def test_shipped_presets_link_automatically():
    from quorumsql.config import PRESETS

    assert all(p.linking == "auto" for p in PRESETS.values())
    assert PRESETS["accurate"].column_selector and not PRESETS["balanced"].column_selector


def test_names_the_draft_got_wrong_and_columns_keywords_name():
    from quorumsql.agents.linker import columns_named, columns_named_by

    pets = open_database(spider_db("pets_1")).schema()
    refs = referenced_columns("SELECT PetType, avg(age) FROM pets GROUP BY pet_type", pets)
    assert "Pets.age" in refs.unknown  # the draft wrote age for Pets.pet_age
    assert ("Pets", "pet_age") in columns_named(refs.unknown, pets)
    assert ("Student", "Age") not in columns_named(["Pets.age"], pets)  # the qualifying table had a match
    cars = open_database(spider_db("car_1")).schema()
    assert ("car_names", "Make") in columns_named(["car_names.Maker"], cars)
    assert columns_named(["cars_data.MakeId"], cars) == [("car_names", "MakeId")]  # exact spelling elsewhere
    assert columns_named_by(["weight", "youngest dog"], pets, ["Pets"]) == [("Pets", "weight")]
    assert columns_named_by(["weight"], pets, ["Student"]) == []  # only tables already linked
    linked = assemble_linked_schema(pets, draft=refs, keywords=["weight"])
    assert linked.contains("Pets", "pet_age") and linked.contains("Pets", "weight")
    assert linked.sources["Pets.weight"] == ["keyword"]
