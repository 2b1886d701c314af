"""Loaders, runner, resumption, bad input, baselines and the LLM judge, with fake chat models.

BIRD-layout fixtures are built from real Spider databases in ``tmp_path`` (the BIRD .sqlite
files are not available): ``dev_databases/<db>/<db>.sqlite`` + ``dev.json`` +
``database_description/*.csv``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage

from quorumsql.api import Pipeline
from quorumsql.benchmarks import (
    BaselineSystem, BenchmarkRunner, Evaluator, Judge, PipelineSystem, load_bird, load_dataset,
    load_jsonl, load_spider, read_results,
)
from quorumsql.benchmarks.judge import parse_verdict
from quorumsql.config import Settings
from quorumsql.errors import ConfigError, InputError

SPIDER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spider"
BIRD_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bird_minidev_format"
SLOW_SQL = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
            "SELECT count(*) FROM c")


def sql_reply(sql: str) -> str:
    return f"```sql\n{sql}\n```"


class RecordingFake(FakeListChatModel):
    """FakeListChatModel that keeps the prompts it saw."""

    seen: list = []

    def _call(self, messages: list[BaseMessage], *args, **kwargs) -> str:
        self.seen.append(messages)
        return super()._call(messages, *args, **kwargs)


class DyingModel(FakeListChatModel):
    """Answers ``alive`` calls, then fails like an endpoint that went away."""

    alive: int = 0
    calls: int = 0

    def _call(self, messages, *args, **kwargs) -> str:
        self.calls += 1
        if self.calls > self.alive:
            raise ConnectionError("connection refused")
        return super()._call(messages, *args, **kwargs)


@pytest.fixture(scope="module")
def spider_root():
    if not (SPIDER / "dev.json").is_file():
        pytest.skip(f"Spider data not found at {SPIDER}")
    return SPIDER


def make_bird(tmp_path: Path, items: list[dict], dbs=("concert_singer", "pets_1")) -> Path:
    root = tmp_path / "bird"
    for db in dbs:
        target = root / "dev_databases" / db / f"{db}.sqlite"
        target.parent.mkdir(parents=True)
        shutil.copy(SPIDER / "database" / db / f"{db}.sqlite", target)
    desc = root / "dev_databases" / "concert_singer" / "database_description"
    desc.mkdir(parents=True)
    (desc / "singer.csv").write_text(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "Singer_ID,singer id,unique id of the singer,integer,\n"
        "Age,,age of the singer in years,integer,at the time of the concert\n",
        encoding="utf-8-sig",
    )
    (root / "dev.json").write_text(json.dumps(items))
    return root


BIRD_ITEMS = [
    {"question_id": 10, "db_id": "concert_singer", "question": "How many singers are there?",
     "evidence": "", "SQL": "SELECT count(*) FROM singer", "difficulty": "simple"},
    {"question_id": 11, "db_id": "concert_singer", "question": "List the singers' names.",
     "evidence": "names refer to singer.Name", "SQL": "SELECT Name FROM singer", "difficulty": "moderate"},
    {"question_id": 12, "db_id": "pets_1", "question": "How many pets?",
     "evidence": "", "SQL": SLOW_SQL, "difficulty": "challenging"},
    {"question_id": 13, "db_id": "pets_1", "question": "Average pet weight?",
     "evidence": "", "SQL": "SELECT avg(weight) FROM no_such_table", "difficulty": "moderate"},
    {"question_id": 14, "db_id": "missing_db", "question": "Anything?",
     "evidence": "", "SQL": "SELECT 1", "difficulty": "simple"},
]


def fake_pipeline(responses: list[str], llm=None) -> Pipeline:
    return Pipeline(Settings.load(), preset="fast", llm=llm or FakeListChatModel(responses=responses))


# ------------------------------------------------------------------------------ loaders
def test_spider_loader_reads_official_layout(spider_root):
    ds = load_spider(spider_root)
    assert len(ds.examples) == 485
    first = ds.examples[0]
    assert first.id == "dev/0" and first.db_id == "concert_singer"
    assert first.gold_sql == "SELECT count(*) FROM singer" and first.difficulty == "easy"
    assert Path(first.db).is_file()
    assert {e.difficulty for e in ds.examples} == {"easy", "medium", "hard", "extra"}


def test_selection_limit_sample_seed_db_ids(spider_root):
    ds = load_spider(spider_root)
    assert [e.id for e in ds.select(limit=3)] == ["dev/0", "dev/1", "dev/2"]
    s1, s2 = ds.select(sample=20, seed=0), ds.select(sample=20, seed=0)
    assert [e.id for e in s1] == [e.id for e in s2] and len(s1) == 20
    assert [e.id for e in ds.select(sample=20, seed=1)] != [e.id for e in s1]
    ids = [int(e.id.split("/")[1]) for e in s1]
    assert ids == sorted(ids)  # file order kept
    pets = ds.select(db_ids=["pets_1"], limit=5)
    assert len(pets) == 5 and {e.db_id for e in pets} == {"pets_1"}
    with pytest.raises(InputError, match="no_such_db"):
        ds.select(db_ids=["no_such_db"])


def test_bird_loader_on_minidev_and_descriptions():
    if not (BIRD_MINI / "mini_dev_sqlite.json").is_file():
        pytest.skip("BIRD mini-dev files not found")
    ds = load_bird(BIRD_MINI)
    assert len(ds.examples) == 500
    ex = ds.examples[0]
    assert ex.id == "1471" and ex.db_id == "debit_card_specializing" and ex.evidence
    assert ex.difficulty in {"simple", "moderate", "challenging"}
    assert ex.db.endswith("dev_databases/debit_card_specializing/debit_card_specializing.sqlite")
    assert len(ds.descriptions) == 11
    schools = ds.descriptions["california_schools"]
    assert any("county" in v.lower() for v in schools.values())


def test_jsonl_loader_skips_malformed_lines(tmp_path, spider_root):
    db = tmp_path / "singers.sqlite"
    shutil.copy(spider_root / "database" / "concert_singer" / "concert_singer.sqlite", db)
    path = tmp_path / "qs.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "a", "question": "How many singers?", "db": "singers.sqlite",
                    "sql": "SELECT count(*) FROM singer", "difficulty": "simple"}),
        '{"question": "broken", "db": ',
        json.dumps(["not", "an", "object"]),
        json.dumps({"question": "no database"}),
        json.dumps({"question": "Names?", "db_path": str(db), "gold_sql": "SELECT name FROM singer"}),
        json.dumps({"id": "a", "question": "dup", "db": "singers.sqlite"}),
        json.dumps({"id": "c", "question": "No gold here", "db": "singers.sqlite"}),
    ]) + "\n")
    ds = load_jsonl(path)
    assert [e.id for e in ds.examples] == ["a", "line/5", "c"]
    assert ds.examples[0].db == str(db) and ds.examples[0].difficulty == "simple"
    assert ds.examples[1].difficulty == "easy"  # computed from the gold SQL
    assert ds.examples[2].gold_sql is None
    assert len(ds.warnings) == 4 and "malformed JSON" in ds.warnings[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    with pytest.raises(InputError):
        load_jsonl(bad)


# ------------------------------------------------------------------------------- runner
def test_bird_layout_end_to_end_with_bad_gold_and_missing_db(tmp_path, spider_root):
    root = make_bird(tmp_path, BIRD_ITEMS)
    ds = load_dataset("bird", root)
    assert ("singer", "Age") in ds.descriptions["concert_singer"]
    answers = [
        sql_reply("SELECT count(*) FROM singer"),          # 10: correct
        sql_reply("SELECT Name, Age FROM singer"),          # 11: extra column -> wrong
        sql_reply("SELECT count(*) FROM pets"),             # 12: gold times out
        sql_reply("SELECT avg(weight) FROM pets"),          # 13: gold errors
    ]
    out = tmp_path / "run"
    runner = BenchmarkRunner(PipelineSystem(fake_pipeline(answers)), Evaluator("bird", timeout=0.5),
                             out, progress=False, log=lambda m: None)
    outcome = runner.run(ds.examples, dataset_info={"kind": "bird"})
    assert outcome.status == "incomplete" and outcome.done == 4 and outcome.skipped == 1
    recs = {r["id"]: r for r in read_results(out)[0]}
    assert recs["10"]["metrics"]["ex"] == 1 and recs["10"]["difficulty"] == "simple"
    assert recs["11"]["metrics"]["ex"] == 0 and 0 < recs["11"]["metrics"]["soft_f1"] < 1
    assert recs["12"]["gold_exec"]["status"] == "timeout" and recs["12"]["metrics"]["ex"] == 0
    assert recs["13"]["gold_exec"]["status"] == "error" and recs["13"]["metrics"]["ex"] == 0
    assert recs["14"]["status"] == "skipped" and "not found" in recs["14"]["error"]
    for r in list(recs.values())[:4]:
        assert r["llm_calls"] >= 1 and r["seconds"] > 0 and r["candidates"]
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "incomplete" and meta["dataset"]["n_questions"] == 5
    assert meta["system"]["system"] == "quorumsql-fast" and meta["code"]["quorumsql"]

    # the database appears; --resume answers only the skipped question
    target = root / "dev_databases" / "missing_db" / "missing_db.sqlite"
    target.parent.mkdir(parents=True)
    shutil.copy(spider_root / "database" / "pets_1" / "pets_1.sqlite", target)
    llm = RecordingFake(responses=[sql_reply("SELECT 1")])
    llm.seen = []
    runner = BenchmarkRunner(PipelineSystem(fake_pipeline([], llm=llm)), Evaluator("bird", timeout=0.5),
                             out, progress=False, log=lambda m: None)
    outcome = runner.run(ds.examples, resume=True, dataset_info={"kind": "bird"})
    assert outcome.status == "finished" and outcome.done_now == 1 and outcome.done == 5
    assert len(llm.seen) == 1 and "Anything?" in llm.seen[0][-1].content
    recs = {r["id"]: r for r in read_results(out)[0]}
    assert recs["14"]["status"] == "done" and recs["14"]["metrics"]["ex"] == 1


def test_dying_endpoint_stops_cleanly_and_resume_continues(tmp_path, spider_root):
    examples = load_spider(spider_root).select(limit=6)
    out = tmp_path / "run"
    logs: list[str] = []
    dying = DyingModel(responses=[sql_reply("SELECT count(*) FROM singer")], alive=2)
    runner = BenchmarkRunner(PipelineSystem(fake_pipeline([], llm=dying)), Evaluator("spider"), out,
                             progress=False, max_model_failures=3, log=logs.append)
    outcome = runner.run(examples)
    assert outcome.status == "stopped" and outcome.done == 2 and outcome.model_failures == 3
    assert "--resume" in outcome.message and "connection refused" in outcome.message
    assert sum("model error on question" in m for m in logs) == 3
    first = read_results(out)[0]
    assert [r["id"] for r in first] == ["dev/0", "dev/1"]
    assert json.loads((out / "run.json").read_text())["status"] == "stopped"

    # not resuming into an existing run is refused; resuming with other questions too
    with pytest.raises(ConfigError, match="--resume"):
        BenchmarkRunner(PipelineSystem(fake_pipeline(["x"])), Evaluator("spider"), out,
                        progress=False, log=logs.append).run(examples)
    with pytest.raises(ConfigError, match="other questions"):
        BenchmarkRunner(PipelineSystem(fake_pipeline(["x"])), Evaluator("spider"), out,
                        progress=False, log=logs.append).run(examples[:3], resume=True)

    # a killed writer left half a line behind: it is cut, and nothing finished is redone
    with open(out / "results.jsonl", "a") as fh:
        fh.write('{"id": "dev/2", "status": "do')
    llm = RecordingFake(responses=[sql_reply("SELECT count(*) FROM singer")])
    llm.seen = []
    outcome = BenchmarkRunner(PipelineSystem(fake_pipeline([], llm=llm)), Evaluator("spider"), out,
                              progress=False, log=logs.append).run(examples, resume=True)
    assert outcome.status == "finished" and outcome.done_now == 4 and outcome.done == 6
    assert len(llm.seen) == 4
    assert any("partial last line" in m for m in logs)
    recs, warnings = read_results(out)
    assert [r["id"] for r in recs] == [f"dev/{i}" for i in range(6)] and warnings == []
    assert recs[0] == first[0]  # untouched


def test_concurrency_runs_every_question_once(tmp_path, spider_root):
    examples = load_spider(spider_root).select(db_ids=["concert_singer"], limit=8)
    out = tmp_path / "run"
    system = BaselineSystem("zs-mschema", FakeListChatModel(responses=[sql_reply("SELECT count(*) FROM singer")]))
    outcome = BenchmarkRunner(system, Evaluator("spider"), out, concurrency=4, progress=False,
                              log=lambda m: None).run(examples)
    assert outcome.status == "finished"
    recs, _ = read_results(out)
    assert sorted(r["id"] for r in recs) == sorted(e.id for e in examples)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(line)["status"] == "done" for line in lines)


# ------------------------------------------------------------------------------ baselines
def test_baselines_prompts(spider_root, tmp_path):
    from quorumsql.db import open_database

    db = open_database(spider_root / "database" / "concert_singer" / "concert_singer.sqlite")
    prompts = {}
    for kind in ("zs-ddl", "zs-ddl-rows", "zs-mschema"):
        llm = RecordingFake(responses=["Here you go:\nSELECT count(*) FROM singer\n\nIt counts."])
        llm.seen = []
        system = BaselineSystem(kind, llm, descriptions={"concert_singer": {("singer", "Age"): "age in years"}})
        pred = system.predict("How many singers?", db, evidence="a hint", db_id="concert_singer")
        assert pred.sql == "SELECT count(*) FROM singer" and pred.usage.calls == 1
        prompts[kind] = "\n".join(m.content for m in llm.seen[0])
    assert "CREATE TABLE" in prompts["zs-ddl"] and "Using valid SQLite" in prompts["zs-ddl"]
    assert "-- Evidence: a hint" in prompts["zs-ddl"] and "only the SQL" not in prompts["zs-ddl"]
    assert "example rows" in prompts["zs-ddl-rows"] and "only the SQL" in prompts["zs-ddl-rows"]
    assert "Joe Sharp" in prompts["zs-ddl-rows"]  # a real row of singer
    assert "【DB_ID】 concert_singer" in prompts["zs-mschema"] and "age in years" in prompts["zs-mschema"]
    with pytest.raises(ValueError):
        BaselineSystem("zs-nonsense", FakeListChatModel(responses=["x"]))


# ---------------------------------------------------------------------------------- judge
def test_judge_verdict_parsing():
    assert parse_verdict("Looks right.\nVERDICT: YES") == 1
    assert parse_verdict("The filter differs.\nVERDICT: NO") == 0
    assert parse_verdict("verdict : **no**") == 0
    assert parse_verdict("Yes, it answers it.") == 1
    assert parse_verdict("I cannot tell.") is None


def test_judge_qse_sse_in_runner(tmp_path, spider_root):
    examples = load_spider(spider_root).select(limit=2)
    judge_llm = RecordingFake(responses=["Counts singers.\nVERDICT: YES", "Different table.\nVERDICT: NO"])
    judge_llm.seen = []
    system = BaselineSystem("zs-mschema", FakeListChatModel(responses=[sql_reply("SELECT count(*) FROM singer")]))
    out = tmp_path / "run"
    BenchmarkRunner(system, Evaluator("spider"), out, judge=Judge(judge_llm), progress=False,
                    log=lambda m: None).run(examples)
    recs, _ = read_results(out)
    # dev/0 and dev/1 have gold "SELECT count(*) FROM singer": SSE needs no model call
    assert [r["metrics"]["qse"] for r in recs] == [1, 0]
    assert [r["metrics"]["sse"] for r in recs] == [1, 1]
    assert len(judge_llm.seen) == 2
    qse_prompt = judge_llm.seen[0][-1].content
    assert "How many singers do we have?" in qse_prompt and "# Table: singer" in qse_prompt
    assert recs[1]["judge"]["qse"].startswith("Different table")

    sse_llm = RecordingFake(responses=["Same rows.\nVERDICT: YES"])
    sse_llm.seen = []
    v = Judge(sse_llm).sse("SELECT name FROM singer WHERE age > 29", "SELECT name FROM singer WHERE age >= 30")
    assert v.score == 1 and "SQL A (reference)" in sse_llm.seen[0][-1].content
    assert Judge(sse_llm).qse("q", None, "schema").score == 0
