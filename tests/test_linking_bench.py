"""``quorumsql bench --task linking``: recall / precision against the gold SQL, resumable."""

from __future__ import annotations

import json
import subprocess

from quorumsql.benchmarks.linking import score_linking, summarize_linking
from quorumsql.db import open_database
from tests.conftest import spider_db
from tests.test_bench_cli import FakeOpenAI, bench_cmd, cli_env, read_lines


def test_scores_count_what_the_generator_sees():
    schema = open_database(spider_db("concert_singer")).schema()
    gold = "SELECT T2.Name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.Singer_ID = T2.Singer_ID"
    exact = score_linking(schema, gold, {"singer": ["Name"], "singer_in_concert": []}, "sqlite")
    # seen: singer.Singer_ID (key), singer.Name, singer_in_concert.Singer_ID + concert_ID (keys)
    assert exact["column_recall"] == 1.0 and exact["table_recall"] == 1.0
    assert exact["seen_columns"] == 4 and exact["column_precision"] == 3 / 4
    partial = score_linking(schema, gold, {"singer": ["Name", "Age", "Country"]}, "sqlite")
    assert partial["table_recall"] == 0.5 and partial["missed"] == ["singer_in_concert.singer_id"]
    assert partial["column_recall"] == 2 / 3
    nothing = score_linking(schema, "SELECT count(*) FROM singer", {"singer": []}, "sqlite")
    assert nothing["column_recall"] is None and nothing["column_precision"] is None and nothing["table_recall"] == 1.0
    assert score_linking(schema, "SELEC nope", {"singer": []}, "sqlite") is None


def test_summary_averages_per_question():
    rows = [
        {"status": "done", "column_recall": 1.0, "column_precision": 0.5, "table_recall": 1.0, "total_columns": 40,
         "linked_columns": 4, "seen_columns": 6, "prompt_tokens_linked": 300, "prompt_tokens_full": 900,
         "llm_calls": 2, "seconds": 3.0},
        {"status": "done", "column_recall": 0.5, "column_precision": 1.0, "table_recall": 0.5, "total_columns": 10,
         "linked_columns": 2, "seen_columns": 2, "prompt_tokens_linked": 200, "prompt_tokens_full": 250,
         "llm_calls": 2, "seconds": 1.0},
        {"status": "error", "error": "boom"},
    ]
    s = summarize_linking(rows)
    assert s["n"] == 2 and s["errors"] == 1
    assert s["column_recall"] == 0.75 and s["column_precision"] == 0.75 and s["all_gold_linked"] == 0.5
    assert s["big_questions"] == 1 and s["token_ratio_big"] == 300 / 900


def test_bench_task_linking_runs_and_resumes(tmp_path, spider_data):
    dev = json.loads((spider_data / "dev.json").read_text())
    answers = {dev[i]["question"]: dev[i]["query"] for i in range(8)}  # the draft is the gold SQL
    server = FakeOpenAI(answers)
    try:
        env = cli_env(tmp_path, server.url)
        out = tmp_path / "run"
        first = subprocess.run(bench_cmd(out, "--task", "linking", "--limit", "2", "--preset", "fast"),
                               capture_output=True, text=True, env=env, timeout=600)
        assert first.returncode == 0, first.stderr
        assert "table recall 100.0%" in first.stdout  # count(*) questions: no column to recall
        records = read_lines(out / "fast" / "linking.jsonl")
        assert len(records) == 2 and all(r["draft_sql"] == dev[i]["query"] for i, r in enumerate(records))
        again = subprocess.run(bench_cmd(out, "--task", "linking", "--limit", "8", "--preset", "fast", "--resume"),
                               capture_output=True, text=True, env=env, timeout=600)
        assert again.returncode == 0, again.stderr
        assert "column recall 100.0%" in again.stdout and "8 questions" in again.stdout
        records = read_lines(out / "fast" / "linking.jsonl")
        assert len(records) == 8 and len({r["id"] for r in records}) == 8  # the first two were not redone
        # the same policy, rescored from the records without the model: the same scores
        asked = sum(server.asked.values())
        rescored = subprocess.run(bench_cmd(out, "--task", "linking", "--limit", "8", "--preset", "fast", "--rescore"),
                                  capture_output=True, text=True, env=env, timeout=600)
        assert rescored.returncode == 0, rescored.stderr
        assert sum(server.asked.values()) == asked  # no model call
        again_records = read_lines(out / "fast" / "linking-rescored.jsonl")
        assert [r.get("column_recall") for r in again_records] == [r.get("column_recall") for r in records]
        assert [r["selection"] for r in again_records] == [r["selection"] for r in records]
        assert all(r.get("rescored") for r in again_records if r["status"] == "done")
        refused = subprocess.run(bench_cmd(out, "--task", "linking", "--limit", "8", "--preset", "fast"),
                                 capture_output=True, text=True, env=env, timeout=600)
        assert refused.returncode == 2 and "--resume" in refused.stderr
    finally:
        server.close()
