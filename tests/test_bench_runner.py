"""Loaders, runner, resumption, bad input, baselines and the LLM judge, with fake chat models.

Crash safety: a kill at every byte of the last record, interruptions, a full disk, a second run
into the same directory and a resume with another configuration, with a scripted fake system.

BIRD-layout fixtures are built from real Spider databases in ``tmp_path`` (the BIRD .sqlite
files are not available): ``dev_databases/<db>/<db>.sqlite`` + ``dev.json`` +
``database_description/*.csv``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage

from quorumsql.api import Pipeline
from quorumsql.benchmarks import (
    BaselineSystem, BenchmarkRunner, Evaluator, Judge, PipelineSystem, load_bird, load_dataset,
    load_jsonl, load_spider, read_results,
)
from quorumsql.benchmarks import runner as runner_mod
from quorumsql.benchmarks.judge import parse_verdict
from quorumsql.benchmarks.report import SYSTEM_SECONDS_MEAN, load_run, markdown_report, summarize
from quorumsql.benchmarks.systems import Prediction
from quorumsql.config import Settings
from quorumsql.errors import ConfigError, InputError
from quorumsql.llm import Usage
from tests.conftest import require_shared, skip_or_fail

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


class ScriptedSystem:
    """A system under test that answers from a script: ``{question: sql}``.

    It records every question it is asked, sleeps ``sleep`` seconds per answer, reports no
    time of its own (``Prediction.seconds`` stays 0: the runner must measure), raises
    ``interrupt_on`` questions as a Ctrl-C would, and waits on ``gate`` when one is given.
    """

    def __init__(self, answers: dict[str, str], *, name: str = "scripted", sleep: float = 0.0,
                 model: str = "scripted-model @ http://127.0.0.1:8001/v1", interrupt_on: str | None = None,
                 gate: threading.Event | None = None) -> None:
        self.answers = answers
        self.name = name
        self.sleep = sleep
        self.model = model
        self.interrupt_on = interrupt_on
        self.gate = gate
        self.asked: list[str] = []

    def describe(self) -> dict:
        return {"system": self.name, "kind": "scripted", "model": self.model}

    def predict(self, question, db, *, evidence=None, db_id=""):
        self.asked.append(question)
        if question == self.interrupt_on:
            raise KeyboardInterrupt
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.sleep)
        sql = self.answers.get(question, "SELECT 'wrong'")
        return Prediction(sql=sql, candidates=[{"id": "c0", "sql": sql, "votes": 1}], agreement=1.0,
                          usage=Usage(calls=1, prompt_tokens=10, completion_tokens=5))


@pytest.fixture
def fixed_code_version(monkeypatch):
    """``code_version()`` runs git twice; the loops below start hundreds of runs."""
    monkeypatch.setattr(runner_mod, "code_version",
                        lambda: {"quorumsql": "test", "git_commit": None, "git_dirty": None})


def quiet_runner(system, out, logs=None, evaluator=None, **kwargs) -> BenchmarkRunner:
    return BenchmarkRunner(system, evaluator or Evaluator("spider"), out, progress=False,
                           log=(logs.append if logs is not None else (lambda m: None)), **kwargs)


@pytest.fixture(scope="module")
def spider_root():
    require_shared(SPIDER / "dev.json", "Spider dev.json")  # skips, or fails when CI is set
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
    require_shared(BIRD_MINI / "mini_dev_sqlite.json", "BIRD mini-dev questions")
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
    assert len(ds.warnings) == 4 and "not JSON" in ds.warnings[0]
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
    # the same model class in both sessions: resuming with another model is refused
    runner = BenchmarkRunner(PipelineSystem(fake_pipeline([], llm=RecordingFake(responses=answers))),
                             Evaluator("bird", timeout=0.5), out, progress=False, log=lambda m: None)
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
    llm = DyingModel(responses=[sql_reply("SELECT count(*) FROM singer")], alive=1000)  # back up
    outcome = BenchmarkRunner(PipelineSystem(fake_pipeline([], llm=llm)), Evaluator("spider"), out,
                              progress=False, log=logs.append).run(examples, resume=True)
    assert outcome.status == "finished" and outcome.done_now == 4 and outcome.done == 6
    assert llm.calls == 4
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


# ------------------------------------------------------------------- crash and resume safety
def three_questions(spider_root):
    """Three concert_singer counting questions (short records); the last carries multi-byte characters."""
    examples = [e for e in load_spider(spider_root).select(db_ids=["concert_singer"])
                if e.gold_sql.lower().startswith("select count(*)")][:3]
    examples[2] = examples[2].model_copy(update={"question": examples[2].question + " (âge, « chanteurs » ☕)"})
    return examples


def test_kill_at_every_byte_of_the_last_record(tmp_path, spider_root, fixed_code_version, monkeypatch):
    # what reaches the disk is tested below (writer, run.json); here only what the runner keeps,
    # so fsync is skipped to keep a thousand resumed runs fast
    monkeypatch.setattr(runner_mod.os, "fsync", lambda fd: None)
    examples = three_questions(spider_root)
    ids = [e.id for e in examples]
    # first session: dev/0 right, dev/1 wrong, dev/2 right
    script = {examples[0].question: examples[0].gold_sql, examples[1].question: "SELECT count(*) FROM stadium",
              examples[2].question: examples[2].gold_sql}
    pristine = tmp_path / "pristine"
    quiet_runner(ScriptedSystem(script), pristine).run(examples)
    data = (pristine / "results.jsonl").read_bytes()
    head_end = data.rstrip(b"\n").rfind(b"\n") + 1
    head, last = data[:head_end], data[head_end:]
    assert head.count(b"\n") == 2 and last.endswith(b"\n") and last.count(b"\n") == 1
    assert any(b >= 0x80 for b in last)  # cuts inside multi-byte characters are among the offsets
    assert [json.loads(line)["metrics"]["ex"] for line in data.splitlines()] == [1, 0, 1]
    killed_doc = json.loads((pristine / "run.json").read_text())
    killed_doc.update(status="running", counts={})
    # the resumed session answers dev/2 wrongly, so a redone question shows in the figures
    resume_script = {**script, examples[2].question: "SELECT 'wrong'"}

    work = tmp_path / "work"
    logs: list[str] = []
    system = ScriptedSystem(resume_script)
    runner = quiet_runner(system, work, logs)  # one runner (and open database) for every resume
    work.mkdir()
    for cut in range(len(last) + 1):  # the state a kill at this byte leaves behind
        (work / "results.jsonl").write_bytes(head + last[:cut])
        (work / "run.json").write_text(json.dumps(killed_doc))
        complete = cut >= len(last) - 1  # the whole JSON object reached the file
        logs.clear()
        system.asked.clear()
        outcome = runner.run(examples, resume=True)
        where = f"cut at byte {cut} of {len(last)}"

        after = (work / "results.jsonl").read_bytes()
        lines = after.splitlines(keepends=True)
        assert after.startswith(head), where  # earlier records untouched
        assert len(lines) == 3 and all(line.endswith(b"\n") for line in lines), where
        records = [json.loads(line) for line in lines]
        assert [r["id"] for r in records] == ids, where
        if complete:  # kept byte for byte, not asked again
            assert lines[2] == last and system.asked == [] and outcome.done_now == 0, where
        else:  # exactly the lost question is answered again, once
            assert system.asked == [examples[2].question] and outcome.done_now == 1, where
            assert records[2]["pred_sql"] == "SELECT 'wrong'", where

        # what the runner announced and counted is what the file holds
        assert [m for m in logs if m.startswith("resuming:")] == [
            f"resuming: {3 if complete else 2} of 3 questions already done"], where
        repairs = [m for m in logs if "results.jsonl" in m]
        if cut in (0, len(last)):
            assert repairs == [], where
        elif complete:
            assert len(repairs) == 1 and "added the newline" in repairs[0], where
        else:
            assert len(repairs) == 1 and f"dropped a partial last line of {cut} bytes" in repairs[0], where
        ex = [r["metrics"]["ex"] for r in records]
        assert ex == [1, 0, 1 if complete else 0], where
        assert outcome.status == "finished" and outcome.done == 3, where
        assert outcome.message == f"all 3 questions done, EX {100 * sum(ex) / 3:.1f}%", where
        meta = json.loads((work / "run.json").read_text())
        assert meta["status"] == "finished" and meta["counts"]["done"] == 3, where
        summary = summarize(load_run(work))
        assert summary["n"] == 3 and summary["ex"] == pytest.approx(100 * sum(ex) / 3), where


def test_repair_before_reading_keeps_a_complete_unterminated_record(tmp_path, spider_root, fixed_code_version):
    # the reported failure: all three records written, the last newline lost
    examples = three_questions(spider_root)
    out = tmp_path / "run"
    quiet_runner(ScriptedSystem({e.question: e.gold_sql for e in examples}), out).run(examples)
    path = out / "results.jsonl"
    path.write_bytes(path.read_bytes()[:-1])
    assert len(read_results(out)[0]) == 3  # a reader sees three results before the resume
    system = ScriptedSystem({})
    outcome = quiet_runner(system, out).run(examples, resume=True)
    assert outcome.message == "all 3 questions done, EX 100.0%" and system.asked == []
    assert len(path.read_bytes().splitlines()) == 3 and path.read_bytes().endswith(b"\n")
    assert len(read_results(out)[0]) == 3


def test_repair_tail_reads_only_the_end_of_a_long_file(tmp_path):
    # the tail is found by walking back from the end in blocks: a last line longer than a block
    path = tmp_path / "results.jsonl"
    first = json.dumps({"id": "a", "status": "done"}) + "\n"
    long_record = json.dumps({"id": "b", "status": "done", "pad": "x" * 200_000})
    path.write_text(first + long_record)
    assert "added the newline" in runner_mod.repair_results_tail(path)
    assert path.read_text() == first + long_record + "\n"
    assert runner_mod.repair_results_tail(path) is None
    path.write_text(first + long_record[:150_000])
    assert "of 150000 bytes" in runner_mod.repair_results_tail(path)
    assert path.read_text() == first
    path.write_text(long_record[:70_000])  # no newline at all: the whole file is the partial line
    runner_mod.repair_results_tail(path)
    assert path.read_bytes() == b""


def test_system_seconds_exclude_gold_execution_and_scoring(tmp_path, spider_root, monkeypatch, capsys):
    examples = load_spider(spider_root).select(db_ids=["concert_singer"], limit=2)
    real_evaluate = Evaluator.evaluate

    def slow_evaluate(self, db, pred_sql, gold_sql):  # scoring that takes 0.5 s
        time.sleep(0.5)
        return real_evaluate(self, db, pred_sql, gold_sql)

    monkeypatch.setattr(Evaluator, "evaluate", slow_evaluate)
    out = tmp_path / "run"
    system = ScriptedSystem({e.question: e.gold_sql for e in examples}, sleep=0.3)
    quiet_runner(system, out).run(examples)
    recs, _ = read_results(out)
    # with the 0.5 s of scoring counted, every figure below would be at least 0.8 s
    for r in recs:  # the system's own time only; the old field keeps the whole question
        assert 0.3 <= r["system_seconds"] < 0.6
        assert r["seconds"] >= r["system_seconds"] + 0.5
    run = load_run(out)
    s = summarize(run)
    assert 0.3 <= s["system_seconds"] < 0.6 and 0.3 <= s["system_seconds_median"] < 0.6
    assert s["seconds"] >= 0.8 and s["system_seconds_fallback"] == 0 and run.warnings == []
    row = next(line for line in markdown_report([run]).splitlines() if line.startswith(f"| {SYSTEM_SECONDS_MEAN}"))
    assert row.split("|")[2].strip() == f"{s['system_seconds']:.1f}"


def test_resume_refuses_a_changed_configuration(tmp_path, spider_root, fixed_code_version):
    examples = load_spider(spider_root).select(db_ids=["concert_singer"], limit=3)
    script = {e.question: e.gold_sql for e in examples}
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        quiet_runner(ScriptedSystem(script, interrupt_on=examples[2].question), out).run(examples)
    before = {name: (out / name).read_bytes() for name in ("results.jsonl", "run.json")}
    refused = [
        (dict(evaluator=Evaluator("bird")), "evaluation.primary_ex: 'spider' -> 'bird'"),
        (dict(evaluator=Evaluator("spider", keep_distinct=True)), "evaluation.keep_distinct: False -> True"),
        (dict(evaluator=Evaluator("spider", timeout=5.0)), "evaluation.timeout: 30.0 -> 5.0"),
        (dict(max_rows=10), "config.max_rows: 10000 -> 10"),
        (dict(system=ScriptedSystem(script, model="other-model @ http://127.0.0.1:8001/v1")),
         "system.model: 'scripted-model' -> 'other-model'"),
    ]
    for kwargs, difference in refused:
        system = kwargs.pop("system", ScriptedSystem(script))
        with pytest.raises(ConfigError, match="another configuration") as err:
            quiet_runner(system, out, **kwargs).run(examples, resume=True)
        assert difference in str(err.value) and system.asked == []
        assert {name: (out / name).read_bytes() for name in before} == before  # nothing touched
    # another endpoint address for the same model (a restarted server) and more threads are fine
    system = ScriptedSystem(script, model="scripted-model @ http://127.0.0.1:9999/v1")
    outcome = quiet_runner(system, out, concurrency=2).run(examples, resume=True)
    assert outcome.status == "finished" and system.asked == [examples[2].question]


def test_interrupted_run_records_the_counts_of_the_file(tmp_path, spider_root, fixed_code_version):
    examples = load_spider(spider_root).select(db_ids=["concert_singer"], limit=4)
    script = {e.question: e.gold_sql for e in examples}
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        quiet_runner(ScriptedSystem(script, interrupt_on=examples[2].question), out).run(examples)
    meta = json.loads((out / "run.json").read_text())
    lines = (out / "results.jsonl").read_text().splitlines()
    assert meta["status"] == "interrupted" and meta["counts"]["done"] == len(lines) == 2
    system = ScriptedSystem(script)
    outcome = quiet_runner(system, out).run(examples, resume=True)
    assert outcome.status == "finished" and system.asked == [e.question for e in examples[2:]]


def test_counts_only_the_selected_questions(tmp_path, spider_root, fixed_code_version):
    # run.json lost (or written by a version without a dataset hash): results of questions that
    # are not selected any more must not count as done
    examples = load_spider(spider_root).select(db_ids=["concert_singer"], limit=4)
    script = {e.question: e.gold_sql for e in examples}
    out = tmp_path / "run"
    quiet_runner(ScriptedSystem(script), out).run(examples[:3])
    (out / "run.json").unlink()
    system = ScriptedSystem(script)
    outcome = quiet_runner(system, out).run(examples[1:], resume=True)
    assert system.asked == [examples[3].question]
    assert outcome.status == "finished" and outcome.done == 3 and outcome.message.startswith("all 3 questions")
    assert json.loads((out / "run.json").read_text())["counts"]["done"] == 3


def test_a_second_run_into_the_same_directory_is_refused(tmp_path, spider_root, fixed_code_version):
    examples = load_spider(spider_root).select(db_ids=["concert_singer"], limit=2)
    script = {e.question: e.gold_sql for e in examples}
    out = tmp_path / "run"
    gate = threading.Event()
    first = ScriptedSystem(script, gate=gate)
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(quiet_runner(first, out).run(examples)))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not first.asked and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.asked  # the first run holds the directory
        second = ScriptedSystem(script)
        with pytest.raises(ConfigError, match=f"another benchmark run \\(pid {os.getpid()}\\) is writing"):
            quiet_runner(second, out).run(examples, resume=True)
        assert second.asked == []
    finally:
        gate.set()
        worker.join(10)
    assert outcomes[0].status == "finished"
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == [e.id for e in examples]
    # the lock went with the first run
    assert quiet_runner(ScriptedSystem(script), out).run(examples, resume=True).done_now == 0


def test_scoring_crash_is_not_recorded_and_resume_retries_it(tmp_path, spider_root, monkeypatch,
                                                            fixed_code_version):
    examples = load_spider(spider_root).select(db_ids=["concert_singer"], limit=3)
    script = {e.question: e.gold_sql for e in examples}
    real_evaluate = Evaluator.evaluate

    def flaky(self, db, pred_sql, gold_sql):
        if pred_sql == examples[1].gold_sql and threading.current_thread().name.startswith("bench"):
            raise RuntimeError("evaluator bug")
        return real_evaluate(self, db, pred_sql, gold_sql)

    examples[1] = examples[1].model_copy(update={"gold_sql": "SELECT name FROM singer"})
    script[examples[1].question] = "SELECT name FROM singer"
    monkeypatch.setattr(Evaluator, "evaluate", flaky)
    out, logs = tmp_path / "run", []
    outcome = quiet_runner(ScriptedSystem(script), out, logs).run(examples)
    assert outcome.status == "incomplete" and outcome.errors == 1 and outcome.done == 2
    assert "1 failed while being scored" in outcome.message
    assert any("RuntimeError: evaluator bug" in m and examples[1].id in m for m in logs)
    assert [r["id"] for r in read_results(out)[0]] == [examples[0].id, examples[2].id]
    monkeypatch.setattr(Evaluator, "evaluate", real_evaluate)
    system = ScriptedSystem(script)
    outcome = quiet_runner(system, out).run(examples, resume=True)
    assert outcome.status == "finished" and system.asked == [examples[1].question]


def test_disk_full_fails_cleanly_and_records_it(tmp_path, spider_root, fixed_code_version):
    if not os.path.exists("/dev/full"):
        skip_or_fail("/dev/full is needed to simulate a full disk")
    examples = load_spider(spider_root).select(db_ids=["concert_singer"], limit=2)
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(ConfigError, match="cannot write the results") as err:
        quiet_runner(ScriptedSystem({}), out).run(examples)
    assert "No space left" in str(err.value) and "--resume" in str(err.value)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["counts"]["done"] == 0 and "OSError" in meta["message"]


def test_result_writer_leaves_no_partial_line_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    writer = runner_mod.ResultWriter(path)
    writer.write({"id": "a", "status": "done"})
    size = path.stat().st_size

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(runner_mod.os, "fsync", failing_fsync)
        with pytest.raises(OSError):
            writer.write({"id": "b", "status": "done", "question": "é" * 100})
    assert path.stat().st_size == size  # cut back to the last whole record
    writer.write({"id": "c", "status": "done"})
    writer.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "c"]


def test_run_json_is_replaced_only_after_it_is_on_disk(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    target = tmp_path / "run.json"
    target.write_text('{"status": "old"}')
    monkeypatch.setattr(runner_mod.os, "fsync", fsync)
    monkeypatch.setattr(runner_mod.os, "replace", replace)
    runner_mod.write_json_atomic(target, {"status": "new"})
    monkeypatch.undo()
    assert events == [("fsync", str(tmp_path / "run.json.tmp")), ("replace", str(target)),
                      ("fsync", str(tmp_path))]
    assert json.loads(target.read_text()) == {"status": "new"} and not (tmp_path / "run.json.tmp").exists()


def test_hangup_interrupts_the_cli_cleanly_and_resume_finishes(tmp_path, spider_root):
    # a closed terminal (SIGHUP) ends `quorumsql bench` like Ctrl-C: exit 130, run.json says
    # "interrupted" with the count of results.jsonl, and --resume asks only what is missing
    from tests.test_bench_cli import FakeOpenAI, bench_cmd, cli_env

    dev = json.loads((spider_root / "dev.json").read_text())
    server = FakeOpenAI({dev[i]["question"]: dev[i]["query"] for i in range(6)}, delay=0.3)
    try:
        env = cli_env(tmp_path, server.url)
        out = tmp_path / "run"
        cmd = bench_cmd(out, "--baseline", "zs-mschema", "--limit", "6")
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results = out / "results.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if results.is_file() and len(results.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "--resume" in err
        lines = results.read_text().splitlines()
        meta = json.loads((out / "run.json").read_text())
        assert meta["status"] == "interrupted" and meta["counts"]["done"] == len(lines) < 6
        asked_before = sum(server.asked.values())

        resumed = subprocess.run([*cmd, "--resume"], env=env, cwd=tmp_path, capture_output=True, text=True,
                                 timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.startswith("all 6 questions done, EX 100.0%")
        assert sum(server.asked.values()) - asked_before == 6 - len(lines)
        assert sorted(json.loads(line)["id"] for line in results.read_text().splitlines()) == [
            f"dev/{i}" for i in range(6)]
    finally:
        server.close()


def test_a_pipeline_prediction_records_what_ablations_need(tmp_path):
    from quorumsql.benchmarks.systems import PipelineSystem
    from quorumsql.config import Preset
    from quorumsql.db import open_database
    from tests.conftest import spider_db

    db = open_database(spider_db("concert_singer"))
    # the model names the columns out of the question's order; output alignment reorders them
    preset = Preset(name="aligned", temperatures=[0.0, 0.7], refine_rounds=0, align_rules=["output_order"])
    sql = "SELECT Country, Name FROM singer"
    pipe = Pipeline(Settings.load(cache_dir=tmp_path / "cache"), preset=preset,
                    llm=FakeListChatModel(responses=[sql, sql]))
    pred = PipelineSystem(pipe).predict("What are the names and countries of the singers?", db)
    first, second = pred.candidates
    assert first["refined_sql"] == sql and first["sql"] != sql and "Name" in first["sql"].split(",")[0]
    assert second["duplicate_of"] == "c0" and pred.decided_by == "vote"
    assert first["usage"]["calls"] == 1 and second["usage"]["calls"] == 1
