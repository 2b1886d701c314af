"""benchmarks/reselect.py: ablation rows re-selected from a recorded run, on real Spider data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cand(cid: str, generator: str, sql: str, **extra) -> dict:
    return {"id": cid, "generator": generator, "temperature": 0.0, "sql": sql, "status": "ok",
            "votes": 1, "result_key": None, "revisions": 0} | extra


def _record(qid: str, db_id: str, ex: float, cands: list[dict]) -> dict:
    return {"id": qid, "db_id": db_id, "status": "done", "metrics": {"ex": ex}, "candidates": cands}


def _rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_reselect_rows_vote_again_over_the_kept_candidates(tmp_path, spider_data):
    run = tmp_path / "run"
    run.mkdir()
    records = [
        # dev/0 "How many singers do we have?": the zero-shot pair is wrong, the ICL pair right;
        # the 2-2 tie goes to the earliest group by vote (the recorded run's selector chose ICL)
        _record("dev/0", "concert_singer", 1.0, [
            _cand("c0", "zero-shot/mschema", "SELECT count(*) FROM stadium"),
            _cand("c1", "zero-shot/mschema", "SELECT count(*) FROM stadium", duplicate_of="c0"),
            _cand("c2", "icl/mschema", "SELECT count(*) FROM singer"),
            _cand("c3", "icl/mschema", "SELECT COUNT(singer_id) FROM singer"),
        ]),
        # dev/2 names, countries, ages by age: align put the columns in the asked order
        _record("dev/2", "concert_singer", 1.0, [
            _cand("c0", "zero-shot/mschema", "SELECT name, country, age FROM singer ORDER BY age DESC",
                  refined_sql="SELECT age, name FROM singer ORDER BY age DESC"),
        ]),
    ]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "reselect.py"), str(run), "--data", str(spider_data),
         "--subset", "icl pair=c2,c3", "--subset", "greedy zero-shot=c0"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout)
    assert rows["icl pair (vote only)"][0] == "50.0%"  # dev/0 right; dev/2 has no c2/c3
    assert rows["greedy zero-shot (vote only)"][0] == "50.0%"  # dev/0 wrong; dev/2 aligned right
    assert rows["as recorded"][0] == "100.0%"
    assert rows["vote only (no LLM selector)"][0] == "50.0%"   # dev/0 falls to the zero-shot group
    assert rows["no icl candidates (vote only)"][0] == "50.0%"
    # dev/0 right by the ICL pair; dev/2 has no candidate left, so no answer
    assert rows["no zero-shot candidates (vote only)"][0] == "50.0%"
    assert rows["no align (vote only)"][0] == "0.0%"          # dev/0 tie to zero-shot, dev/2 pre-align wrong
    assert rows["oracle (any candidate correct)"][0] == "100.0%"
    # concert_singer is among the first five databases alphabetically: the tuning half
    assert rows["as recorded"][1].startswith("100.0% (n=2)")
    assert rows["as recorded"][2].startswith("– (n=0)")


def test_reselect_reports_a_run_without_finished_questions(tmp_path, spider_data):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "results.jsonl").write_text("")
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "reselect.py"), str(run), "--data", str(spider_data)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "no finished questions" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_subset_exports_the_questions_a_state_change_can_touch_and_splice_replaces_them(tmp_path, spider_data):
    from quorumsql.benchmarks.datasets import load_jsonl

    run, other = tmp_path / "run", tmp_path / "other"
    run.mkdir(), other.mkdir()
    wrong, right = "SELECT count(*) FROM stadium", "SELECT count(*) FROM singer"
    empty = "SELECT count(*) FROM singer WHERE Age > 300"
    (run / "results.jsonl").write_text(
        json.dumps(_record("dev/0", "concert_singer", 0.0, [_cand("c0", "zero-shot/mschema", wrong)])) + "\n"
        + json.dumps(_record("dev/1", "concert_singer", 0.0, [_cand("c0", "zero-shot/mschema", empty, status="empty")])) + "\n"
    )
    out = tmp_path / "subset.jsonl"
    script = REPO / "benchmarks" / "subset.py"
    proc = subprocess.run([sys.executable, str(script), str(run), "--data", str(spider_data), "--states", "empty", "none",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    subset = load_jsonl(out)
    assert [e.id for e in subset.examples] == ["dev/1"] and subset.examples[0].gold_sql == "SELECT count(*) FROM singer"
    assert Path(subset.examples[0].db).is_file() and not subset.warnings

    # the rerun of dev/1 (refining empty results) found the right query
    (other / "results.jsonl").write_text(
        json.dumps(_record("dev/1", "concert_singer", 1.0, [_cand("c0", "zero-shot/mschema", right)])) + "\n")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "reselect.py"), str(run), "--data", str(spider_data),
                           "--splice", str(other)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 of 2 records taken from" in proc.stdout
    rows = _rows(proc.stdout)
    assert rows["as recorded"][0] == "50.0%" and rows["vote only (no LLM selector)"][0] == "50.0%"


def test_table_splits_ex_by_tuning_and_report_databases(tmp_path):
    run = tmp_path / "s-balanced"
    run.mkdir()
    recs = []
    for i, (db, ex, secs) in enumerate([("car_1", 1.0, 2.0), ("car_1", 0.0, 4.0), ("pets_1", 1.0, 9.0)]):
        r = _record(f"dev/{i}", db, ex, [])
        r.update(usage={"prompt_tokens": 900, "cached_tokens": 600, "completion_tokens": 30, "calls": 3}, llm_calls=3,
                 system_seconds=secs, pred_exec={"status": "ok"})
        recs.append(r)
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "table.py"), str(run)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.splitlines()[-1]
    assert [c.strip() for c in line.strip("|").split("|")] == [
        "s-balanced", "3", "66.7%", "50.0% / 100.0%", "3.00", "900 (300 / 600)", "30", "5.0 / 4.0", "0"]


def test_table_compares_on_the_questions_a_stopped_run_finished(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    full.mkdir(), part.mkdir()
    (full / "results.jsonl").write_text("".join(json.dumps(_record(f"dev/{i}", "pets_1", float(i % 2), [])) + "\n"
                                                for i in range(4)))
    (part / "results.jsonl").write_text(json.dumps(_record("dev/1", "pets_1", 0.0, [])) + "\n")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "table.py"), str(full), str(part),
                           "--same-questions-as", str(part)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in proc.stdout.splitlines()[2:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [("full", "1", "100.0%"), ("part", "1", "0.0%")]
