"""``langgraph dev`` serves the inference and synthesis graphs offline; POST /runs/wait runs them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, _free_port

pytestmark = pytest.mark.e2e
PORT = 2025


@contextlib.contextmanager
def langgraph_dev(tmp_path: Path, env: dict[str, str], port: int):
    """``langgraph dev`` on 127.0.0.1:``port`` from the repository root; yields its base URL once /ok answers."""
    exe = shutil.which("langgraph", path=str(Path(sys.executable).parent))
    assert exe, "langgraph-cli[inmem] is a test dependency"
    env = dict(env, LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false")
    log = open(tmp_path / "langgraph.log", "w")
    proc = subprocess.Popen(
        [exe, "dev", "--no-browser", "--no-reload", "--port", str(port), "--host", "127.0.0.1"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "langgraph.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "langgraph dev did not start in 120 s"
            time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_langgraph_dev_runs_the_inference_graph(concert_singer, embedded_env, tmp_path):
    with langgraph_dev(tmp_path, embedded_env, PORT) as base:
        assistants = httpx.post(f"{base}/assistants/search", json={"graph_id": "inference"}, timeout=30).json()
        assert assistants and assistants[0]["graph_id"] == "inference"
        r = httpx.post(
            f"{base}/runs/wait",
            json={"assistant_id": "inference",
                  "input": {"question": "How many singers do we have?", "db": str(concert_singer)}},
            timeout=600,
        )
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["rows"] == [[6]] and out["error"] is None
        assert [e["node"] for e in out["trace"]][:2] == ["context", "generate"]


def test_langgraph_dev_lists_and_runs_the_synthesis_graph(concert_singer, tmp_path):
    """Studio lists the synthesis graph node by node; a seed the execution filter drops needs no model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUMSQL_LLM")}
    with langgraph_dev(tmp_path, env, _free_port()) as base:
        found = httpx.post(f"{base}/assistants/search", json={"graph_id": "synthesis"}, timeout=30).json()
        assert found and found[0]["graph_id"] == "synthesis"
        drawn = httpx.get(f"{base}/assistants/{found[0]['assistant_id']}/graph", timeout=30).json()
        nodes = {n["id"] for n in drawn["nodes"]}
        assert {"seed", "execute", "variation", "questions", "judge", "cot", "difficulty", "record"} <= nodes
        before = concert_singer.read_bytes()
        r = httpx.post(f"{base}/runs/wait", timeout=300, json={
            "assistant_id": "synthesis",
            "input": {"kind": "sql", "db": str(concert_singer), "sql": "DELETE FROM singer"}})
        assert r.status_code == 200, r.text
        out = r.json()
        [record] = out["records"]
        assert record["dropped_by"] == "write" and record["status"] == "dropped"
        assert [e["node"] for e in out["trace"]] == ["seed", "execute", "record"]
        assert concert_singer.read_bytes() == before
