"""Ablation rows by re-selection: what a recorded run would have scored without a component.

Candidates are generated and refined independently of each other, so a run's recorded
candidates already hold the answer of the same run without a generator kind: drop that kind's
candidates and vote again. The same holds for the align stage (vote over each candidate's
pre-align SQL, recorded as ``refined_sql`` when the stage rewrote it) and for the LLM selector
(majority vote alone, ties to the earliest candidate). No model is called; each candidate's SQL
is executed again on its database and the chosen SQL is scored with the harness's evaluator
(official Spider/BIRD semantics), so the rows are directly comparable with the recorded EX.

What re-selection cannot give: the LLM selector's choice among a different set of groups (the
rows without a generator are vote-only; compare them with the "vote only" row), the refiner's
behaviour under other refine states, and costs (the table gives EX only; each candidate's calls and
tokens are in its record's ``usage``).

Usage::

    .venv/bin/python benchmarks/reselect.py runs/s200-full --data ../shared/data/spider

``--subset 'LABEL=c0,c1,c2'`` adds a row voting over those candidates only (a smaller preset whose
plan is a prefix of the run's per generator kind draws the same seeded candidates).

Prints a Markdown table: EX on all questions, on the tuning databases (the first five database
ids alphabetically, as in issue 10) and on the others; plus the oracle (any candidate correct).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from quorumsql.agents.refiner import classify
from quorumsql.agents.selector import select_by_vote
from quorumsql.agents.sql_text import result_key
from quorumsql.benchmarks.datasets import load_bird, load_spider
from quorumsql.benchmarks.evaluators import Evaluator
from quorumsql.benchmarks.runner import read_results
from quorumsql.db import open_database
from quorumsql.records import Candidate

Variant = tuple[str, Callable[[dict[str, Any]], bool], bool]  # label, keep candidate?, use pre-align SQL


def _kind(cand: dict[str, Any]) -> str:
    return str(cand.get("generator") or "").split("/")[0]


class Rescorer:
    """Executes and scores candidate SQL for one run, caching per (question, SQL)."""

    def __init__(self, examples: dict[str, Any], primary: str, timeout: float) -> None:
        self.examples = examples
        self.evaluator = Evaluator(primary, timeout=timeout)
        self.timeout = timeout
        self._dbs: dict[str, Any] = {}
        self._exec: dict[tuple[str, str], tuple[str, str | None]] = {}
        self._score: dict[tuple[str, str | None], float] = {}

    def db(self, qid: str):
        spec = self.examples[qid].db
        if spec not in self._dbs:
            self._dbs[spec] = open_database(spec, query_timeout=self.timeout)
        return self._dbs[spec]

    def state(self, qid: str, sql: str | None) -> tuple[str, str | None]:
        """(execution state, result key) of ``sql`` on the question's database."""
        if not sql:
            return "no_sql", None
        key = (qid, sql)
        if key not in self._exec:
            res = self.db(qid).try_execute(sql, timeout=self.timeout)
            state = classify(res)
            self._exec[key] = (state, None if res.error is not None else result_key(res.rows))
        return self._exec[key]

    def ex(self, qid: str, sql: str | None) -> float:
        """The headline EX (0/1) of ``sql`` against the question's gold SQL."""
        key = (qid, sql)
        if key not in self._score:
            ex = self.examples[qid]
            self._score[key] = float(self.evaluator.evaluate(self.db(qid), sql, ex.gold_sql).metrics.get("ex", 0.0))
        return self._score[key]


