"""The README's preset table: one row per recorded run, EX split by tuning and report databases.

Issue 10 asks that tuning cannot hide in the figures: the first five database ids
alphabetically are where presets were tuned, the others are reported apart. Each row gives EX
on all questions and on each half, LLM calls, prompt tokens (read by the model / served from
its prompt cache), completion tokens, and the system's seconds per question (answering only:
``system_seconds``, without gold execution and scoring), mean and median.

Usage::

    .venv/bin/python benchmarks/table.py runs/s200-zs-ddl-rows runs/s200-fast runs/s200-balanced

Database ids come from the records themselves, so no dataset is needed; ``--tune`` names the
tuning databases explicitly when the run covers only some of them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quorumsql.benchmarks.runner import read_results

TUNING_DATABASES = ("battle_death", "car_1", "concert_singer", "course_teach", "cre_Doc_Template_Mgt")


def _pct(values: Sequence[float]) -> str:
    return f"{100 * sum(values) / len(values):.1f}%" if values else "–"


def row(run: str | Path, tune: set[str], only: set[str] | None = None) -> list[str] | None:
    """The table cells of one run (restricted to the question ids ``only``), or None when it has
    no finished question."""
    records, _ = read_results(run)
    done = [r for r in records if r.get("status") == "done" and (only is None or r["id"] in only)]
    if not done:
        return None
    ex = [float((r.get("metrics") or {}).get("ex", 0.0)) for r in done]
    t = [e for e, r in zip(ex, done) if r["db_id"] in tune]
    o = [e for e, r in zip(ex, done) if r["db_id"] not in tune]
    usage: list[dict[str, Any]] = [r.get("usage") or {} for r in done]
    n = len(done)

    def mean(key: str) -> float:
        return sum(float(u.get(key) or 0) for u in usage) / n

    cached = [u.get("cached_tokens") for u in usage]
    read_cached = "" if any(c is None for c in cached) else f" ({mean('prompt_tokens') - mean('cached_tokens'):,.0f} / {mean('cached_tokens'):,.0f})"
    secs = [float(r.get("system_seconds") if r.get("system_seconds") is not None else r.get("seconds") or 0) for r in done]
    no_sql = sum(1 for r in done if (r.get("pred_exec") or {}).get("status") != "ok")
    return [
        Path(run).name, str(n), _pct(ex), f"{_pct(t)} / {_pct(o)}", f"{mean('calls'):.2f}",
        f"{mean('prompt_tokens'):,.0f}{read_cached}", f"{mean('completion_tokens'):,.0f}",
        f"{statistics.mean(secs):.1f} / {statistics.median(secs):.1f}", str(no_sql),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories with results.jsonl")
    ap.add_argument("--tune", nargs="+", default=list(TUNING_DATABASES),
                    help="tuning database ids (default: the first five Spider dev databases alphabetically)")
    ap.add_argument("--same-questions-as", metavar="RUN",
                    help="only the questions finished in RUN (to compare with a run stopped early)")
    args = ap.parse_args(argv)
    only = None
    if args.same_questions_as:
        only = {r["id"] for r in read_results(args.same_questions_as)[0] if r.get("status") == "done"}
    header = ["run", "questions", "EX", "EX tune / report", "LLM calls", "prompt tokens (read / cached)",
              "completion tokens", "seconds (mean / median)", "no SQL that ran"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    status = 0
    for run in args.runs:
        cells = row(run, set(args.tune), only)
        if cells is None:
            print(f"warning: no finished questions in {run}", file=sys.stderr)
            status = 1
            continue
        print("| " + " | ".join(cells) + " |")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
