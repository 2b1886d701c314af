"""Schema linking at warehouse scale: a 1,000-table / 10,000-column SQLite database.

Builds the wide database of ``bench_metadata.py`` (or reuses it from ``--work``), indexes it,
then answers a few questions with linking on (preset ``fast`` + ``linking``) and prints, per
question: the whole schema's estimated tokens, the tables the draft was written over, the
linked tables and columns, the generator's prompt tokens (as the endpoint reports them) and
seconds per stage; then how long a second process takes to reuse the store.

    .venv/bin/python benchmarks/bench_linking_scale.py [--tables 1000] [--budget 3000] [--work DIR]

The model is the configured one (``QUORUMSQL_LLM_BASE_URL``, a running ``quorumsql model
serve``, or the embedded model). Run by hand; figures go to the README.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_metadata import make_wide_db  # noqa: E402

from quorumsql import Pipeline  # noqa: E402
from quorumsql.config import Preset, Settings  # noqa: E402
from quorumsql.llm.usage import estimate_tokens  # noqa: E402
from quorumsql.metadata import load_or_build  # noqa: E402
from quorumsql.db import open_database  # noqa: E402


def questions(path: Path, n: int, seed: int = 3) -> list[tuple[str, str]]:
    """``(question, gold SQL)`` pairs asking for rows of one table by a stored cell value."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    out = []
    for table in rng.sample(tables, n):
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")][1:]
        col = rng.choice(cols)
        value = conn.execute(f"SELECT {col} FROM {table} LIMIT 1 OFFSET 3").fetchone()[0]
        topic, num = table.rsplit("_", 1)
        field = col.rsplit("_", 1)[0].replace("_", " ")
        out.append((f"How many records of {topic} {int(num)} have the {field} '{value}'?",
                    f"SELECT count(*) FROM {table} WHERE {col} = '{value}'"))
    conn.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=3000, help="prompt_budget of the preset (tokens)")
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--work", default="/tmp/qsql-linking-scale", help="where the database and the cache live")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"wide{args.tables}.sqlite"
    if not path.exists():
        t = time.perf_counter()
        make_wide_db(path, args.tables)
        print(f"built {path} in {time.perf_counter() - t:.1f} s")
    settings = Settings.load(cache_dir=work / "cache")
    t = time.perf_counter()
    meta = load_or_build(open_database(path), settings)
    print(f"metadata store: {'built' if meta.built else 'reused'} in {time.perf_counter() - t:.1f} s "
          f"({len(meta.tables):,} tables, {len(meta.columns):,} columns)")
    # a second process: the store is reused by the change stamp, the schema is not re-read
    code = ("import time; t = time.perf_counter(); from quorumsql.config import Settings; "
            "from quorumsql.db import open_database; from quorumsql.metadata import load_or_build; "
            f"db = open_database({str(path)!r}); m = load_or_build(db, Settings.load(cache_dir={str(work / 'cache')!r})); "
            "s = db.schema(); print(f'{time.perf_counter() - t:.2f} {m.built} {len(s.tables)}')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    print(f"second process: store reused in {out[0]} s (built={out[1]}), schema of {out[2]} tables adopted")

    preset = Preset(name="fast-linked", temperatures=[0.0], refine_rounds=2, linking=True, prompt_budget=args.budget)
    pipe = Pipeline(settings, preset=preset)
    whole = estimate_tokens(pipe.resources.schema_text(str(path), "mschema"))
    print(f"whole M-Schema: ~{whole:,} tokens; prompt budget {args.budget:,}")
    print("| question | linked tables / columns | draft over | generator prompt tokens | seconds (keywords / retrieve / link / generate) | correct |")
    print("|---|---|---|---|---|---|")
    for question, gold in questions(path, args.questions):
        ans = pipe.answer(question, str(path))
        link = next(e for e in ans.trace if e.node == "link")
        gen = next((e for e in ans.trace if e.node == "generate"), None)
        secs = {e.node: e.seconds for e in ans.trace}
        draft_note = next((n for n in link.data["notes"] if "drafting over" in n), "whole schema")
        gold_rows = open_database(path).execute(gold).rows
        print(f"| {question} | {len(link.data['selection'])} / {sum(len(v) for v in link.data['selection'].values())} "
              f"| {draft_note.split(': ')[-1]} | {gen.usage.prompt_tokens if gen else 'n/a'} "
              f"| {secs.get('keywords', 0):.1f} / {secs.get('retrieve', 0):.1f} / {secs.get('link', 0):.1f} / "
              f"{secs.get('generate', 0):.1f} | {ans.rows == gold_rows} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
