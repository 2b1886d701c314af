"""The example memory of a database (issue 18): storage, schema changes, damage, two writers,
teaching and correcting, and the ICL generator serving the asked database's own pairs first.

Real Spider databases (copied where a test changes one), real SQLite memory files, the real
value index and MiniLM embeddings; chat models are scripted.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from quorumsql import Pipeline
from quorumsql.agents.icl_generator import OWN_EXAMPLES_HEADER
from quorumsql.cli import main
from quorumsql.config import Preset, Settings
from quorumsql.db import open_database
from quorumsql.errors import InputError
from quorumsql.metadata.examples import ExampleMemories, ExampleMemory, memory_path, teach_pair
from quorumsql.records import Answer
from tests.conftest import REPO, spider_db

MEMORY = Preset(name="memory", generators=["icl"], temperatures=[0.0], refine_rounds=0)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings.load(cache_dir=tmp_path_factory.mktemp("memory-cache"))


@pytest.fixture
def singer_copy(tmp_path):
    path = tmp_path / "concert_singer.sqlite"
    shutil.copy(spider_db("concert_singer"), path)
    return path


class FollowsExamples(BaseChatModel):
    """A scripted generator: it copies the SQL of a shown example whose question shares the
    asked question's last word, and otherwise answers ``fallback`` (a wrong query)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    fallback: str
    prompts: list = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "follows-examples"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        prompt = str(messages[-1].content)
        self.prompts.append(prompt)
        asked = prompt.rsplit("【Question】\n", 1)[-1].strip().rstrip("?").split()[-1].lower()
        sql = self.fallback
        for question, example_sql in re.findall(r"Question: (.*?)\n```sql\n(.*?)\n```", prompt, re.S):
            if question.strip().rstrip("?").split()[-1].lower() == asked:
                sql = example_sql
                break
        return ChatResult(generations=[ChatGeneration(message=AIMessage(f"```sql\n{sql}\n```"))])


# -- storage ----------------------------------------------------------------------------------
def test_pairs_are_stored_durably_with_their_provenance(tmp_path):
    db = open_database(spider_db("concert_singer"))
    memory = ExampleMemories(tmp_path).memory_for(db)
    first = memory.add("How many singers are there?", "SELECT count(*) FROM singer;", provenance="taught",
                       source="a test")
    memory.add("Which stadium is largest?", "SELECT name FROM stadium ORDER BY capacity DESC LIMIT 1",
               provenance="log")
    with pytest.raises(InputError, match="unknown provenance"):
        memory.add("q", "SELECT 1", provenance="guessed")
    with pytest.raises(InputError, match="empty"):
        memory.add(" ", "SELECT 1")
    # the same question again (case and spacing ignored) replaces its SQL: a correction supersedes
    again = memory.add("how many  singers are there?", "SELECT count(Singer_ID) FROM singer", provenance="corrected")
    assert again.id == first.id and again.provenance == "corrected"
    # another process (a fresh object on the same file) sees the same pairs
    reopened = ExampleMemory.open(memory_path(tmp_path, db), uri=db.uri, db_id=db.db_id)
    assert [(p.id, p.provenance, p.sql) for p in reopened.pairs()] == [
        (1, "corrected", "SELECT count(Singer_ID) FROM singer"),
        (2, "log", "SELECT name FROM stadium ORDER BY capacity DESC LIMIT 1"),
    ]
    assert reopened.remove(2) and not reopened.remove(2) and memory.count() == 1
    # each database has its own memory, named by its identity
    other = ExampleMemories(tmp_path).memory_for(open_database(spider_db("pets_1")))
    assert other.path != memory.path and other.count() == 0


def test_a_pair_that_does_not_run_is_refused_with_the_reason(settings, tmp_path):
    pipe = Pipeline(settings, llm=FakeListChatModel(responses=["x"]), examples_dir=tmp_path)
    db = spider_db("concert_singer")
    with pytest.raises(InputError, match="no such column: nope"):
        pipe.teach("Which singers?", "SELECT nope FROM singer", db=db)
    with pytest.raises(InputError, match="only read queries"):
        pipe.teach("Remove the singers", "DELETE FROM singer", db=db)
    assert pipe.examples(db).count() == 0
    pair = pipe.teach("How many singers?", "SELECT count(*) FROM singer", db=db, evidence="singers are people")
    assert pair.provenance == "taught" and pair.evidence == "singers are people"


