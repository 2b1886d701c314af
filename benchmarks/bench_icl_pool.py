"""How well the ICL pool's examples fit the questions, without a model. Run by hand:

    .venv/bin/python benchmarks/bench_icl_pool.py [--pool runs/pools/spider_dev.jsonl] [--k 3]

For every Spider dev question (../shared/data/spider/dev.json) the examples the ICL generator
would show are retrieved from the pool (examples of the same database excluded) and compared
with the question's gold SQL by *query shape*: the set of clauses and aggregates it uses (JOIN,
WHERE, GROUP BY, HAVING, ORDER BY, LIMIT, set operations, nesting, COUNT/AVG/MIN/MAX/SUM). An
example of the same shape is one the model can imitate. Rows of the table:

- random: k examples of other databases drawn at random (seed 0), the floor;
- question: nearest by the embedding of the raw question (no masking);
- skeleton: nearest by question skeleton (:mod:`quorumsql.agents.skeleton`);
- skeleton + estimated tables: multi-table examples first when the question's estimated
  tables (names in the question, tables of masked values) are two or more (what the
  ``icl`` node does without linking);
- skeleton + gold tables: the same with the gold query's table count (a perfect linker);

(ranked here without the pool's similarity threshold and without its skipping of examples
whose SQL repeats a better one's); plus, per similarity band of the top example, how often it has the gold shape, and how well
the table estimate agrees with the gold query's table count. Builds the metadata store of each
dev database in the cache directory on first use.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import sqlglot
from sqlglot import exp

REPO = Path(__file__).resolve().parents[1]
SPIDER = REPO.parent / "shared" / "data" / "spider"
_SHAPES = {"join": exp.Join, "where": exp.Where, "group": exp.Group, "having": exp.Having, "order": exp.Order,
           "limit": exp.Limit, "union": exp.Union, "intersect": exp.Intersect, "except": exp.Except,
           "count": exp.Count, "avg": exp.Avg, "max": exp.Max, "min": exp.Min, "sum": exp.Sum}


def shape(sql: str) -> frozenset[str]:
    """The clauses and aggregates ``sql`` uses (``nested`` when it has more than one SELECT)."""
    tree = sqlglot.parse_one(sql)
    found = {name for name, cls in _SHAPES.items() if tree.find(cls)}
    if len(list(tree.find_all(exp.Select))) > 1:
        found.add("nested")
    return frozenset(found)


def main(argv: list[str] | None = None) -> int:
    """Print the table; return the exit status."""
    from quorumsql.agents.icl_pool import load_pool, sql_tables
    from quorumsql.agents.linker import tables_named
    from quorumsql.agents.skeleton import question_skeleton
    from quorumsql.config import Settings
    from quorumsql.llm.embeddings import default_embedder
    from quorumsql.metadata.retrieval import question_ngrams
    from quorumsql.resources import Resources

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=REPO / "runs" / "pools" / "spider_dev.jsonl")
    parser.add_argument("--dev", type=Path, default=SPIDER / "dev.json")
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.pool.is_file():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_dev_pool.py"), str(args.pool),
                        "--dev", str(args.dev)], check=True)
    rows = json.loads(args.dev.read_text(encoding="utf-8"))
    settings = Settings.load()
    res = Resources(settings)
    start = time.monotonic()
    pool = load_pool(args.pool, cache_dir=settings.cache_dir, database_root=SPIDER / "database")
    print(f"pool: {len(pool)} examples ({pool.skipped} skipped), loaded in {time.monotonic() - start:.1f} s")
    examples = pool.examples
    shapes = [shape(e.sql) for e in examples]
    dbs = np.array([e.db_id for e in examples])
    multi = np.array([e.multi_table for e in examples], dtype=np.float32)
    embedder = default_embedder()
    pool_q, pool_s = embedder.embed([e.question for e in examples]), embedder.embed([e.skeleton for e in examples])

    skeletons, estimated, gold_multi = [], [], []
    start = time.monotonic()
    for row in rows:
        db = SPIDER / "database" / row["db_id"] / f"{row['db_id']}.sqlite"
        sk = question_skeleton(row["question"], res.metadata(db))
        named = tables_named(question_ngrams(row["question"]), res.database(db).schema())
        skeletons.append(sk.text)
        estimated.append(len({t.lower() for t in [*named, *sk.tables]}) >= 2)
        gold_multi.append(len(sql_tables(row["query"]) or ()) >= 2)
    print(f"{len(rows)} questions masked in {time.monotonic() - start:.1f} s")
    q_vec, s_vec = embedder.embed([r["question"] for r in rows]), embedder.embed(skeletons)
    gold = [shape(r["query"]) for r in rows]

    def rate(queries, keys, prefer=None) -> tuple[float, list[float]]:
        hits, top = 0, []
        for i, row in enumerate(rows):
            sims = keys @ queries[i]
            sims[dbs == row["db_id"]] = -9.0
            ranked = sims + (multi * 2.0 if prefer is not None and prefer[i] else 0.0)
            best = np.argsort(-ranked)[:args.k]
            hits += sum(shapes[j] == gold[i] for j in best)
            top.append(float(sims[best[0]]))
        return hits / (len(rows) * args.k), top

    rng = random.Random(0)
    rand = sum(shapes[j] == gold[i] for i, row in enumerate(rows)
               for j in rng.sample([j for j in range(len(examples)) if dbs[j] != row["db_id"]], args.k))
    print(f"\nshare of shown examples (k={args.k}) with the gold query's shape")
    print(f"  random                       {rand / (len(rows) * args.k):.3f}")
    print(f"  question                     {rate(q_vec, pool_q)[0]:.3f}")
    plain, top = rate(s_vec, pool_s)
    print(f"  skeleton                     {plain:.3f}")
    print(f"  skeleton + estimated tables  {rate(s_vec, pool_s, estimated)[0]:.3f}")
    print(f"  skeleton + gold tables       {rate(s_vec, pool_s, gold_multi)[0]:.3f}")
    bands: dict[float, list[int]] = collections.defaultdict(lambda: [0, 0])
    for i, row in enumerate(rows):
        sims = pool_s @ s_vec[i]
        sims[dbs == row["db_id"]] = -9.0
        j = int(np.argmax(sims))
        band = bands[np.floor(sims[j] * 10) / 10]
        band[0] += 1
        band[1] += shapes[j] == gold[i]
    print("\ntop-1 similarity band: questions, top example with the gold shape")
    for b in sorted(bands):
        n, ok = bands[b]
        print(f"  {b:.1f}-{b + 0.1:.1f}  {n:4d}  {ok / n:.2f}")
    agree = collections.Counter(zip(estimated, gold_multi))
    print(f"\ntables (estimate >= 2, gold >= 2): {dict(agree)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
