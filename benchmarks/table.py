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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quorumsql.benchmarks.report import load_run, summarize
from quorumsql.errors import InputError

TUNING_DATABASES = ("battle_death", "car_1", "concert_singer", "course_teach", "cre_Doc_Template_Mgt")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def row(run: str | Path, tune: set[str], only: set[str] | None = None) -> list[str] | None:
    """The table cells of one run (restricted to the question ids ``only``), or None when it has
    no finished question. Figures come from :func:`quorumsql.benchmarks.report.summarize`."""
    data = load_run(run)
    done = [r for r in data.done if only is None or r["id"] in only]
    if not done:
        return None

    def part(records: list[dict[str, Any]]) -> dict[str, Any]:
        return summarize(data.model_copy(update={"records": records}))

    s = part(done)
    tuned = part([r for r in done if r["db_id"] in tune])
    other = part([r for r in done if r["db_id"] not in tune])
    read_cached = "" if s["read_tokens"] is None else f" ({s['read_tokens']:,.0f} / {s['cached_tokens']:,.0f})"
    return [
        Path(run).name, str(s["n"]), _pct(s["ex"]), f"{_pct(tuned['ex'])} / {_pct(other['ex'])}",
        _num(s["llm_calls"], ".2f"), _num(s["prompt_tokens"], ",.0f") + read_cached, _num(s["completion_tokens"], ",.0f"),
        f"{_num(s['system_seconds'], '.1f')} / {_num(s['system_seconds_median'], '.1f')}",
        str(sum(s["pred_errors"].values())),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories with results.jsonl")
    ap.add_argument("--tune", nargs="+", default=list(TUNING_DATABASES),
                    help="tuning database ids (default: the first five Spider dev databases alphabetically)")
    ap.add_argument("--same-questions-as", metavar="RUN",
                    help="only the questions finished in RUN (to compare with a run stopped early)")
    args = ap.parse_args(argv)
    try:
        return _print_table(args)
    except InputError as exc:  # a missing or empty run directory
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _print_table(args: argparse.Namespace) -> int:
    only = None
    if args.same_questions_as:
        only = {r["id"] for r in load_run(args.same_questions_as).done}
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
