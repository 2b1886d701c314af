"""End to end with the real embedded model (slow; marked ``e2e``).

``quorumsql bench --dataset spider --preset fast --limit 4`` is killed (SIGKILL) after two
finished questions and resumed without redoing them; the strongest baseline runs on two of the
same questions; ``quorumsql report`` compares both and the HTML page is parsed.
About 2-3 minutes of model time on a 2-core CPU (small concert_singer schema).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_shared
from tests.test_report import PageParser

ROOT = Path(__file__).resolve().parents[1]
SPIDER = ROOT.parent / "shared" / "data" / "spider"

pytestmark = pytest.mark.e2e


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUMSQL_")}
    env.update(QUORUMSQL_LLM_BASE_URL=url, QUORUMSQL_LLM_MODEL="qwen2.5-coder-1.5b",
               QUORUMSQL_CACHE_DIR=str(tmp_path / "cache"))
    return env


def _bench(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "quorumsql.cli", "bench", "--dataset", "spider", "--data", str(SPIDER),
            "--db-ids", "concert_singer", "--out", str(out), *extra]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_bench_killed_resumed_and_reported(embedded_llm_url, tmp_path):
    require_shared(SPIDER / "dev.json", "Spider dev.json")
    env = _env(embedded_llm_url, tmp_path)
    x, y = tmp_path / "runs" / "x", tmp_path / "runs" / "y"
    proc = subprocess.Popen(_bench(x, "--preset", "fast", "--limit", "4", "--no-progress"), env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = x / "results.jsonl"
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = _lines(results)
    assert 2 <= len(before) < 4

    resumed = subprocess.run(_bench(x, "--preset", "fast", "--limit", "4", "--resume"), env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(before)} of 4 questions already done" in resumed.stderr
    after = _lines(results)
    assert after[: len(before)] == before  # finished questions were not redone
    assert sorted(r["id"] for r in after) == sorted({r["id"] for r in after}) and len(after) == 4
    for r in after:
        assert r["status"] == "done" and r["usage"]["calls"] >= 1 and r["usage"]["completion_tokens"] > 0
        assert r["metrics"]["ex"] in (0, 1)
    meta = json.loads((x / "run.json").read_text())
    assert meta["status"] == "finished" and "qwen2.5-coder-1.5b" in meta["system"]["model"]
    assert meta["resumed_at"]

    base = subprocess.run(_bench(y, "--baseline", "zs-ddl-rows", "--limit", "2", "--no-progress"), env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert base.returncode == 0, base.stderr
    rep = subprocess.run([sys.executable, "-m", "quorumsql.cli", "report", str(x), str(y)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    parser = PageParser()
    parser.feed((x / "report.html").read_text(encoding="utf-8"))
    assert len(parser.svgs) == 4 and parser.scripts == 0 and parser.external == []
    summary = {row[0]: row[1:] for row in parser.tables["summary"]}
    assert summary[""] == ["x", "y"]
    assert summary["system"] == ["quorumsql-fast", "zs-ddl-rows"]
    assert summary["questions scored / selected"] == ["4 / 4", "2 / 2"]
    ex_x = 100 * sum(r["metrics"]["ex"] for r in after) / 4
    assert summary["EX"][0] == f"{ex_x:.1f}%"
