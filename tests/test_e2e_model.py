"""End to end with the real embedded model (Qwen2.5-Coder-1.5B on llama.cpp): no fakes.

Slow (a few seconds per question on a 2-core CPU): marked ``e2e``; ``make test-fast`` skips them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quorumsql import Pipeline, answer, open_database
from quorumsql.benchmarks import Evaluator
from quorumsql.config import Settings
from quorumsql.demo import create_demo_database, expected_demo_answer
from tests.conftest import spider_db

pytestmark = pytest.mark.e2e


def test_how_many_singers_with_the_embedded_default(concert_singer, embedded_server):
    settings = Settings.load(llm_base_url="")  # no endpoint configured: the embedded default model
    ans = answer("How many singers do we have?", str(concert_singer), settings=settings, preset="fast")
    assert ans.rows == [(6,)]
    assert ans.usage.total.calls >= 1 and ans.usage.total.prompt_tokens > 100
    assert ans.usage.total.completion_tokens > 0


# Spider dev questions (index in ../shared/data/spider/dev.json) across five databases.
SPIDER_QUESTIONS = [0, 2, 47, 89, 261, 381, 411, 429]


def test_spider_dev_questions(spider_data, embedded_server):
    dev = json.loads((spider_data / "dev.json").read_text())
    pipe = Pipeline(Settings.load(llm_base_url=""), preset="fast")
    scorer = Evaluator("spider")  # the harness's own Spider EX (test-suite semantics)
    outcomes = {}
    for i in SPIDER_QUESTIONS:
        q = dev[i]
        path = spider_db(q["db_id"])
        ans = pipe.answer(q["question"], path)
        scored = scorer.evaluate(open_database(path), ans.sql, q["query"])
        assert scored.gold_status == "ok", q["query"]
        outcomes[i] = (scored.metrics["ex"] == 1, ans.sql)
    solved = [i for i, (ok, _) in outcomes.items() if ok]
    print({i: o for i, o in outcomes.items()})
    # measured: 8 of 8 with preset fast (greedy decoding); one miss is tolerated because llama.cpp
    # builds on other CPUs may round differently)
    assert len(solved) >= len(SPIDER_QUESTIONS) - 1, outcomes


def test_cli_ask_json_with_the_real_model(concert_singer, embedded_env):
    proc = subprocess.run(
        [sys.executable, "-m", "quorumsql.cli", "ask", str(concert_singer), "How many singers do we have?",
         "--preset", "fast", "--json"],
        capture_output=True, text=True, env=embedded_env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["rows"] == [[6]] and doc["sql"].lower().startswith("select")
    assert doc["candidates"][0]["status"] == "ok" and doc["usage"]["total"]["calls"] >= 1


def test_demo_command_answers_correctly(tmp_path, embedded_env):
    db = tmp_path / "bike_coop.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "quorumsql.cli", "demo", "--path", str(db), "--preset", "fast"],
        capture_output=True, text=True, env=embedded_env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name, count in expected_demo_answer():
        line = next(line for line in proc.stdout.splitlines() if name in line)
        assert f" {count} " in line, line
    # and the demo database is the one the project creates
    assert open_database(create_demo_database(tmp_path / "again.sqlite")).execute(
        "SELECT count(*) FROM repair_job").rows == [(10,)]


def test_schema_linking_with_the_real_model(spider_data, embedded_server, tmp_path):
    """Keywords, retrieval and the draft run on the real model; the linked schema holds the gold columns."""
    from quorumsql.agents.linker import referenced_columns
    from quorumsql.config import Preset

    dev = json.loads((spider_data / "dev.json").read_text())
    preset = Preset(name="fast-linked", temperatures=[0.0], refine_rounds=2, linking=True)
    pipe = Pipeline(Settings.load(llm_base_url="", cache_dir=tmp_path), preset=preset)
    scorer = Evaluator("spider")
    solved = 0
    for i in (2, 89, 261):
        q = dev[i]
        path = spider_db(q["db_id"])
        ans = pipe.answer(q["question"], path)
        nodes = [e.node for e in ans.trace]
        assert nodes[:4] == ["context", "keywords", "retrieve", "link"], nodes
        link = next(e for e in ans.trace if e.node == "link")
        schema = open_database(path).schema()
        gold = referenced_columns(q["query"], schema)
        linked = {t.lower() for t in link.data["selection"]}
        assert {t.lower() for t in gold.tables} <= linked, (q["query"], link.data["selection"])
        solved += scorer.evaluate(open_database(path), ans.sql, q["query"]).metrics["ex"] == 1
    assert solved >= 2


# Spider dev questions over four databases for the balanced preset (index in dev.json).
BALANCED_QUESTIONS = [0, 89, 261, 429]


def test_balanced_preset_on_spider_questions(spider_data, embedded_server):
    dev = json.loads((spider_data / "dev.json").read_text())
    pipe = Pipeline(Settings.load(llm_base_url=""), preset="balanced")
    scorer = Evaluator("spider")
    outcomes = {}
    for i in BALANCED_QUESTIONS:
        q = dev[i]
        path = spider_db(q["db_id"])
        ans = pipe.answer(q["question"], path)
        # every planned candidate was generated, refined and voted on
        assert len(ans.candidates) >= len(pipe.preset.candidate_plan()), ans.candidates
        assert ans.confidence.candidates == len(ans.candidates) and 0 < ans.confidence.share <= 1
        # the call budget: one generation per candidate, at most two calls per refinement round
        plan = pipe.preset.candidate_plan()
        assert len(plan) <= ans.usage.total.calls <= len(plan) * (1 + 2 * pipe.preset.refine_rounds)
        outcomes[i] = (scorer.evaluate(open_database(path), ans.sql, q["query"]).metrics["ex"] == 1, ans.sql)
    print(outcomes)
    assert sum(ok for ok, _ in outcomes.values()) >= len(BALANCED_QUESTIONS) - 1, outcomes
