"""Write the Spider dev questions as an ICL example pool (JSONL). Run by hand:

    .venv/bin/python benchmarks/make_dev_pool.py [OUT] [--dev ../shared/data/spider/dev.json]

OUT defaults to ``runs/pools/spider_dev.jsonl``. Each line is ``{"question", "query", "db_id"}``.
Until the synthesis pipeline produces pools, this one serves the ICL generator
(``Preset(icl_pool=..., icl_database_root="../shared/data/spider/database")``): the pool never
gives a database its own questions (:meth:`quorumsql.agents.icl_pool.ExamplePool.nearest`
excludes the asked ``db_id``), so a dev question is answered with examples from the other dev
databases only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DEV = REPO.parent / "shared" / "data" / "spider" / "dev.json"
DEFAULT_OUT = REPO / "runs" / "pools" / "spider_dev.jsonl"


def main(argv: list[str] | None = None) -> int:
    """Write the pool; return the exit status (1 when ``dev.json`` is missing or malformed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help=f"output JSONL (default {DEFAULT_OUT})")
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV, help=f"Spider dev.json (default {DEFAULT_DEV})")
    args = parser.parse_args(argv)
    try:
        rows = json.loads(args.dev.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read {args.dev}: {exc}", file=sys.stderr)
        return 1
    if not isinstance(rows, list):
        print(f"{args.dev} is not a JSON list of questions", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            if isinstance(row, dict) and all(isinstance(row.get(k), str) for k in ("question", "query", "db_id")):
                fh.write(json.dumps({"question": row["question"], "query": row["query"], "db_id": row["db_id"]},
                                    ensure_ascii=False) + "\n")
                written += 1
    dbs = len({r["db_id"] for r in rows if isinstance(r, dict) and isinstance(r.get("db_id"), str)})
    print(f"{written} examples from {dbs} databases -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