def test_a_schema_change_marks_the_pairs_that_no_longer_run(singer_copy, tmp_path):
    memories = ExampleMemories(tmp_path)
    db = open_database(singer_copy)
    memory = memories.memory_for(db)
    teach_pair(memory, db, "Names of the singers?", "SELECT Name FROM singer")
    teach_pair(memory, db, "Song names?", "SELECT Song_Name FROM singer")
    with sqlite3.connect(singer_copy) as conn:  # the user's schema changes
        conn.execute("ALTER TABLE singer DROP COLUMN Song_Name")
    changed = open_database(singer_copy)
    memory = ExampleMemories(tmp_path).memory_for(changed)  # a new process
    assert any("1 pair(s) no longer run" in n for n in memory.take_notes())
    assert [p.question for p in memory.pairs()] == ["Names of the singers?"]  # served
    broken = [p for p in memory.pairs(include_broken=True) if not p.runs]
    assert [p.question for p in broken] == ["Song names?"] and "Song_Name" in broken[0].problem
    with sqlite3.connect(singer_copy) as conn:  # and changes back
        conn.execute("ALTER TABLE singer ADD COLUMN Song_Name TEXT")
    memory = ExampleMemories(tmp_path).memory_for(open_database(singer_copy))
    assert memory.count() == 2 and any("1 run again" in n for n in memory.notes)


def test_a_damaged_memory_is_reported_and_rebuilt_never_a_crash(settings, tmp_path):
    db = open_database(spider_db("concert_singer"))
    path = memory_path(tmp_path, db)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database" * 50)
    memory = ExampleMemories(tmp_path).memory_for(db)
    notes = memory.take_notes()
    assert len(notes) == 1 and "unusable (file is not a database)" in notes[0] and "rebuilt" in notes[0]
    assert memory.count() == 0 and list(tmp_path.glob("*.corrupt-*"))
    # a memory of another format version: moved aside, its readable pairs carried over
    memory.add("How many singers?", "SELECT count(*) FROM singer")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    memory = ExampleMemories(tmp_path).memory_for(db)
    assert "format version 99" in memory.notes[0] and "1 pair(s)" in memory.notes[0]
    assert [p.question for p in memory.pairs()] == ["How many singers?"]
    # a question on a damaged memory is answered, with the repair in its trace
    path.write_bytes(b"\0garbage" * 100)
    pipe = Pipeline(settings, llm=FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"]),
                    preset=MEMORY, examples_dir=tmp_path)
    ans = pipe.answer("How many singers are there?", spider_db("concert_singer"))
    assert ans.rows == [(6,)]
    event = next(e for e in ans.trace if e.node == "generate_icl")
    assert "was unusable" in event.message and event.data["prompt"] == "zero-shot"


def test_two_processes_teaching_at_once_lose_nothing(tmp_path):
    script = (
        "import sys\n"
        "from quorumsql.db import open_database\n"
        "from quorumsql.metadata.examples import ExampleMemories, teach_pair\n"
        "db = open_database(sys.argv[1])\n"
        "m = ExampleMemories(sys.argv[2]).memory_for(db)\n"
        "for i in range(40):\n"
        "    teach_pair(m, db, f'question {sys.argv[3]} {i}?', f'SELECT {i} FROM singer LIMIT 1')\n"
    )
    db = str(spider_db("concert_singer"))
    procs = [subprocess.Popen([sys.executable, "-c", script, db, str(tmp_path), name], cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    memory = ExampleMemories(tmp_path).memory_for(open_database(db))
    assert memory.count() == 80 and len({p.question for p in memory.pairs()}) == 80


# -- serving ----------------------------------------------------------------------------------
def test_the_asked_databases_own_pairs_are_served_first_without_a_schema(settings, tmp_path):
    db = spider_db("concert_singer")
    pipe = Pipeline(settings, llm=FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"]),
                    preset=MEMORY.model_copy(update={"memory_examples": 2}), examples_dir=tmp_path)
    pipe.teach("How many singers are from France?", "SELECT count(*) FROM singer WHERE Country = 'France'", db=db)
    pipe.teach("What is the average age of all singers?", "SELECT avg(Age) FROM singer", db=db)
    pipe.teach("Show the names of all stadiums.", "SELECT Name FROM stadium", db=db)
    ans = pipe.answer("How many singers are from the Netherlands?", db)
    event = next(e for e in ans.trace if e.node == "generate_icl")
    assert event.data["source"] == "memory" and event.data["memory_pairs"] == 3
    shown = event.data["examples"]
    assert len(shown) == 2 and shown[0]["id"] == 1 and all(e["source"] == "memory" for e in shown)
    assert shown[0]["similarity"] > shown[1]["similarity"]
    assert "from the memory of concert_singer: #1" in event.message
    cand = ans.candidates[0]
    assert cand.generator == "icl/mschema"
    prompt = cand.conversation[1].content
    header = OWN_EXAMPLES_HEADER.format(dialect_name="SQLite")
    # schema first, then this database's examples (no schema of their own), the question last
    assert prompt.index("【Schema】") < prompt.index(header) < prompt.index("【Question】")
    examples = prompt[prompt.index(header):prompt.index("【Evidence】")]
    assert "Example 1\nQuestion: How many singers are from France?\n```sql" in examples
    assert "# Table" not in examples and "Show the names of all stadiums" not in examples


def test_without_pairs_the_pool_stays_the_fallback(settings, tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"question": "How many pets are there?", "query": "SELECT count(*) FROM pets",
                                "db_id": "pets_1"}) + "\n")
    preset = MEMORY.model_copy(update={"icl_pool": str(pool), "icl_min_similarity": -1.0})
    pipe = Pipeline(settings, llm=FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"]),
                    preset=preset, examples_dir=tmp_path / "memories")
    ans = pipe.answer("How many singers do we have?", spider_db("concert_singer"))
    event = next(e for e in ans.trace if e.node == "generate_icl")
    assert event.data["source"] == "pool" and event.data["memory_pairs"] == 0
    assert [e["db_id"] for e in event.data["examples"]] == ["pets_1"]
    # memory off: the pool alone, and the trace says so
    pipe = Pipeline(settings, llm=FakeListChatModel(responses=["```sql\nSELECT count(*) FROM singer\n```"]),
                    preset=preset.model_copy(update={"memory": False}), examples_dir=tmp_path / "memories")
    pipe.teach("How many singers do we have?", "SELECT count(*) FROM singer", db=spider_db("concert_singer"))
    event = next(e for e in pipe.answer("How many singers?", spider_db("concert_singer")).trace
                 if e.node == "generate_icl")
    assert event.data["source"] == "pool" and "does not use the example memory" in event.message


