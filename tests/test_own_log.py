"""The own-log benchmark protocol (issue 18) on the Spider dev databases: a twin-aware split,
a memory private to the run filled from the log part, and never the asked question's own pair
or a twin of it in a prompt.

Gold SQL runs on the real databases; the model is a local chat-completions server that copies
the SQL of the first example it is shown (so an example in the prompt is visible in the answer).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from quorumsql.agents.sql_text import result_key
from quorumsql.benchmarks.datasets import load_dataset
from quorumsql.benchmarks.own_log import check_split, split_own_log, sql_key
from quorumsql.cli import main
from quorumsql.db import open_database
from tests.test_bench_cli import cli_env

DBS = ["concert_singer", "pets_1", "flight_2"]


@pytest.fixture(scope="module")
def spider(spider_data):
    return load_dataset("spider", spider_data)


def keys(examples):
    """``{id: (normalised gold SQL, gold result key)}`` computed here, independently of the split."""
    out = {}
    for ex in examples:
        res = open_database(ex.db).try_execute(ex.gold_sql)
        out[ex.id] = (sql_key(ex.gold_sql), result_key(res.rows) if res.ok else None)
    return out


def test_the_split_keeps_twins_on_one_side(spider):
    everything = spider.select(db_ids=DBS)
    split = split_own_log(everything, 0.5, seed=0, open_db=open_database)
    check_split(split)
    assert sorted(e.id for e in split.log + split.test) == sorted(e.id for e in everything)
    known = keys(everything)
    for db_id in DBS:
        info = split.databases[db_id]
        log, test = set(info["log"]), set(info["test"])
        assert abs(len(log) - 0.5 * info["questions"]) <= info["largest_group"]
        log_sql = {known[i][0] for i in log}
        log_res = {known[i][1] for i in log} - {None}
        for i in test:  # no test question has a twin in the log, by SQL or by result
            assert known[i][0] not in log_sql and known[i][1] not in log_res
        # the log's pairs are what the memory will hold: human questions with their gold SQL
        assert len(split.pairs[db_id]) == len(log) - len(info["gold_failed"])
    # Spider's paraphrase pairs (same gold SQL) share a side
    first, second = everything[0], everything[1]
    assert first.gold_sql == second.gold_sql
    assert (first in split.log) == (second in split.log)
    # the same seed gives the same split; another seed another one
    again = split_own_log(everything, 0.5, seed=0, open_db=open_database)
    assert [e.id for e in again.log] == [e.id for e in split.log]
    assert [e.id for e in split_own_log(everything, 0.5, seed=1, open_db=open_database).log] != [e.id for e in split.log]


def _follow_first_example(prompt: str) -> str:
    m = re.search(r"Example 1\nQuestion: .*?\n```sql\n(.*?)\n```", prompt, re.S)
    return m.group(1) if m else "SELECT 'no example'"


class ExampleCopier:
    """A chat-completions server that answers the SQL of the first example in the prompt."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                outer.prompts.append(prompt)
                data = json.dumps({
                    "id": "c", "object": "chat.completion", "created": 0, "model": "fake",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": f"```sql\n{_follow_first_example(prompt)}\n```"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_bench_own_log_serves_the_log_and_never_the_asked_question(tmp_path, spider, monkeypatch, capsys):
    server = ExampleCopier()
    try:
        for key, value in cli_env(tmp_path, server.url).items():
            monkeypatch.setenv(key, value)
        preset = tmp_path / "memory.json"
        preset.write_text(json.dumps({"name": "memory", "generators": ["icl"], "temperatures": [0.0],
                                      "refine_rounds": 0}))
        out = tmp_path / "run"
        args = ["bench", "--dataset", "spider", "--data", spider.root, "--out", str(out), "--no-progress",
                "--db-ids", "concert_singer", "pets_1", "--own-log", "0.5", "--seed", "0", "--sample", "6"]
        assert main([*args, "--preset-file", str(preset)]) == 0
        printed = capsys.readouterr().out
        assert "own log:" in printed and "asking 6 test question(s)" in printed
        recorded = json.loads((out / "own_log.json").read_text())
        assert recorded["fraction"] == 0.5 and recorded["seed"] == 0 and recorded["source"] == "human"
        log_ids = {i for d in recorded["databases"].values() for i in d["log"]}
        test_ids = {i for d in recorded["databases"].values() for i in d["test"]}
        results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert len(results) == 6 and {r["id"] for r in results} <= test_ids
        by_id = {e.id: e for e in spider.examples}
        known = keys([by_id[i] for i in log_ids | {r["id"] for r in results}])
        log_questions = {by_id[i].question: i for i in log_ids}
        for r in results:
            shown = r["candidates"][0]["examples"]
            assert shown and all(e["source"] == "memory" for e in shown)
            for e in shown:  # every example is a log pair of the asked database, never a twin
                served = log_questions[e["question"]]
                assert by_id[served].db_id == r["db_id"]
                assert known[served][0] != known[r["id"]][0]
                assert known[served][1] is None or known[served][1] != known[r["id"]][1]
        assert all("Earlier questions about this same database" in p for p in server.prompts)
        # the user's own memories are never read or written by a benchmark
        assert not (tmp_path / "cache" / "index" / "examples").exists()
        # resuming with another split is refused before the memory is touched
        assert main([*args[:-6], "--own-log", "0.4", "--seed", "0", "--sample", "6", "--preset-file", str(preset),
                     "--resume"]) == 2
        assert "another --own-log split" in capsys.readouterr().err
        # the same questions with a zero-shot preset: the no-memory baseline, said so
        base = tmp_path / "base"
        assert main([*[a if a != str(out) else str(base) for a in args], "--preset", "fast"]) == 0
        assert "no-memory baseline" in capsys.readouterr().out
        assert [json.loads(x)["id"] for x in (base / "results.jsonl").read_text().splitlines()] == [r["id"] for r in results]
    finally:
        server.close()


def test_own_log_options_are_checked_first(tmp_path, capsys):
    base = ["bench", "--dataset", "spider", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*base, "--own-log", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert main([*base, "--own-log", "0.5", "--baseline", "zs-ddl"]) == 2
    assert "baseline" in capsys.readouterr().err
    assert main([*base, "--own-log", "0.5", "--own-log-source", "sql"]) == 2
    assert "next slice" in capsys.readouterr().err