def _resolved(cands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates with duplicates given their original's SQL (a duplicate is not refined again)."""
    by_id = {c["id"]: c for c in cands}
    out = []
    for c in cands:
        orig = by_id.get(c.get("duplicate_of") or "")
        if orig is not None:
            c = {**c, "sql": orig.get("sql"), "refined_sql": orig.get("refined_sql")}
        out.append(c)
    return out


def reselect(record: dict[str, Any], scorer: Rescorer, keep: Callable[[dict[str, Any]], bool], pre_align: bool) -> float:
    """Vote again over the kept candidates of one recorded question.

    Returns:
        The EX (0/1) of the chosen SQL; 0 when no candidate is kept.
    """
    qid = record["id"]
    cands = []
    for i, c in enumerate(_resolved(record.get("candidates") or [])):
        if not keep(c):
            continue
        sql = (c.get("refined_sql") or c.get("sql")) if pre_align else c.get("sql")
        state, key = scorer.state(qid, sql)
        cands.append(Candidate(id=f"c{i}", generator=c.get("generator") or "?", sql=sql, status=state, result_key=key))
    if not cands:
        return 0.0
    sel = select_by_vote(cands)
    chosen = next((c.sql for c in cands if c.id == sel.winner), None)
    return scorer.ex(qid, chosen)


def _pct(values: Sequence[float]) -> str:
    return f"{100 * sum(values) / len(values):.1f}%" if values else "–"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run directory with results.jsonl")
    ap.add_argument("--data", required=True, help="the dataset directory the run used")
    ap.add_argument("--dataset", choices=["spider", "bird"], default="spider")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per execution")
    ap.add_argument("--splice", metavar="RUN",
                    help="a run over some of the same questions (benchmarks/subset.py) whose records replace "
                         "the run's: the table is then of the spliced run")
    ap.add_argument("--subset", action="append", default=[], metavar="LABEL=c0,c1,...",
                    help="one more row: vote only over these candidate ids (the preset's plan order: "
                         "generator, schema format, temperature), e.g. 'zero-shot x3=c0,c1,c2'")
    ap.add_argument("--tune-dbs", type=int, default=5,
                    help="the first N database ids alphabetically are the tuning half (default 5)")
    args = ap.parse_args(argv)
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        print(f"error: --timeout must be a number of seconds above 0, got {args.timeout:g}", file=sys.stderr)
        return 2

    records, warnings = read_results(args.run)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    records = [r for r in records if r.get("status") == "done"]
    if args.splice:
        extra, more = read_results(args.splice)
        for w in more:
            print(f"warning: {w}", file=sys.stderr)
        by_id = {r["id"]: r for r in extra if r.get("status") == "done"}
        stray = set(by_id) - {r["id"] for r in records}
        if stray:
            print(f"error: {len(stray)} question(s) of {args.splice} are not in {args.run}", file=sys.stderr)
            return 2
        records = [by_id.get(r["id"], r) for r in records]
        print(f"{len(by_id)} of {len(records)} records taken from {args.splice}")
    if not records:
        print(f"error: no finished questions in {args.run}", file=sys.stderr)
        return 2
    data = load_spider(args.data) if args.dataset == "spider" else load_bird(args.data)
    examples = {e.id: e for e in data.examples}
    missing = [r["id"] for r in records if r["id"] not in examples]
    if missing:
        print(f"error: {len(missing)} question(s) of the run are not in {args.data} (e.g. {missing[0]})", file=sys.stderr)
        return 2
    scorer = Rescorer(examples, args.dataset, args.timeout)
    all_dbs = sorted({e.db_id for e in data.examples})
    tune = set(all_dbs[: args.tune_dbs])

    kinds = list(dict.fromkeys(_kind(c) for r in records for c in r.get("candidates") or []))
    variants: list[Variant] = [("vote only (no LLM selector)", lambda c: True, False)]
    if any("refined_sql" in c for r in records for c in r.get("candidates") or []):
        variants.append(("no align (vote only)", lambda c: True, True))
    if len(kinds) > 1:
        for k in kinds:
            variants.append((f"no {k} candidates (vote only)", lambda c, k=k: _kind(c) != k, False))

    for spec in args.subset:
        label, _, ids = spec.rpartition("=")
        wanted = {i.strip() for i in ids.split(",") if i.strip()}
        if not label or not wanted:
            print(f"error: --subset wants LABEL=c0,c1,..., got {spec!r}", file=sys.stderr)
            return 2
        variants.append((f"{label} (vote only)", lambda c, w=frozenset(wanted): c.get("id") in w, False))

    rows: list[tuple[str, list[float]]] = [
        ("as recorded", [float((r.get("metrics") or {}).get("ex", 0.0)) for r in records])]
    for label, keep, pre in variants:
        rows.append((label, [reselect(r, scorer, keep, pre) for r in records]))
    oracle = []
    for r in records:
        sqls = {c.get("sql") for c in _resolved(r.get("candidates") or [])}
        oracle.append(max((scorer.ex(r["id"], s) for s in sqls if s), default=0.0))
    rows.append(("oracle (any candidate correct)", oracle))
    is_tune = [r["db_id"] in tune for r in records]

    print(f"{args.run}: {len(records)} questions; tuning databases: {', '.join(sorted(tune))}")
    print()
    print("| | EX, all | tuning databases | report databases |")
    print("|---|---|---|---|")
    for label, values in rows:
        t = [v for v, f in zip(values, is_tune) if f]
        o = [v for v, f in zip(values, is_tune) if not f]
        print(f"| {label} | {_pct(values)} | {_pct(t)} (n={len(t)}) | {_pct(o)} (n={len(o)}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
