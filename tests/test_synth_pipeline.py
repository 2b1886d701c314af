"""The synthesis pipeline (issue 11) with scripted fake models on real Spider SQLite databases.

The fake chat model tells the pipeline's agents apart by their system prompts (matched against
each agent's own module-level template) and plays a small consistent "good model" over a real
database (:class:`World`); tests override single agents to play a bad one. Execution, the
execution filter, embeddings (the offline MiniLM), clustering and every file are real.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from quorumsql.agents import cot_writer, generator, judge, question_writer, sql_synthesizer
from quorumsql.config import Settings
from quorumsql.errors import ModelError
from quorumsql.graph.synthesis import SynthesisContext, synthesis
from quorumsql.llm import ChatModels
from quorumsql.llm.embeddings import default_embedder
from quorumsql.synthesis.records import SynthOptions, SynthRecord
from quorumsql.synthesis.seeds import DatabaseLocator, Seed, read_pairs, read_seed_sql
from tests.conftest import REPO, SPIDER, require_shared, spider_db


# ----------------------------------------------------------------------------- the fake model
def _pattern(template: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{[a-z_]+\\\}", ".*?", re.escape(template)), re.S)


AGENTS: dict[str, re.Pattern] = {
    "synth": _pattern(sql_synthesizer.SYNTH_SYSTEM),
    "vary": _pattern(sql_synthesizer.VARY_SYSTEM),
    "questions_first": _pattern(sql_synthesizer.QUESTIONS_SYSTEM),
    "question": _pattern(question_writer.WRITER_SYSTEM),
    "judge": _pattern(judge.CONSISTENCY_SYSTEM),
    "cot": _pattern(cot_writer.COT_SYSTEM),
    "generate": _pattern(generator.SYSTEM_PROMPT),
}


def agent_of(messages: list[BaseMessage]) -> str:
    """Which agent wrote this prompt (by its system message)."""
    system = str(messages[0].content)
    for name, pattern in AGENTS.items():
        if pattern.fullmatch(system):
            return name
    raise AssertionError(f"unknown prompt: {system[:120]!r}")


def section(text: str, name: str) -> str:
    """The text under ``【name】`` in a prompt, up to the next section."""
    m = re.search(rf"【{re.escape(name)}】\n(.*?)(?:\n\n【|\Z)", text, re.S)
    assert m, f"no section {name} in {text[:200]!r}"
    return m.group(1).strip()


class Scripted(BaseChatModel):
    """A chat model whose reply is ``script(agent, messages)``; every call is logged with its agent.

    Replies report token usage (characters / 4 each way) so usage accounting can be checked.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    script: Any
    calls: list = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        agent = agent_of(messages)
        self.calls.append(agent)
        text = self.script(agent, messages)
        prompt = sum(len(str(m.content)) for m in messages) // 4
        done = max(1, len(text) // 4)
        msg = AIMessage(text, usage_metadata={"input_tokens": prompt, "output_tokens": done,
                                              "total_tokens": prompt + done})
        return ChatResult(generations=[ChatGeneration(message=msg)])


class World:
    """A consistent good model over one database.

    Questions name an item number that stands for their SQL; the generator answers an item with
    its SQL, so agreement is real execution agreement. ``overrides[agent] = fn(messages)`` makes
    one agent misbehave; ``down`` lists agents whose endpoint fails.
    """

    def __init__(self) -> None:
        self.items: dict[int, str] = {}
        self.answers: dict[str, str] = {}
        self.variant: Callable[[str], str | None] = lambda sql: f"SELECT * FROM ({sql}) AS sub"
        self.synthesized: list[str] = ["SELECT 1"]
        self.first_questions: list[str] = []
        self.bad: set[str] = set()
        self.wrong_answers: set[str] = set()
        self.overrides: dict[str, Callable[[list[BaseMessage]], str]] = {}
        self.down: set[str] = set()
        self._synth_calls = 0

    def item(self, sql: str) -> int:
        for n, s in self.items.items():
            if s == sql:
                return n
        self.items[len(self.items) + 1] = sql
        return len(self.items)

    def __call__(self, agent: str, messages: list[BaseMessage]) -> str:
        if agent in self.down:
            raise ModelError(f"scripted endpoint down ({agent})")
        if agent in self.overrides:
            return self.overrides[agent](messages)
        user = str(messages[1].content)
        if agent == "synth":
            sql = self.synthesized[self._synth_calls % len(self.synthesized)]
            self._synth_calls += 1
            return f"```sql\n{sql}\n```"
        if agent == "vary":
            variant = self.variant(section(user, "Query"))
            return "I cannot vary this query." if variant is None else f"```sql\n{variant}\n```"
        if agent == "questions_first":
            return "\n".join(f"QUESTION: {q}" for q in self.first_questions)
        if agent == "question":
            sql = section(user, "Query")
            style = section(user, "Style").split(":", 1)[0]
            return f"QUESTION: Which rows does item {self.item(sql)} list, asked in a {style} way?\nEVIDENCE: none"
        if agent == "judge":
            if section(user, "SQL") in self.bad:
                return "The question asks for something else.\nSCORE: 1"
            return "The question matches the query.\nSCORE: 5"
        if agent == "cot":
            return f"1. Find the table.\n2. Select what is asked.\n```sql\n{section(user, 'Correct query')}\n```\nDone."
        if agent == "generate":
            question = section(user, "Question")
            m = re.search(r"item (\d+)", question)
            sql = self.items.get(int(m.group(1))) if m else self.answers.get(question)
            if sql in self.wrong_answers:
                sql = "SELECT 0"
            return f"```sql\n{sql or 'SELECT 1'}\n```"
        raise AssertionError(agent)


# ----------------------------------------------------------------------------- helpers
def context(world: World, tmp_path: Path, **options: Any) -> tuple[SynthesisContext, Scripted]:
    llm = Scripted(script=world)
    settings = Settings.load(llm_base_url="http://127.0.0.1:9/v1", cache_dir=tmp_path / "cache")
    opts = {"exec_runs": 3, "variants": 1, "questions": 3, "query_timeout": 2.0} | options
    ctx = SynthesisContext(settings=settings, preset="fast", models=ChatModels(settings, llm=llm),
                           options=SynthOptions(**opts), embedder=default_embedder())
    return ctx, llm


def sql_seed(db: Path, sql: str, sid: str = "s:1") -> dict:
    return Seed(id=sid, kind="sql", db=str(db), db_id=db.stem, sql=sql, source="test", line=1).model_dump(
        exclude_none=True)


def by_id(records: list[SynthRecord]) -> dict[str, SynthRecord]:
    return {r.id: r for r in records}


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


# ----------------------------------------------------------------------------- seeds
def test_seed_sql_lines_find_their_databases(tmp_path):
    require_shared(SPIDER / "database")
    f = tmp_path / "log.sql"
    f.write_text("SELECT count(*) FROM singer\tconcert_singer\n\n-- a comment\n# another\n"
                 "SELECT * FROM t\tno_such_db\nSELECT 1\n", encoding="utf-8")
    seeds = read_seed_sql(f, DatabaseLocator(SPIDER))
    assert [(s.id, s.line) for s in seeds] == [("log:1", 1), ("log:5", 5), ("log:6", 6)]
    assert seeds[0].db == str(spider_db("concert_singer")) and seeds[0].sql == "SELECT count(*) FROM singer"
    assert seeds[1].db == "" and "no database 'no_such_db'" in seeds[1].db_error
    assert seeds[2].db_error == "the seed names no database and no --db was given"
    # with --db every line goes to that database, whatever it names
    one = read_seed_sql(f, DatabaseLocator(db=str(spider_db("pets_1"))))
    assert {s.db for s in one} == {str(spider_db("pets_1"))} and not any(s.db_error for s in one)


def test_train_gold_is_read_as_spider_lays_it_out():
    path = require_shared(SPIDER / "train_gold.sql")
    seeds = read_seed_sql(path, DatabaseLocator(SPIDER))
    assert len(seeds) == sum(1 for line in path.read_text().splitlines() if line.strip())
    first = seeds[0]
    assert first.db_id == "department_management" and first.sql.startswith("SELECT count(*) FROM head")
    # training databases missing from ../shared/data (baseball_1, soccer_1): their lines keep the reason
    missing = {s.db_id for s in seeds if s.db_error}
    absent = {s.db_id for s in seeds if not (SPIDER / "database" / s.db_id / f"{s.db_id}.sqlite").is_file()}
    assert missing == absent and "baseball_1" in missing
    assert all(s.db.endswith(f"{s.db_id}.sqlite") for s in seeds if not s.db_error)


def test_pairs_file_reads_db_ids_and_paths_and_reports_bad_lines(tmp_path):
    require_shared(SPIDER / "database")
    f = tmp_path / "pairs.jsonl"
    rows = [
        {"question": "How many singers?", "query": "SELECT count(*) FROM singer", "db_id": "concert_singer"},
        {"question": "How many pets?", "SQL": "SELECT count(*) FROM pets", "db": str(spider_db("pets_1")),
         "evidence": "pets are animals"},
        {"question": "no sql"},
        "not an object",
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    seeds, problems = read_pairs(f, DatabaseLocator(SPIDER))
    assert [s.db_id for s in seeds] == ["concert_singer", "pets_1"]
    assert seeds[1].evidence == "pets are animals" and seeds[1].kind == "pair"
    assert len(problems) == 3 and "pairs.jsonl:3" in problems[0] and "not JSON" in problems[2]


# ----------------------------------------------------------------------------- execution filter
@pytest.mark.parametrize("sql, stage", [
    ("SELEC Name FRM singer", "parse"),
    ("SELECT * FROM no_such_table", "missing_table"),
    ("SELECT s.Name FROM singer AS s JOIN ghosts AS g ON s.Singer_ID = g.id", "missing_table"),
    ("DELETE FROM singer", "write"),
    ("DROP TABLE singer", "write"),
    ("SELECT 1; DELETE FROM singer", "write"),
    ("SELECT no_such_column FROM singer", "error"),
    ("SELECT Name FROM singer WHERE Age > 1000", "empty"),
    ("SELECT NULL AS blank FROM singer", "all_null"),
])
def test_the_execution_filter_drops_bad_sql_with_its_stage(concert_singer, sql, stage):
    from quorumsql.db import open_database
    from quorumsql.synthesis.filters import execution_filter

    before = digest(concert_singer)
    check = execution_filter(open_database(concert_singer), sql, timeout=2.0)
    assert (check.ok, check.stage) == (False, stage), check
    assert check.reason
    assert digest(concert_singer) == before  # nothing was written, not even the mtime moved


def test_the_execution_filter_stops_a_query_that_runs_forever(concert_singer):
    from quorumsql.db import open_database
    from quorumsql.synthesis.filters import execution_filter

    forever = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    start = time.monotonic()
    check = execution_filter(open_database(concert_singer), forever, timeout=0.5)
    assert check.stage == "timeout" and time.monotonic() - start < 3


def test_empty_results_pass_when_kept_on_purpose(concert_singer):
    from quorumsql.db import open_database
    from quorumsql.synthesis.filters import execution_filter

    db = open_database(concert_singer)
    kept = execution_filter(db, "SELECT Name FROM singer WHERE Age > 1000", timeout=2.0, keep_empty=True)
    assert kept.ok and kept.row_count == 0 and "result" not in kept.passed
    ok = execution_filter(db, "SELECT Name FROM singer ORDER BY Name", timeout=2.0)
    assert ok.ok and ok.passed == ["parse", "read_only", "tables", "execution", "result"]
    assert ok.row_count == len(db.execute("SELECT Name FROM singer").rows) and ok.columns == ["Name"]


# ----------------------------------------------------------------------------- the graph
def test_a_seed_sql_becomes_kept_records_with_full_provenance(concert_singer, tmp_path):
    world = World()
    ctx, llm = context(world, tmp_path)
    out = synthesis.invoke(sql_seed(concert_singer, "SELECT Name, Country FROM singer WHERE Age > 30"), context=ctx)
    recs = by_id(out["records"])
    assert list(recs) == ["s:1#0", "s:1#1"]
    seed, variant = recs["s:1#0"], recs["s:1#1"]
    assert [e.node for e in out["trace"]] == ["seed", "execute", "variation", "execute", "questions", "judge",
                                              "cot", "difficulty", "record"]
    assert seed.origin == "seed" and variant.origin == "variant" and variant.parent == "s:1#0"
    assert variant.sql == "SELECT * FROM (SELECT Name, Country FROM singer WHERE Age > 30) AS sub"
    for r in (seed, variant):
        assert r.kept and r.seed_kind == "sql" and r.seed_sql == seed.sql and r.seed_line == 1
        assert r.filters == ["parse", "read_only", "tables", "execution", "result", "question", "judge", "cot",
                             "difficulty"]
        # three styled candidates; the kept one is among them and names the record's own item
        assert len(r.question_candidates) == 3 and r.question in [c.question for c in r.question_candidates]
        assert world.items[int(re.search(r"item (\d+)", r.question).group(1))] == r.sql
        assert r.judge_score == 1.0 and r.cot.rstrip().endswith("```") and r.sql in r.cot
        assert (r.exec_successes, r.exec_attempts, r.agreement) == (3, 3, 1.0)
        assert r.execution_difficulty == "easy" and r.component_difficulty in ("easy", "medium")
        assert r.row_count == 4 and r.columns == ["Name", "Country"] and r.usage.calls > 0
        assert r.seed_records == 2 and r.attempt == seed.attempt
    # the call plan: 1 variation, 3 questions + 1 judgement + 1 chain of thought + 3 generator runs per record
    assert llm.calls.count("vary") == 1 and llm.calls.count("question") == 6
    assert llm.calls.count("judge") == 2 and llm.calls.count("cot") == 2 and llm.calls.count("generate") == 6
    assert sum(r.usage.calls for r in recs.values()) == len(llm.calls)


def test_each_bad_seed_is_dropped_with_its_reason_and_the_database_is_untouched(concert_singer, tmp_path):
    world = World()
    ctx, llm = context(world, tmp_path, variants=0, query_timeout=0.5)
    bad = {
        "SELEC Name FRM singer": "parse",
        "SELECT * FROM no_such_table": "missing_table",
        "DELETE FROM singer": "write",
        "DROP TABLE singer": "write",
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n": "timeout",
        "SELECT Name FROM singer WHERE Age > 1000": "empty",
    }
    before = digest(concert_singer)
    for i, (sql, stage) in enumerate(bad.items()):
        out = synthesis.invoke(sql_seed(concert_singer, sql, f"bad:{i}"), context=ctx)
        [rec] = out["records"]
        assert rec.dropped_by == stage and rec.drop_reason and rec.status == "dropped", (sql, rec.drop_reason)
        assert [e.node for e in out["trace"]] == ["seed", "execute", "record"]
    assert llm.calls == []  # nothing reached a model
    assert digest(concert_singer) == before
    missing = Seed(id="m:1", kind="sql", db="", db_id="nowhere", db_error="no database 'nowhere'", sql="SELECT 1")
    [rec] = synthesis.invoke(missing.model_dump(exclude_none=True), context=ctx)["records"]
    assert rec.dropped_by == "database" and rec.drop_reason == "no database 'nowhere'"


def test_a_model_that_writes_no_question_or_the_wrong_format(concert_singer, tmp_path):
    world = World()
    ctx, llm = context(world, tmp_path, variants=0)
    world.overrides["question"] = lambda m: "Sure! Here is a great question for you."
    [rec] = synthesis.invoke(sql_seed(concert_singer, "SELECT Name FROM singer"), context=ctx)["records"]
    assert rec.dropped_by == "no_question" and "no usable question in 3" in rec.drop_reason
    assert llm.calls.count("judge") == 0

    world.overrides = {"judge": lambda m: "I think it is fine, probably."}
    [rec] = synthesis.invoke(sql_seed(concert_singer, "SELECT Name FROM singer", "s:2"), context=ctx)["records"]
    assert rec.dropped_by == "judge" and rec.judge_score == 0.0 and "unparseable" in rec.drop_reason
    assert rec.question and rec.cot is None

    world.overrides = {"cot": lambda m: "Step 1: think. Step 2: done, no query here."}
    [rec] = synthesis.invoke(sql_seed(concert_singer, "SELECT Name FROM singer", "s:3"), context=ctx)["records"]
    assert rec.kept and rec.cot is None and rec.cot_note == "the chain of thought did not end in a SQL block"
    assert "cot" not in rec.filters and rec.execution_difficulty == "easy"

    world.overrides = {"cot": lambda m: "So the answer is:\n```sql\nSELECT Country FROM singer\n```"}
    [rec] = synthesis.invoke(sql_seed(concert_singer, "SELECT Name FROM singer", "s:4"), context=ctx)["records"]
    assert rec.kept and rec.cot is None and "ends in other SQL" in rec.cot_note
    # a chain of thought ending in other SQL with the same result is accepted
    world.overrides = {"cot": lambda m: "So:\n```sql\nSELECT s.Name FROM singer AS s\n```"}
    [rec] = synthesis.invoke(sql_seed(concert_singer, "SELECT Name FROM singer", "s:5"), context=ctx)["records"]
    assert rec.cot and "cot" in rec.filters


def test_a_low_judge_score_drops_the_pair_and_generators_that_disagree_grade_it_hard(concert_singer, tmp_path):
    world = World()
    ctx, _ = context(world, tmp_path, variants=0, exec_runs=4)
    world.bad.add("SELECT Name FROM singer WHERE Is_male = 'F'")
    [rec] = synthesis.invoke(sql_seed(concert_singer, "SELECT Name FROM singer WHERE Is_male = 'F'"),
                             context=ctx)["records"]
    assert rec.dropped_by == "judge" and rec.judge_score == 0.0 and "score 0.00 < 0.5" in rec.drop_reason
    world.wrong_answers.add("SELECT Country FROM singer WHERE Age < 40")
    [rec] = synthesis.invoke(sql_seed(concert_singer, "SELECT Country FROM singer WHERE Age < 40", "s:2"),
                             context=ctx)["records"]
    assert rec.kept and (rec.exec_successes, rec.exec_attempts, rec.agreement) == (0, 4, 0.0)
    assert rec.execution_difficulty == "extra"


def test_schema_seeds_write_sql_at_a_complexity_and_questions_first_seeds_are_answered(concert_singer, tmp_path):
    world = World()
    world.synthesized = ["SELECT Name FROM stadium ORDER BY Capacity DESC LIMIT 1", "SELECT count(*) FROM concert",
                         "DELETE FROM concert"]
    ctx, llm = context(world, tmp_path, variants=0, per_seed=3)
    seed = Seed(id="schema:concert_singer:simple", kind="schema", db=str(concert_singer), db_id="concert_singer",
                complexity="simple")
    recs = synthesis.invoke(seed.model_dump(exclude_none=True), context=ctx)["records"]
    assert [r.sql for r in recs] == world.synthesized and {r.origin for r in recs} == {"synthesized"}
    assert [r.dropped_by for r in recs] == [None, None, "write"] and recs[0].complexity == "simple"
    assert recs[0].usage.calls >= 3 + 5  # the seed's three synthesizer calls are charged to its first record

    world.first_questions = ["How many concerts are there?", "What is the meaning of life?"]
    world.answers = {"How many concerts are there?": "SELECT count(*) FROM concert",
                     "What is the meaning of life?": "SELECT meaning FROM life"}
    seed = Seed(id="questions:concert_singer", kind="questions", db=str(concert_singer), db_id="concert_singer")
    recs = synthesis.invoke(seed.model_dump(exclude_none=True), context=ctx)["records"]
    assert [r.origin for r in recs] == ["answered", "answered"]
    assert recs[0].kept and recs[0].question == "How many concerts are there?"
    assert recs[0].sql == "SELECT count(*) FROM concert" and recs[0].seed_question == recs[0].question
    # the inference graph could not answer the second (its SQL names a missing table, refinement repeats it)
    assert recs[1].dropped_by == "no_sql" and "inference graph found no SQL" in recs[1].drop_reason


def test_a_pair_keeps_its_question_and_its_variants_get_new_ones(concert_singer, tmp_path):
    world = World()
    ctx, llm = context(world, tmp_path, exec_runs=0)
    seed = Seed(id="pairs:1", kind="pair", db=str(concert_singer), db_id="concert_singer",
                sql="SELECT count(*) FROM singer", question="How many singers are there?", evidence="")
    recs = synthesis.invoke(seed.model_dump(exclude_none=True), context=ctx)["records"]
    assert [r.origin for r in recs] == ["seed", "variant"]
    assert recs[0].question == "How many singers are there?" and recs[0].question_candidates == []
    assert "item" in recs[1].question and all(r.kept for r in recs)
    assert recs[0].agreement is None and recs[0].execution_difficulty is None  # --exec-runs 0
    assert llm.calls.count("question") == 3 and llm.calls.count("generate") == 0


# ----------------------------------------------------------------------------- runs, exports, resume
def seed_file(tmp_path: Path, lines: list[str], name: str = "log.sql") -> Path:
    f = tmp_path / name
    f.write_text("".join(f"{sql}\t{db}\n" for sql, db in (ln.split("|") for ln in lines)), encoding="utf-8")
    return f


GOOD = ["SELECT Name FROM singer WHERE Age > 30|concert_singer",
        "SELECT count(*) FROM concert WHERE Year = '2014'|concert_singer",
        "SELECT PetType, avg(weight) FROM Pets GROUP BY PetType|pets_1"]


def runner_for(world: World, tmp_path: Path, out: Path, **options):
    from quorumsql.synthesis.runner import SynthesisRunner

    ctx, llm = context(world, tmp_path, **options)
    return SynthesisRunner(out, ctx, progress=False, log=lambda m: None), llm


def test_a_run_writes_records_exports_and_a_summary(spider_data, tmp_path):
    from quorumsql.agents.icl_pool import load_pool, read_pool
    from quorumsql.synthesis.store import read_records

    lines = [*GOOD, "DELETE FROM singer|concert_singer", "SELECT * FROM t|no_such_db"]
    seeds = read_seed_sql(seed_file(tmp_path, lines), DatabaseLocator(spider_data))
    out = tmp_path / "run"
    runner, llm = runner_for(World(), tmp_path, out, variants=0)
    result = runner.run(seeds)
    assert result.status == "finished" and result.done == 5 and result.done_now == 5
    records, warnings = read_records(out)
    assert warnings == [] and len(records) == 5
    by_seed = {r.seed_id: r for r in records}
    assert by_seed["log:4"].dropped_by == "write" and by_seed["log:5"].dropped_by == "database"
    kept = [r for r in records if r.kept]
    assert len(kept) == 3

    s = json.loads((out / "summary.json").read_text())
    assert (s["records"], s["kept"], s["seeds"]) == (5, 3, 5)
    assert s["dropped_by"] == {"database": 1, "write": 1}
    assert s["surviving"]["database"] == 4 and s["surviving"]["write"] == 3 and s["surviving"]["review"] == 3
    assert sum(s["difficulty"]["component"].values()) == 3 and s["difficulty"]["execution"] == {"easy": 3}
    total = sum(r.usage.prompt_tokens + r.usage.completion_tokens for r in records)
    assert total > 0 and s["tokens_per_kept"] == round(total / 3, 2) and s["tokens"]["calls"] == len(llm.calls)
    assert s["exports"] == {"sft": 3, "alpaca": 3, "icl_pool": 3, "no_schema": 0}

    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    ids = {r.id for r in kept}
    assert {e["id"] for e in sft} == ids
    for e in sft:
        roles = [m["role"] for m in e["messages"]]
        assert roles == ["system", "user", "assistant"]
        rec = next(r for r in kept if r.id == e["id"])
        user = e["messages"][1]["content"]
        assert f"【DB_ID】 {rec.db_id}" in user and rec.question in user  # the M-Schema prompt, question last
        assert e["messages"][2]["content"] == rec.cot and "step by step" in e["messages"][0]["content"]
        assert e["provenance"]["seed_id"] == rec.seed_id and e["provenance"]["judge_score"] == 1.0
    alpaca = [json.loads(line) for line in (out / "alpaca.jsonl").read_text().splitlines()]
    assert all(set(a) >= {"instruction", "input", "output", "provenance"} for a in alpaca)
    assert all(a["output"].startswith("```sql\n") for a in alpaca)

    # the ICL pool loads as it is: nothing skipped, and the generator's retrieval finds its examples
    examples, skipped, problems = read_pool(out / "icl_pool.jsonl")
    assert (len(examples), skipped, problems) == (3, 0, [])
    pool = load_pool(out / "icl_pool.jsonl", cache_dir=tmp_path / "cache", embedder=default_embedder(),
                     database_root=spider_data / "database")
    found = pool.nearest(examples[0].skeleton, exclude_db="pets_1", k=3)
    assert {e.example.db_id for e in found.examples} == {"concert_singer"}
    assert "singer" in pool.minimal_schema(next(e for e in examples if "singer" in e.sql))


def test_a_second_run_into_the_same_directory_needs_resume_and_the_same_options(spider_data, tmp_path):
    from quorumsql.errors import ConfigError

    seeds = read_seed_sql(seed_file(tmp_path, GOOD[:1]), DatabaseLocator(spider_data))
    out = tmp_path / "run"
    runner, _ = runner_for(World(), tmp_path, out, variants=0)
    runner.run(seeds)
    with pytest.raises(ConfigError, match="--resume"):
        runner.run(seeds)
    other, _ = runner_for(World(), tmp_path, out, variants=2)
    with pytest.raises(ConfigError, match="options.variants: 0 -> 2"):
        other.run(seeds, resume=True)
    again, llm = runner_for(World(), tmp_path, out, variants=0)
    assert again.run(seeds, resume=True).done_now == 0 and llm.calls == []


def test_a_crash_mid_run_then_resume_loses_no_kept_record(spider_data, tmp_path):
    from quorumsql.synthesis.store import RECORDS_FILE, read_records

    lines = [*GOOD, "SELECT Name FROM stadium|concert_singer", "SELECT count(*) FROM Student|pets_1"]
    seeds = read_seed_sql(seed_file(tmp_path, lines), DatabaseLocator(spider_data))
    out = tmp_path / "run"
    runner, _ = runner_for(World(), tmp_path, out)  # one variant per seed: two records a seed

    class Interrupting:  # the real graph, interrupted (Ctrl-C, SIGTERM) on the fourth seed
        def __init__(self):
            self.n = 0

        def invoke(self, seed, context):
            self.n += 1
            if self.n == 4:
                raise KeyboardInterrupt
            return synthesis.invoke(seed, context=context)

    runner.graph = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        runner.run(seeds)
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    first, _ = read_records(out)
    assert {r.seed_id for r in first} == {"log:1", "log:2", "log:3"} and len(first) == 6
    kept_before = {r.id: r.model_dump(mode="json") for r in first if r.kept}
    assert len(kept_before) == 6
    # and the worst case: a kill -9 in the middle of a seed's records, the last line half written
    lines_now = (out / RECORDS_FILE).read_text().splitlines(keepends=True)
    partial = json.loads(lines_now[0]) | {"seed_id": "log:4", "id": "log:4#0", "attempt": "dead", "seed_records": 2}
    with open(out / RECORDS_FILE, "a") as fh:
        fh.write(json.dumps(partial) + "\n" + json.dumps(partial | {"id": "log:4#1"})[:57])

    resumed, llm = runner_for(World(), tmp_path, out)
    result = resumed.run(seeds, resume=True)
    assert result.status == "finished" and result.done_now == 2 and result.done == 5
    assert any("dropped a partial last line" in w for w in result.warnings)
    after, _ = read_records(out)
    assert {r.seed_id for r in after} == {f"log:{i}" for i in range(1, 6)}
    now = {r.id: r.model_dump(mode="json") for r in after}
    for rid, rec in kept_before.items():  # every record kept before the crash is still there, as it was
        batch_fields = {"cluster", "uncertainty", "review_selected", "duplicate_of", "dropped_by", "drop_reason",
                        "status"}
        assert {k: v for k, v in now[rid].items() if k not in batch_fields} == \
               {k: v for k, v in rec.items() if k not in batch_fields}
    assert not any(r.attempt == "dead" for r in after)  # the half-written seed was done again
    assert llm.calls.count("vary") == 2  # only the two seeds not done were synthesized again


def test_model_errors_are_not_recorded_and_stop_the_run_after_a_few(spider_data, tmp_path):
    from quorumsql.synthesis.store import read_records

    seeds = read_seed_sql(seed_file(tmp_path, [*GOOD, *GOOD]), DatabaseLocator(spider_data))
    out = tmp_path / "run"
    world = World()
    world.down.add("question")
    runner, _ = runner_for(world, tmp_path, out, variants=0)
    runner.max_model_failures = 2
    result = runner.run(seeds)
    assert result.status == "stopped" and result.model_failures == 2 and result.done == 0
    assert read_records(out)[0] == []
    world.down.clear()
    result = runner.run(seeds, resume=True)
    assert result.status == "finished" and result.done == 6


def test_an_unexpected_error_in_one_seed_is_recorded_and_the_run_goes_on(spider_data, tmp_path, monkeypatch):
    from quorumsql.agents import difficulty
    from quorumsql.synthesis.store import read_records

    seeds = read_seed_sql(seed_file(tmp_path, GOOD), DatabaseLocator(spider_data))
    real = difficulty.component_difficulty

    def flaky(sql, dialect="sqlite"):
        if "avg(weight)" in sql:
            raise ZeroDivisionError("a bug in a grader")
        return real(sql, dialect)

    monkeypatch.setattr(difficulty, "component_difficulty", flaky)
    out = tmp_path / "run"
    runner, _ = runner_for(World(), tmp_path, out, variants=0)
    result = runner.run(seeds)
    assert result.status == "finished" and result.crashes == 1
    records = {r.seed_id: r for r in read_records(out)[0]}
    assert records["log:3"].dropped_by == "crash" and "ZeroDivisionError: a bug" in records["log:3"].drop_reason
    assert records["log:1"].kept and records["log:2"].kept


# ----------------------------------------------------------------------------- batch steps
def test_near_duplicates_are_dropped_and_each_cluster_gets_a_review_pick(spider_data, tmp_path):
    from quorumsql.synthesis.store import read_records

    lines = [GOOD[0], GOOD[1], GOOD[0], GOOD[2], "SELECT Name, Capacity FROM stadium|concert_singer"]
    seeds = read_seed_sql(seed_file(tmp_path, lines), DatabaseLocator(spider_data))
    out = tmp_path / "run"
    world = World()
    world.wrong_answers.add("SELECT count(*) FROM concert WHERE Year = '2014'")  # agreement 0: most uncertain
    runner, _ = runner_for(world, tmp_path, out, variants=0)
    runner.clusters = 2
    runner.run(seeds)
    records = by_id(read_records(out)[0])
    # the same SQL twice, with the same question: the later copy is a near-duplicate of the first
    assert records["log:3#0"].dropped_by == "duplicate" and records["log:3#0"].duplicate_of == "log:1#0"
    assert "cosine 1.000" in records["log:3#0"].drop_reason
    pool = [r for r in records.values() if r.kept]
    assert len(pool) == 4 and all(r.cluster in (0, 1) and r.uncertainty is not None for r in pool)
    picked = [r for r in pool if r.review_selected]
    assert len(picked) == 2 and {r.cluster for r in picked} == {0, 1}
    for r in picked:  # the most uncertain record of its cluster
        assert r.uncertainty == max(x.uncertainty for x in pool if x.cluster == r.cluster)
    assert records["log:2#0"].review_selected and records["log:2#0"].uncertainty == 1.0


# ----------------------------------------------------------------------------- review
def test_review_round_trip_relabels_records_and_measures_the_judge(spider_data, tmp_path):
    from quorumsql.synthesis.runner import REVIEW_FILE
    from quorumsql.synthesis.store import read_records

    lines = [*GOOD, "SELECT Name FROM stadium WHERE Capacity > 5000|concert_singer",
             "SELECT Song_Name FROM singer WHERE Is_male = 'F'|concert_singer", "DELETE FROM singer|concert_singer"]
    seeds = read_seed_sql(seed_file(tmp_path, lines), DatabaseLocator(spider_data))
    out = tmp_path / "run"
    world = World()
    world.bad.add("SELECT Song_Name FROM singer WHERE Is_male = 'F'")  # the judge drops it
    runner, _ = runner_for(world, tmp_path, out, variants=0)
    runner.clusters = 6
    runner.run(seeds)
    n, path = runner.review_write()
    assert path == out / REVIEW_FILE
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(rows) == n == 5  # four kept records and the one the judge dropped; never the DELETE
    assert set(rows[0]) >= {"id", "db_id", "question", "evidence", "sql", "judge_score", "verdict", "fixed_sql"}
    ids = [r["id"] for r in rows]
    assert "log:5#0" in ids and "log:6#0" not in ids
    verdicts = {"log:1#0": ("correct", ""), "log:2#0": ("WRONG", ""),
                "log:3#0": ("fixed", "SELECT PetType, max(weight) FROM Pets GROUP BY PetType"),
                "log:4#0": ("fixed", "SELECT Name FROM stadium WHERE nope > 1"),  # does not run: rejected
                "log:5#0": ("correct", "")}  # a pair the judge dropped, confirmed by the reviewer
    for r in rows:
        r["verdict"], r["fixed_sql"] = verdicts[r["id"]]
    rows.append({**rows[0], "id": "log:99#0", "verdict": "correct"})  # unknown id
    rows.append({**rows[0], "id": "", "verdict": "wrong"})  # missing id
    rows.append({**rows[0], "id": "log:6#0", "verdict": "correct"})  # dropped before the judge
    rows = [r for r in rows if r["id"] != "log:4#0"] + [next(r for r in rows if r["id"] == "log:4#0")]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    kept_before = {r.id for r in read_records(out)[0] if r.kept}

    outcome = runner.review_read()
    assert outcome.applied == {"correct": 2, "wrong": 1, "fixed": 1}
    reasons = {r.id: r.reason for r in outcome.rejected}
    assert set(reasons) == {"log:99#0", "", "log:4#0", "log:6#0"}
    assert "no record" in reasons["log:99#0"] and "no id" in reasons[""]
    assert "execution filter (error" in reasons["log:4#0"] and "before the judge" in reasons["log:6#0"]
    records = by_id(read_records(out)[0])
    assert records["log:1#0"].review == "correct" and records["log:1#0"].kept
    assert records["log:2#0"].dropped_by == "review" and records["log:2#0"].review == "wrong"
    fixed = records["log:3#0"]
    assert fixed.sql.startswith("SELECT PetType, max(weight)") and fixed.sql_before_review == GOOD[2].split("|")[0]
    assert fixed.cot is None and fixed.agreement is None and fixed.component_difficulty
    assert records["log:4#0"].kept and records["log:4#0"].review is None  # the rejected fix changed nothing
    assert records["log:5#0"].kept and records["log:5#0"].review == "correct"  # the reviewer overrules the judge
    # nothing kept is lost, except what the reviewer marked wrong
    assert {r.id for r in records.values() if r.kept} == (kept_before - {"log:2#0"}) | {"log:5#0"}
    pool = [json.loads(line) for line in (out / "icl_pool.jsonl").read_text().splitlines()]
    assert {p["id"] for p in pool} == {"log:1#0", "log:3#0", "log:4#0", "log:5#0"}
    assert next(p for p in pool if p["id"] == "log:3#0")["query"] == fixed.sql
    assert next(p for p in pool if p["id"] == "log:5#0")["provenance"]["review"] == "correct"
    # the judge scored 1.0 on log:1 (correct), log:2 (wrong), log:3 (fixed) and 0.0 on log:5 (correct)
    cal = outcome.calibration
    assert (cal.n, cal.positives, cal.threshold) == (4, 2, 0.5)
    assert cal.accuracy == 0.25 and cal.auc == 0.25
    assert cal.best_threshold == 0.0 and cal.best_accuracy == 0.5
    report = json.loads((out / "review_report.json").read_text())
    assert report["calibration"]["auc"] == 0.25 and len(report["rejected"]) == 4
    # reading the same CSV again changes nothing
    again = runner.review_read()
    assert again.updated == [] and again.applied == outcome.applied


def test_a_csv_without_the_review_columns_is_one_clear_error(tmp_path):
    from quorumsql.errors import InputError
    from quorumsql.synthesis.review import read_review_csv

    f = tmp_path / "r.csv"
    f.write_text("name,score\nx,1\n", encoding="utf-8")
    with pytest.raises(InputError, match="needs the columns id and verdict"):
        read_review_csv(f)
    with pytest.raises(InputError, match="not found"):
        read_review_csv(tmp_path / "missing.csv")


@pytest.mark.parametrize("scores, correct, auc", [
    ([0.9, 0.8, 0.2, 0.1], [True, True, False, False], 1.0),
    ([0.9, 0.8, 0.2, 0.1], [False, False, True, True], 0.0),
    ([0.5, 0.5, 0.5, 0.5], [True, False, True, False], 0.5),
    ([0.9, 0.4, 0.6, 0.1], [True, True, False, False], 0.75),
])
def test_judge_calibration_auc_and_best_threshold(scores, correct, auc):
    from quorumsql.synthesis.review import calibrate

    cal = calibrate(scores, correct, 0.5)
    assert cal.auc == auc
    # brute force: the best accuracy over every threshold is what the calibration reports
    best = max(sum((s >= t) == c for s, c in zip(scores, correct)) / len(scores) for t in [*scores, 2.0])
    assert cal.best_accuracy == best
    assert cal.accuracy == sum((s >= 0.5) == c for s, c in zip(scores, correct)) / len(scores)


# ----------------------------------------------------------------------------- the command line
def test_the_synth_command_and_review_round_trip(spider_data, tmp_path, monkeypatch, capsys):
    from quorumsql.cli import main

    world = World()
    monkeypatch.setattr("quorumsql.llm.chat.get_chat_model", lambda settings=None, role="generator", **kw:
                        Scripted(script=world))
    monkeypatch.setenv("QUORUMSQL_CACHE_DIR", str(tmp_path / "cache"))
    f = seed_file(tmp_path, [*GOOD, "SELECT * FROM nowhere|concert_singer"])
    out = tmp_path / "synth"
    args = ["synth", "--seed-sql", str(f), "--data", str(spider_data), "--limit", "3", "--out", str(out),
            "--exec-runs", "2", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "all 3 seeds done" in printed and "exports: sft" in printed
    assert {p.name for p in out.iterdir()} >= {"records.jsonl", "sft.jsonl", "alpaca.jsonl", "icl_pool.jsonl",
                                               "summary.json", "run.json"}
    assert json.loads((out / "summary.json").read_text())["seeds"] == 3
    # --limit grows on --resume (incremental): only the new seed runs
    assert main([*args[:6], "4", *args[7:], "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["dropped_by"] == {"missing_table": 1}
    assert main(["synth", "review", str(out), "--write"]) == 0
    csv_path = out / "review.csv"
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert len(rows) >= 2
    rows[0]["verdict"] = "wrong"
    with open(csv_path, "w", encoding="utf-8", newline="") as fh:  # the person deleted the last row
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[:-1])
    capsys.readouterr()
    assert main(["synth", "review", str(out), "--read"]) == 0
    printed = capsys.readouterr().out
    assert "applied wrong 1" in printed and f"{len(rows) - 2} left blank" in printed
    assert "1 selected record(s) missing from the CSV" in printed
    report = json.loads((out / "review_report.json").read_text())
    assert report["missing"] == [rows[-1]["id"]]
    pool_ids = {json.loads(line)["id"] for line in (out / "icl_pool.jsonl").read_text().splitlines()}
    assert rows[0]["id"] not in pool_ids and len(pool_ids) == 5  # 3 good seeds + their variants, less one


@pytest.mark.parametrize("argv, message", [
    (["synth", "--seed-sql", "x.sql"], "--out DIR is required"),
    (["synth", "--seed-sql", "/nonexistent.sql", "--db", "/nonexistent.sqlite", "--out", "o"], "no such SQLite file"),
    (["synth", "--seed-sql", "/nonexistent.sql", "--data", str(SPIDER), "--out", "o"], "seed SQL file not found"),
    (["synth", "--data", str(SPIDER), "--complexity", "trivial", "--db-ids", "pets_1", "--out", "o"],
     "unknown complexity"),
    (["synth", "--seed-sql", "x.sql", "--out", "o"], "needs --data DIR or --db"),
    (["synth", "--data", str(SPIDER), "--variants", "-1", "--out", "o"], "invalid option: --variants"),
    (["synth", "review", "/nonexistent-run", "--read"], "is not a folder"),
])
def test_bad_command_lines_give_one_error_line(argv, message, capsys, tmp_path, monkeypatch):
    from quorumsql.cli import main

    monkeypatch.chdir(tmp_path)
    require_shared(SPIDER / "database")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_langgraph_json_lists_the_synthesis_graph():
    from langgraph.graph.state import CompiledStateGraph

    spec = json.loads((REPO / "langgraph.json").read_text())["graphs"]
    assert spec["inference"] == "./quorumsql/graph/inference.py:inference"
    module, attr = spec["synthesis"].split(":")
    assert module == "./quorumsql/graph/synthesis.py" and attr == "synthesis"
    assert isinstance(synthesis, CompiledStateGraph)
    assert {"seed", "execute", "variation", "questions", "judge", "cot", "difficulty", "record"} <= set(
        synthesis.get_graph().nodes)


def test_a_seeded_sample_of_seed_sql_spreads_over_many_databases():
    import argparse

    from quorumsql.synthesis.cli import build_seeds

    path = require_shared(SPIDER / "train_gold.sql")

    def seeds(**kw):
        ns = dict(seed_sql=str(path), pairs=None, data=str(SPIDER), db=None, db_ids=None, limit=None, sample=None,
                  seed=0, questions_first=False, complexity=None)
        ns.update(kw)
        return build_seeds(argparse.Namespace(**ns))[0]

    first = seeds(limit=50)
    drawn = seeds(sample=50)
    assert len(drawn) == 50 and [s.line for s in drawn] == sorted(s.line for s in drawn)
    assert len({s.db_id for s in first}) <= 2 < 20 <= len({s.db_id for s in drawn})
    assert [s.line for s in seeds(sample=50)] == [s.line for s in drawn]  # the same seed, the same sample
    assert [s.line for s in seeds(sample=50, seed=1)] != [s.line for s in drawn]
