"""``quorumsql report``: Markdown, standalone HTML (parsed here) and the per-question diff."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from quorumsql.benchmarks import BaselineSystem, BenchmarkRunner, Evaluator, load_spider, read_results
from quorumsql.benchmarks.report import load_run, question_diff, summarize
from quorumsql.cli import main
from tests.conftest import require_shared

SPIDER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spider"


class PageParser(HTMLParser):
    """Collects tables (by id: rows of cell texts), SVG charts and bars, and external references."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.svgs: list[str] = []
        self.bars: list[dict[str, str]] = []
        self.external: list[str] = []
        self.scripts = 0
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._diff_tables = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(a[key])
        if tag == "script":
            self.scripts += 1
        if tag == "svg":
            self.svgs.append(a.get("aria-label", ""))
        if tag == "rect" and "data-series" in a:
            self.bars.append(a)
        if tag == "table":
            self._table = a.get("id") or f"{a.get('class', 'table')}-{a.get('data-key', '')}-{self._diff_tables}"
            self._diff_tables += 1
            self.tables[self._table] = []
        if tag == "tr" and self._table:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    require_shared(SPIDER / "dev.json", "Spider dev.json")  # skips, or fails when CI is set
    examples = load_spider(SPIDER).select(db_ids=["concert_singer"], limit=10)
    base = tmp_path_factory.mktemp("runs")
    # run "a" always answers the count of singers (right on the count questions), run "b"
    # always lists names (right on none of the first ten)
    for name, sql in (("a", "SELECT count(*) FROM singer"), ("b", "SELECT name FROM singer")):
        system = BaselineSystem("zs-mschema", FakeListChatModel(responses=[f"```sql\n{sql}\n```"]))
        system.name = f"fake-{name}"
        BenchmarkRunner(system, Evaluator("spider"), base / name, progress=False, log=lambda m: None).run(examples)
    return base / "a", base / "b"


def test_report_html_parses_and_matches_results(two_runs, tmp_path):
    a, b = two_runs
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(page)
    # standalone: no scripts, no external resources
    assert parser.scripts == 0 and parser.external == []
    assert parser.svgs == ["EX per difficulty", "Tokens per question (mean)", "Seconds per question",
                           "Candidate agreement vs accuracy"]
    assert {bar["data-series"] for bar in parser.bars} == {"a", "b"}
    seconds_bars = {(bar["data-series"], bar["data-category"]): float(bar["data-value"]) for bar in parser.bars
                    if bar["data-category"] in ("system, mean", "system, median", "with scoring, mean")}
    assert len(seconds_bars) == 6
    assert seconds_bars[("a", "system, mean")] < seconds_bars[("a", "with scoring, mean")]

    recs_a, _ = read_results(a)
    ex_a = 100 * sum(r["metrics"]["ex"] for r in recs_a) / len(recs_a)
    summary = {row[0]: row[1:] for row in parser.tables["summary"]}
    assert summary[""] == ["a", "b"]
    assert summary["system"] == ["fake-a", "fake-b"]
    assert summary["questions scored / selected"] == ["10 / 10", "10 / 10"]
    assert summary["EX"][0] == f"{ex_a:.1f}%" and summary["EX"][1] == "0.0%"
    mean_system = sum(r["system_seconds"] for r in recs_a) / len(recs_a)
    assert summary["system seconds / question (mean, answering only)"][0] == f"{mean_system:.1f}"
    all_bar = next(bar for bar in parser.bars if bar["data-series"] == "a" and bar["data-category"] == "all")
    assert float(all_bar["data-value"]) == pytest.approx(ex_a, abs=0.01)

    by_diff = {row[0]: row[1:] for row in parser.tables["by-difficulty"][1:]}
    levels = {r["difficulty"] for r in recs_a}
    assert set(by_diff) == levels

    diff = question_diff(load_run(a), load_run(b))
    solved_a = sorted(r["id"] for r in recs_a if r["metrics"]["ex"] == 1)
    assert sorted(d["id"] for d in diff["only_a"]) == solved_a and diff["only_b"] == []
    diff_rows = next(rows for key, rows in parser.tables.items() if "only_a" in key)
    assert sorted(row[0] for row in diff_rows[1:]) == solved_a

    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| **EX** | **" + f"{ex_a:.1f}%" in md and "Solved only by a" in md
    doc = json.loads((tmp_path / "rep" / "diff.json").read_text())
    assert len(doc["diffs"]["a vs b"]["only_a"]) == len(solved_a)


def test_summary_counts_tokens_seconds_and_failures(two_runs):
    a, _ = two_runs
    s = summarize(load_run(a))
    assert s["n"] == 10 and s["llm_calls"] == 1 and s["seconds"] > 0
    recs, _ = read_results(a)
    assert s["system_seconds"] == pytest.approx(sum(r["system_seconds"] for r in recs) / 10)
    assert s["system_seconds"] < s["seconds"] and s["system_seconds_fallback"] == 0
    assert s["agreement"]["100%"]["n"] == 10
    assert s["gold_failures"] == {} and s["skipped"] == 0
    assert s["ex_bird"] is not None and s["soft_f1"] is not None


def test_single_run_report_defaults_to_run_dir(two_runs):
    a, _ = two_runs
    assert main(["report", str(a)]) == 0
    assert (a / "report.html").is_file() and (a / "report.md").is_file()


def test_old_records_without_system_seconds_stay_readable(two_runs, tmp_path):
    # results written before system_seconds existed: their total seconds stand in, with a warning
    a, _ = two_runs
    old = tmp_path / "old-run"
    shutil.copytree(a, old)
    lines = (old / "results.jsonl").read_text().splitlines()
    stripped = []
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if i % 2 == 0:
            del rec["system_seconds"]
        stripped.append(json.dumps(rec))
    (old / "results.jsonl").write_text("\n".join(stripped) + "\n")
    recs = [json.loads(line) for line in stripped]
    expected = [r["system_seconds"] if "system_seconds" in r else r["seconds"] for r in recs]
    run = load_run(old)
    s = summarize(run)
    assert s["system_seconds_fallback"] == 5
    assert s["system_seconds"] == pytest.approx(sum(expected) / len(expected))
    assert any("5 result(s) carry no system_seconds" in w for w in run.warnings)
    assert main(["report", str(old)]) == 0
    assert "carry no system_seconds" in (old / "report.md").read_text()


def test_prompt_tokens_read_and_cached_and_unknown_for_older_runs(two_runs, tmp_path):
    a, _ = two_runs
    run = tmp_path / "cached-run"
    shutil.copytree(a, run)
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for i, rec in enumerate(recs):
        rec["usage"] = dict(rec["usage"] or {}, prompt_tokens=1000, cached_tokens=100 * i)
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = summarize(load_run(run))
    assert s["cached_tokens"] == pytest.approx(450) and s["read_tokens"] == pytest.approx(550)
    assert main(["report", str(run)]) == 0
    assert "| … read / served from cache | 550 / 450 |" in (run / "report.md").read_text()
    for rec in recs:  # a run recorded before the cache was counted
        del rec["usage"]["cached_tokens"]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = summarize(load_run(run))
    assert s["cached_tokens"] is None and s["read_tokens"] is None
    assert main(["report", str(run)]) == 0
    assert "| … read / served from cache | – |" in (run / "report.md").read_text()
