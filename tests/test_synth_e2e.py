"""One tiny synthesis run with the real embedded model (Qwen2.5-Coder-1.5B on llama.cpp): no fakes.

Two seed lines of Spider's ``train_gold.sql``, through ``quorumsql synth`` as a user runs it.
Slow (a few minutes on a 2-core CPU): marked ``e2e``; ``make test-fast`` skips it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quorumsql.agents.icl_pool import read_pool
from quorumsql.synthesis.records import DROP_STAGES
from quorumsql.synthesis.store import read_records

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(1800)
def test_two_seeds_of_train_gold_with_the_real_model(spider_data, embedded_env, tmp_path):
    seeds = tmp_path / "seeds.sql"
    lines = (spider_data / "train_gold.sql").read_text(encoding="utf-8").splitlines()[:2]
    seeds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "synth"
    env = dict(embedded_env, QUORUMSQL_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "quorumsql.cli", "synth", "--seed-sql", str(seeds), "--data", str(spider_data),
         "--out", str(out), "--variants", "1", "--questions", "2", "--exec-runs", "2", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)
    records, warnings = read_records(out)
    assert warnings == []
    assert {r.seed_id for r in records} == {"seeds:1", "seeds:2"}
    for r in records:  # every record is accounted for: kept with its grades, or dropped with a reason
        assert r.db_id == "department_management" and r.seed_kind == "sql"
        if r.kept:
            assert r.question and r.judge_score is not None and r.judge_score >= 0.5
            assert r.filters[:5] == ["parse", "read_only", "tables", "execution", "result"]
            assert r.component_difficulty in ("easy", "medium", "hard", "extra")
            assert r.exec_attempts == 2 and r.execution_difficulty is not None
        else:
            assert r.dropped_by in DROP_STAGES and r.drop_reason
    kept = [r for r in records if r.kept]
    # the two seed queries are simple and run; the model phrases at least one of them acceptably
    assert kept, [(r.id, r.question, r.drop_reason) for r in records]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == len(kept) and summary["tokens"]["prompt"] > 500 and summary["tokens"]["calls"] >= 6
    assert summary["exports"]["sft"] == summary["exports"]["icl_pool"] == len(kept)
    examples, skipped, _ = read_pool(out / "icl_pool.jsonl")
    assert len(examples) == len(kept) and skipped == 0
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert all("【DB_ID】 department_management" in e["messages"][1]["content"] for e in sft)
