"""Export the questions of a recorded run where some candidate ended in given execution states.

A preset change that only acts on some execution states (refining ``empty`` and ``none``
results, say) can only change the answers of questions where a candidate ended in one of those
states; every other question is answered exactly as before (sampled calls are seeded). Rerunning
just those questions and splicing them into the recorded run
(``benchmarks/reselect.py RUN --splice SUBSET_RUN``) measures the change at a fraction of the
cost. Writes the generic JSONL layout that ``quorumsql bench --dataset jsonl`` reads, keeping the
question ids.

Usage::

    .venv/bin/python benchmarks/subset.py runs/s200-balanced --data ../shared/data/spider \\
        --states empty none --out runs/s200-empty.jsonl
    quorumsql bench --dataset jsonl --data runs/s200-empty.jsonl --ex spider \\
        --preset-file benchmarks/presets/balanced-states.json --out runs/s200-balanced-states
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from quorumsql.benchmarks.datasets import load_bird, load_spider
from quorumsql.benchmarks.runner import read_results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run directory with results.jsonl")
    ap.add_argument("--data", required=True, help="the dataset directory the run used")
    ap.add_argument("--dataset", choices=["spider", "bird"], default="spider")
    ap.add_argument("--states", nargs="+", required=True,
                    help="candidate execution states that select a question (e.g. empty none)")
    ap.add_argument("--out", required=True, help="JSONL file to write")
    args = ap.parse_args(argv)

    records, warnings = read_results(args.run)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    data = load_spider(args.data) if args.dataset == "spider" else load_bird(args.data)
    examples = {e.id: e for e in data.examples}
    wanted = set(args.states)
    chosen = [r for r in records if r.get("status") == "done"
              and any(c.get("status") in wanted for c in r.get("candidates") or [])]
    unknown = [r["id"] for r in chosen if r["id"] not in examples]
    if unknown:
        print(f"error: {len(unknown)} question(s) of the run are not in {args.data} (e.g. {unknown[0]})", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for r in chosen:
            e = examples[r["id"]]
            fh.write(json.dumps({"id": e.id, "db_id": e.db_id, "db": str(Path(e.db).resolve()), "question": e.question,
                                 "gold_sql": e.gold_sql, "evidence": e.evidence, "difficulty": e.difficulty}) + "\n")
    print(f"{len(chosen)} of {len(records)} questions have a candidate in {', '.join(sorted(wanted))}: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