# -- from people ------------------------------------------------------------------------------
def test_ask_correct_then_a_paraphrase_is_answered_right(settings, tmp_path):
    db = spider_db("concert_singer")
    right = "SELECT Name FROM singer WHERE Age > (SELECT avg(Age) FROM singer)"
    llm = FollowsExamples(fallback="SELECT Name FROM singer")
    pipe = Pipeline(settings, llm=llm, preset=MEMORY, examples_dir=tmp_path)
    first = pipe.answer("Which singers are older than the average?", db)
    assert first.sql == "SELECT Name FROM singer" and len(first.rows) == 6  # wrong: every singer
    pair = first.correct(right)
    assert pair.provenance == "corrected" and pair.question == "Which singers are older than the average?"
    second = pipe.answer("List the singers whose age is above the average?", db)
    assert right in llm.prompts[-1] and second.sql == right
    assert sorted(second.rows) == sorted(open_database(db).execute(right).rows) and len(second.rows) < 6
    event = next(e for e in second.trace if e.node == "generate_icl")
    assert event.data["examples"][0] == {**event.data["examples"][0], "id": pair.id, "provenance": "corrected"}
    # a correction that does not run is refused; an Answer read back from JSON cannot teach
    with pytest.raises(InputError, match="does not run"):
        first.correct("SELECT Name FROM singers")
    with pytest.raises(InputError, match="Pipeline.teach"):
        Answer.model_validate(first.model_dump()).correct(right)


def test_teach_and_examples_commands(tmp_path, capsys):
    db = str(spider_db("concert_singer"))
    cache = ["--cache-dir", str(tmp_path)]
    assert main(["teach", db, "--question", "How many singers?", "--sql", "SELECT count(*) FROM singer", *cache]) == 0
    assert "stored pair #1" in capsys.readouterr().out
    assert main(["teach", db, "--question", "Bad?", "--sql", "SELECT nope FROM singer", *cache]) == 2
    assert "no such column: nope" in capsys.readouterr().err
    assert main(["examples", db, *cache]) == 0
    listing = capsys.readouterr().out
    assert "How many singers?" in listing and "taught" in listing and "Bad?" not in listing
    out = tmp_path / "pairs.jsonl"
    assert main(["examples", db, "--export", str(out), *cache]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["question"], r["provenance"], r["runs"]) for r in rows] == [(1, "How many singers?", "taught", True)]
    assert main(["examples", db, "--remove", "5", *cache]) == 2
    assert main(["examples", db, "--remove", "1", *cache]) == 0
    assert "0 left" in capsys.readouterr().out
