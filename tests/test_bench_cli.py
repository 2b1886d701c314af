"""``quorumsql bench`` as a user runs it: a real subprocess against an OpenAI-compatible endpoint.

The endpoint is a small local HTTP server speaking the chat-completions protocol (no model): it
answers the gold SQL for some questions and a wrong one for others, slowly enough that the run
can be killed (SIGKILL, no chance to clean up) in the middle and resumed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from quorumsql.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPIDER = ROOT.parent / "shared" / "data" / "spider"


class FakeOpenAI:
    """Chat-completions server: replies ```sql <answer>``` for the question found in the prompt."""

    def __init__(self, answers: dict[str, str], delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.asked: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                m = re.search(r"【Question】\n(.*)\Z", prompt, re.S) or re.search(r"-- Question: (.*)\Z", prompt, re.S)
                question = m.group(1).strip() if m else ""
                outer.asked[question] += 1
                time.sleep(outer.delay)
                sql = outer.answers.get(question, "SELECT 'wrong'")
                doc = {
                    "id": "cmpl-1", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"```sql\n{sql}\n```"}}],
                    "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 12,
                              "total_tokens": len(prompt) // 4 + 12},
                }
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def dev(spider_data):
    return json.loads((spider_data / "dev.json").read_text())


def cli_env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUMSQL_")}
    env.update(QUORUMSQL_LLM_BASE_URL=url, QUORUMSQL_LLM_MODEL="fake", QUORUMSQL_LLM_MAX_RETRIES="0",
               QUORUMSQL_LLM_TIMEOUT="10", QUORUMSQL_CACHE_DIR=str(tmp_path / "cache"))
    return env


def bench_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "quorumsql.cli", "bench", "--dataset", "spider", "--data", str(SPIDER),
            "--out", str(out), "--no-progress", *extra]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_kill_and_resume_then_report(tmp_path, dev, monkeypatch, capsys):
    # questions 0-5: the server knows the gold for the even ones
    answers = {dev[i]["question"]: dev[i]["query"] for i in range(0, 6, 2)}
    server = FakeOpenAI(answers, delay=0.25)
    try:
        env = cli_env(tmp_path, server.url)
        out = tmp_path / "runs" / "x"
        proc = subprocess.Popen(bench_cmd(out, "--preset", "fast", "--limit", "6"), env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results = out / "results.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if results.is_file() and len(results.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # no clean-up at all
        proc.wait(timeout=10)
        before = read_lines(results)
        assert 2 <= len(before) < 6
        meta = json.loads((out / "run.json").read_text())
        assert meta["status"] == "running" and meta["dataset"]["n_questions"] == 6
        assert meta["system"]["model"].startswith("fake @ http://127.0.0.1")
        assert meta["code"]["quorumsql"] and meta["dataset"]["hash"]

        resumed = subprocess.run(bench_cmd(out, "--preset", "fast", "--limit", "6", "--resume"), env=env,
                                 cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming: {len(before)} of 6 questions already done" in resumed.stderr
        after = read_lines(results)
        assert [r["id"] for r in after[: len(before)]] == [r["id"] for r in before]
        assert after[: len(before)] == before
        assert sorted(r["id"] for r in after) == [f"dev/{i}" for i in range(6)]
        for r in before:  # finished questions were not asked again
            assert server.asked[r["question"]] == 1
        ex = {r["id"]: r["metrics"]["ex"] for r in after}
        assert ex["dev/0"] == 1 and ex["dev/2"] == 1 and ex["dev/4"] == 1
        assert ex["dev/3"] == 0 and ex["dev/5"] == 0
        assert "EX" in resumed.stdout and "results:" in resumed.stdout
        assert "s answering (system time;" in resumed.stdout
        assert json.loads((out / "run.json").read_text())["status"] == "finished"
        assert all(r["usage"]["completion_tokens"] >= 12 for r in after)

        # without --resume the directory is protected (in-process from here on: faster)
        for key, value in env.items():
            if key.startswith("QUORUMSQL_"):
                monkeypatch.setenv(key, value)
        assert main(bench_cmd(out, "--preset", "fast", "--limit", "6")[3:]) == 2
        assert "--resume" in capsys.readouterr().err

        # the strongest baseline on the same questions, then the side-by-side report
        out_y = tmp_path / "runs" / "y"
        assert main(bench_cmd(out_y, "--baseline", "zs-ddl-rows", "--limit", "6")[3:]) == 0
        assert main(["report", str(out), str(out_y)]) == 0
        page = (out / "report.html").read_text()
        assert "<svg" in page and "zs-ddl-rows" in page
        assert (out / "report.md").is_file() and json.loads((out / "diff.json").read_text())["diffs"]
    finally:
        server.close()


def test_endpoint_down_stops_with_message_and_exit_code(tmp_path, dev, monkeypatch, capsys):
    server = FakeOpenAI({})
    url = server.url
    server.close()  # nothing listens there any more
    for key, value in cli_env(tmp_path, url).items():
        if key.startswith("QUORUMSQL_"):
            monkeypatch.setenv(key, value)
    out = tmp_path / "run"
    code = main(bench_cmd(out, "--baseline", "zs-ddl", "--limit", "5", "--max-model-failures", "2")[3:])
    res = capsys.readouterr()
    assert code == 3, res.err
    assert "unreachable" in res.err and "--resume" in res.out
    assert not (out / "results.jsonl").read_text().strip()
    assert json.loads((out / "run.json").read_text())["status"] == "stopped"


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["bench", "--dataset", "bird", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: no BIRD question file")
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
