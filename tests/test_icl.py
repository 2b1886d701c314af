"""The ICL generator on real Spider data: skeletons through the value index, the example pool,
the prompt, the fallback to a zero-shot prompt, and candidates labelled by origin.

Fake chat models script the SQL; the value index, the MiniLM embeddings, chromadb and the
Spider dev questions (as a pool) are real.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from quorumsql import Pipeline
from quorumsql.agents.generator import build_messages
from quorumsql.agents.icl_generator import IclExample, build_icl_messages
from quorumsql.agents.icl_pool import ExamplePool, load_pool, read_pool, sql_tables
from quorumsql.agents.linker import referenced_columns
from quorumsql.agents.skeleton import mask_question, question_skeleton, sql_values
from quorumsql.config import PRESETS, Preset, Settings
from quorumsql.db import open_database
from quorumsql.resources import Resources
from tests.conftest import REPO, SPIDER, spider_db

COUNT = "```sql\nSELECT count(*) FROM singer\n```"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("icl-cache")


@pytest.fixture(scope="module")
def settings(cache):
    return Settings.load(cache_dir=cache)


@pytest.fixture(scope="module")
def store(settings):
    return Resources(settings).metadata(spider_db("concert_singer"))


@pytest.fixture(scope="module")
def dev_pool_file(tmp_path_factory, spider_data):
    """The Spider dev questions as a pool, written by benchmarks/make_dev_pool.py."""
    out = tmp_path_factory.mktemp("pools") / "spider_dev.jsonl"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_dev_pool.py"), str(out),
                          "--dev", str(spider_data / "dev.json")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture(scope="module")
def dev_pool(dev_pool_file, cache) -> ExamplePool:
    return load_pool(dev_pool_file, cache_dir=cache, database_root=SPIDER / "database")


def icl_preset(pool, **kw) -> Preset:
    base = dict(name="icl", generators=["icl"], temperatures=[0.0], refine_rounds=0, icl_pool=str(pool) if pool else None)
    return Preset(**{**base, **kw})


def ask(settings, preset, question="How many singers do we have?", responses=(COUNT,)):
    pipe = Pipeline(settings, llm=FakeListChatModel(responses=list(responses)), preset=preset)
    return pipe.answer(question, spider_db("concert_singer"))


def icl_event(ans):
    return next(e for e in ans.trace if e.node == "generate_icl")


# -- skeletons --------------------------------------------------------------------------------
def test_values_the_value_index_finds_become_their_column(store):
    sk = question_skeleton("How many singers from France?", store)
    assert sk.text == "How many singers from <country>?"
    assert [(m.table, m.column, m.text) for m in sk.masks] == [("singer", "Country", "France")]
    assert question_skeleton("How many singers from France?").text == "How many singers from France?"  # no index
    # a multi-word value with an apostrophe is one entity; a word inside a longer value is not a value
    assert question_skeleton("What is the capacity of Stark's Park?", store).text == "What is the capacity of <name>?"
    assert question_skeleton("Which stadium has the largest capacity?", store).text == "Which stadium has the largest capacity?"
    # quoted text: its column when it is a value, <value> otherwise
    assert question_skeleton('Show the theme of the concert "Auditions"', store).text == "Show the theme of the concert <concert name>"
    assert question_skeleton('Show the theme of the concert "Nowhere Gala"', store).text == "Show the theme of the concert <value>"


def test_numbers_and_dates_become_type_tokens(store):
    sk = question_skeleton("Which singers older than 30 from the Netherlands sang on 2014-05-03 or on May 3, 2014, "
                           "with 5,000 fans and a 2.5% share?", store)
    assert sk.text == ("Which singers older than <number> from the <country> sang on <date> or on <date>, "
                       "with <number> fans and a <number> share?")
    assert [m.kind for m in sk.masks] == ["number", "value", "date", "date", "number", "number"]


def test_longest_spans_are_masked_first_and_sql_literals_mask_pool_questions():
    values = {"new guinea": "Name", "Papua New Guinea": "Name"}
    assert mask_question("People in Papua New Guinea", values).text == "People in <name>"
    # pool examples are masked with the literals their own SQL compares to columns
    sql = "SELECT avg(age) , min(age) , max(age) FROM singer WHERE country = 'France' AND song_name LIKE '%Hey%'"
    assert sql_values(sql) == {"France": "country", "Hey": "song_name"}
    assert mask_question("Ages of singers from France with a song named 'Hey'?", sql_values(sql)).text == \
        "Ages of singers from <country> with a song named <song name>?"
    # Spider writes many strings in double quotes, which SQLite reads as strings
    spider = 'SELECT Country FROM AIRLINES WHERE Airline  =  "JetBlue Airways" AND T1.a = T2.b'
    assert sql_values(spider) == {"JetBlue Airways": "Airline"}
    assert mask_question("Which country does Jetblue Airways belong to?", sql_values(spider)).text == \
        "Which country does <airline> belong to?"


def test_pool_questions_and_asked_questions_get_the_same_skeleton(store, dev_pool):
    # the same real question, masked through its SQL (pool side) and through the value index
    ex = next(e for e in dev_pool.examples if e.question.endswith("of all singers from France?"))
    assert ex.skeleton == question_skeleton(ex.question, store).text
    assert "<country>" in ex.skeleton


# -- the pool ---------------------------------------------------------------------------------
def test_the_pool_never_returns_examples_of_the_asked_database(dev_pool, store):
    question = "What are the names of the singers who performed in a concert in 2014?"
    skeleton = question_skeleton(question, store).text
    unfiltered = dev_pool.nearest(skeleton, exclude_db=None, k=5, min_similarity=-1)
    assert unfiltered.examples[0].example.db_id == "concert_singer"  # its own questions are the nearest
    for name in ("concert_singer", "Concert_Singer"):
        found = dev_pool.nearest(skeleton, exclude_db=name, k=5, min_similarity=-1)
        assert len(found.examples) == 5
        assert all(s.example.db_id != "concert_singer" for s in found.examples)
        assert found.considered == len(dev_pool) - sum(e.db_id == "concert_singer" for e in dev_pool.examples)
    sims = [s.similarity for s in found.examples]
    high = dev_pool.nearest(skeleton, exclude_db="concert_singer", k=5, min_similarity=sims[1] + 1e-4)
    assert [s.example.id for s in high.examples] == [found.examples[0].example.id]  # the threshold cuts


def test_multi_table_examples_come_first_when_the_question_involves_several_tables(dev_pool):
    skeleton = "How many singers do we have?"
    plain = dev_pool.nearest(skeleton, exclude_db="concert_singer", k=3, min_similarity=-1)
    multi = dev_pool.nearest(skeleton, exclude_db="concert_singer", k=3, min_similarity=-1, multi_table=True)
    assert not all(s.example.multi_table for s in plain.examples)
    assert len(multi.examples) == 3 and all(s.example.multi_table for s in multi.examples)
    assert all(len(sql_tables(s.example.sql)) >= 2 for s in multi.examples)
    shown = [s.example.sql.lower() for s in multi.examples]
    assert len(set(" ".join(s.split()) for s in shown)) == 3  # no SQL shown twice


def test_each_example_comes_with_its_minimal_schema(dev_pool):
    ex = next(e for e in dev_pool.examples if e.db_id == "car_1" and e.multi_table)
    text = dev_pool.minimal_schema(ex)
    schema = open_database(spider_db("car_1")).schema()
    refs = referenced_columns(ex.sql, schema)
    for table in schema.tables:
        assert (f"# Table: {table.name}\n" in text) == (table.name in refs.tables)
        if table.name in refs.tables:
            for col in table.columns:
                if (table.name, col.name) not in refs.columns and not col.primary_key:
                    assert f"({col.name}:" not in text.split(f"# Table: {table.name}\n")[1].split("]")[0]
    bare = ExamplePool(dev_pool.path, dev_pool.examples, 0, [], collection=None, embedder=None, database_root=None)
    assert bare.minimal_schema(ex) == f"【DB_ID】 car_1\nTables: {', '.join(ex.tables)}"


def test_pool_lines_are_read_tolerantly(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join([
        json.dumps({"question": "How many cars?", "query": "SELECT count(*) FROM cars", "db_id": "a"}),
        json.dumps({"question": "How many cars?", "SQL": "SELECT count(*) FROM cars", "db_id": "b", "evidence": "cars = vehicles"}),
        json.dumps({"question": "How many cars?", "sql": {"spider": "parse"}, "query": "SELECT 1 FROM t", "db_id": "c"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"question": "No SQL here", "db_id": "d"}),
        json.dumps({"question": "Bad SQL", "sql": "SELEC nothing FROM", "db_id": "e"}),
        "",
    ]))
    examples, skipped, problems = read_pool(pool)
    assert [(e.db_id, e.sql, e.evidence) for e in examples] == [
        ("a", "SELECT count(*) FROM cars", ""), ("b", "SELECT count(*) FROM cars", "cars = vehicles"), ("c", "SELECT 1 FROM t", "")]
    assert skipped == 4
    assert [p.split(" (")[0] for p in problems] == [
        "line 4: not JSON", "line 5: not a JSON object", "line 6: no SQL", "line 7: the SQL does not parse as a query"]


def test_an_edited_pool_file_is_indexed_again(tmp_path):
    pool = tmp_path / "pool.jsonl"
    line = {"question": "How many singers are there?", "query": "SELECT count(*) FROM singer", "db_id": "x"}
    pool.write_text(json.dumps(line) + "\n")
    first = load_pool(pool, cache_dir=tmp_path / "cache")
    assert load_pool(pool, cache_dir=tmp_path / "cache") is first  # loaded once per file version
    with pool.open("a") as fh:
        fh.write(json.dumps({"question": "List the stadium names.", "query": "SELECT name FROM stadium", "db_id": "y"}) + "\n")
    second = load_pool(pool, cache_dir=tmp_path / "cache")
    assert second is not first and len(second) == 2
    hit = second.nearest("List the stadium names.", exclude_db=None, k=1)
    assert hit.examples[0].example.db_id == "y" and hit.examples[0].similarity > 0.99
    assert len(list((tmp_path / "cache" / "icl").iterdir())) == 2


# -- the prompt -------------------------------------------------------------------------------
def test_without_examples_the_prompt_is_the_zero_shot_prompt():
    zs = build_messages("How many singers?", "SCHEMA", evidence="e", dialect="sqlite")
    assert [m.content for m in build_icl_messages("How many singers?", "SCHEMA", [], evidence="e")] == [m.content for m in zs]
    ex = IclExample(question="How many cars?", sql="SELECT  count(*)  FROM cars", schema="# Table: cars", evidence="cars = autos")
    icl = build_icl_messages("How many singers?", "SCHEMA", [ex], evidence="e")
    assert icl[0].content == zs[0].content  # same system rules
    user = icl[1].content
    assert user.startswith("【Schema】\nSCHEMA\n\n【Examples】")  # the schema prefix is the zero-shot one
    assert user.index("Question: How many cars?") < user.index("Evidence: cars = autos") < user.index("SELECT count(*) FROM cars")
    assert user.endswith("【Evidence】\ne\n\n【Question】\nHow many singers?")


def test_the_prompt_shows_the_chosen_examples_before_the_question(settings, dev_pool_file, dev_pool):
    question = "What are the names of the singers who performed in a concert in 2014?"
    preset = icl_preset(dev_pool_file, icl_database_root=str(SPIDER / "database"), generators=["zero-shot", "icl"])
    ans = ask(settings, preset, question)
    event = icl_event(ans)
    assert event.data["prompt"] == "icl" and event.data["multi_table"] and event.data["tables_from"] == "estimated"
    assert {"singer", "concert"} <= set(event.data["tables"])
    assert event.data["skeleton"] == "What are the names of the singers who performed in a concert in <number>?"
    shown = event.data["examples"]
    assert len(shown) == 3 and all(e["db_id"] != "concert_singer" and e["multi_table"] for e in shown)
    zero, icl = ans.candidates
    assert icl.generator == "icl/mschema"
    prompt = icl.conversation[1].content
    asked = prompt.index(f"【Question】\n{question}")
    by_question = {e.question: e for e in dev_pool.examples}
    for e in shown:
        ex = by_question[e["question"]]
        assert prompt.index(f"Question: {ex.question}") < asked
        assert " ".join(ex.sql.split()) in prompt
        assert dev_pool.minimal_schema(ex) in prompt
    schema_end = prompt.index("【Examples】")
    assert zero.conversation[1].content.startswith(prompt[:schema_end])  # shared cacheable prefix
    assert zero.conversation[0].content == icl.conversation[0].content


# -- fallbacks --------------------------------------------------------------------------------
BAD_LINES = "\n".join(["{oops", json.dumps({"question": "q"}), json.dumps([1, 2]),
                       json.dumps({"question": "q", "query": "DROP TABLE x;;(", "db_id": "z"})])


@pytest.mark.parametrize("content,reason", [
    (None, "not set"),
    ("", "has no usable example"),
    (BAD_LINES, "4 malformed pool line(s) skipped"),
    ("missing", "ICL example pool not found"),
    (json.dumps({"question": "How many singers are there?", "query": "SELECT count(*) FROM singer",
                 "db_id": "concert_singer"}), "no example of another database"),
])
def test_an_unusable_pool_gives_a_zero_shot_candidate_and_says_why(settings, tmp_path, content, reason):
    path = None
    if content is not None:
        path = tmp_path / "pool.jsonl"
        if content != "missing":
            path.write_text(content)
    ans = ask(settings, icl_preset(path))
    cand = ans.candidates[0]
    assert cand.generator == "zero-shot/mschema" and ans.rows == [(6,)]
    assert "【Examples】" not in cand.conversation[1].content
    event = icl_event(ans)
    assert "icl (0 examples: zero-shot prompt)" in event.message and reason in event.message
    assert event.data["prompt"] == "zero-shot"


def test_no_example_similar_enough_falls_back_and_reports_the_best(settings, dev_pool_file):
    ans = ask(settings, icl_preset(dev_pool_file, icl_min_similarity=0.99))
    event = icl_event(ans)
    assert ans.candidates[0].generator == "zero-shot/mschema"
    assert "icl (0 examples: zero-shot prompt): no example reaches similarity 0.99 (best 0." in event.message


def test_zero_shot_and_icl_candidates_are_labelled_by_origin(settings, dev_pool_file):
    preset = icl_preset(dev_pool_file, generators=["zero-shot", "icl"], temperatures=[0.0, 0.7])
    ans = ask(settings, preset, responses=[COUNT, "```sql\nSELECT count(Singer_ID) FROM singer\n```"])
    assert [c.generator for c in ans.candidates] == ["zero-shot/mschema"] * 2 + ["icl/mschema"] * 2
    nodes = [e.node for e in ans.trace]
    assert nodes.count("generate") == 2 and nodes.count("generate_icl") == 2
    assert all("【Examples】" in c.conversation[1].content for c in ans.candidates if c.generator.startswith("icl"))
    assert ans.rows == [(6,)]


def test_the_shipped_presets_do_not_use_icl():
    assert all("icl" not in p.generators and p.icl_pool is None for p in PRESETS.values())
