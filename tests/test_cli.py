"""The quorumsql command: clear errors, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

from quorumsql.cli import answer_json, main
from quorumsql.records import Answer


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "quorumsql.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_missing_database_is_one_clear_line(tmp_path):
    proc = _run("ask", str(tmp_path / "nope.sqlite"), "How many?")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: SQLite database not found: {tmp_path / 'nope.sqlite'}"
    assert "Traceback" not in proc.stderr


def test_model_endpoint_down(concert_singer):
    env = dict(os.environ, QUORUMSQL_LLM_BASE_URL="http://127.0.0.1:9/v1", QUORUMSQL_LLM_MAX_RETRIES="0")
    proc = _run("ask", str(concert_singer), "How many singers?", "--preset", "fast", env=env)
    assert proc.returncode == 2 and "unreachable" in proc.stderr and "Traceback" not in proc.stderr


def test_empty_question(concert_singer, capsys):
    assert main(["ask", str(concert_singer), "  "]) == 2
    assert "the question is empty" in capsys.readouterr().err


def test_model_status_names_the_endpoint(capsys, monkeypatch):
    monkeypatch.setenv("QUORUMSQL_LLM_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("QUORUMSQL_LLM_MODEL", "qwen")
    assert main(["model", "status"]) == 0
    assert "http://127.0.0.1:8000/v1 (model qwen)" in capsys.readouterr().out


def test_answer_json_is_serialisable():
    import datetime
    import decimal
    import json

    ans = Answer(question="q", sql="SELECT 1", columns=["a", "b", "c"],
                 rows=[(decimal.Decimal("1.50"), datetime.date(2024, 1, 2), b"\x00\x01")])
    doc = answer_json(ans)
    assert doc["rows"] == [[1.5, "2024-01-02", "0001"]]
    json.dumps(doc)


def test_a_bad_port_is_one_error_line():
    for url in ("mysql://root@127.0.0.1:99999/x", "mysql://root@127.0.0.1:abc/x"):
        proc = _run("ask", url, "How many?")
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "port" in lines[0]
        assert "Traceback" not in proc.stderr
