"""Performance of the metadata store (issue 4). Run by hand, not by the test suite:

    .venv/bin/python benchmarks/bench_metadata.py [--spider DIR] [--cells N] [--tables N]
        [--only spider|values|wide ...] [--skip spider|values|wide ...]

Three measurements, printed as one Markdown table:

1. statistical metadata (profiles, dependencies, joins, duplicates; no LLM, no embeddings)
   of every Spider database under ``../shared/data/spider/database``: total and slowest
   (target: under 2 s per database);
2. a generated SQLite database with ``--cells`` text cells (default 1,000,000): value index
   build time (reading the values included), lookup p50/p95 of misspelled keywords, resident
   memory and size on disk (targets: build under 60 s, p50 under 30 ms);
3. a generated schema of ``--tables`` tables x 10 columns (default 1,000 / 10,000): the whole
   ``load_or_build`` (with embeddings and the column index), and the size of the rendering of a
   linked subset against the full schema.

Generated databases live in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from quorumsql.config import Settings  # noqa: E402
from quorumsql.db import open_database  # noqa: E402
from quorumsql.metadata import ProfileOptions, load_or_build, retrieval  # noqa: E402
from quorumsql.metadata.profiler import TableProfiler  # noqa: E402
from quorumsql.metadata.relations import duplicate_columns, functional_dependencies, join_candidates  # noqa: E402
from quorumsql.metadata.value_index import ValueIndex  # noqa: E402
from quorumsql.schema_repr import render_metadata_schema  # noqa: E402


def rss_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def statistical_metadata(db_path: Path) -> tuple[float, int]:
    db = open_database(db_path)
    start = time.perf_counter()
    schema = db.schema(refresh=True)
    prof = TableProfiler(db)
    results = [prof.profile(t) for t in schema.tables]
    cols = [c for r in results for c in r.columns]
    stats = {(r.table.name.lower(), n.lower()): s for r in results for n, s in r.stats.items()}
    for t, r in zip(schema.tables, results):
        functional_dependencies(prof, t, r.columns)
    joins = join_candidates(prof, schema, cols)
    duplicate_columns(prof, cols, stats, joins)
    return time.perf_counter() - start, prof.queries


def bench_spider(spider: Path, rows: list[tuple[str, str, str]]) -> None:
    paths = sorted(spider.glob("*/*.sqlite"))
    if not paths:
        rows.append(("Spider statistical metadata", "skipped", f"no databases under {spider}"))
        return
    times = []
    for p in paths:
        secs, _ = statistical_metadata(p)
        times.append((secs, p.stem))
    times.sort(reverse=True)
    total = sum(t for t, _ in times)
    over = sum(1 for t, _ in times if t >= 2.0)
    rows.append(("Spider statistical metadata: databases", str(len(times)), ""))
    rows.append(("Spider statistical metadata: total", f"{total:.1f} s", ""))
    rows.append(("Spider statistical metadata: mean / median", f"{total / len(times):.3f} / {statistics.median(t for t, _ in times):.3f} s", ""))
    rows.append(("Spider statistical metadata: slowest", f"{times[0][0]:.2f} s", f"{times[0][1]}; next {times[1][1]} {times[1][0]:.2f} s"))
    rows.append(("Spider databases over 2 s", str(over), "target 0"))


_SYL = ["ka", "lo", "mi", "ne", "ra", "to", "sa", "vi", "de", "ru", "po", "len", "mar", "bert", "stad", "ville", "berg", "ton"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4)))


def make_text_db(path: Path, cells: int) -> list[str]:
    """A table of 4 text columns (person names, cities, products, comments) holding ``cells``
    cells; returns some of the values stored (for lookups)."""
    rng = random.Random(7)
    first = [_word(rng).title() for _ in range(4000)]
    last = [_word(rng).title() for _ in range(20000)]
    cities = [f"{_word(rng).title()} {rng.choice(['City', 'Port', 'Hills', ''])}".strip() for _ in range(30000)]
    products = [f"{_word(rng).title()} {rng.choice(string.ascii_uppercase)}{rng.randint(10, 999)}" for _ in range(50000)]
    n_rows = cells // 4
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (person_id INTEGER PRIMARY KEY, full_name TEXT, city TEXT, product TEXT, note TEXT)")
    batch = []
    for i in range(n_rows):
        batch.append((i, f"{rng.choice(first)} {rng.choice(last)}", rng.choice(cities), rng.choice(products),
                      f"{rng.choice(['ok', 'late', 'returned', 'gift'])} {rng.randint(1, 500)}"))
        if len(batch) == 50_000:
            conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)", batch)
            batch.clear()
    if batch:
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)", batch)
    conn.commit()
    # a fixed sample (seeded), so that runs before and after a change look up the same values
    picks = random.Random(5).sample(range(n_rows), 200)
    sample = [conn.execute("SELECT full_name FROM people WHERE person_id = ?", (i,)).fetchone()[0] for i in picks[:100]]
    sample += [conn.execute("SELECT city FROM people WHERE person_id = ?", (i,)).fetchone()[0] for i in picks[100:]]
    conn.close()
    return sample


def _misspell(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text))
    return text[:i] + text[i + 1:] if len(text) > 4 else text + "x"


def bench_values(tmp: Path, cells: int, rows: list[tuple[str, str, str]]) -> None:
    path = tmp / "values.sqlite"
    t = time.perf_counter()
    sample = make_text_db(path, cells)
    rows.append(("Value index: generated database", f"{cells:,} text cells", f"made in {time.perf_counter() - t:.1f} s"))
    db = open_database(path)
    rss0 = rss_mib()
    start = time.perf_counter()
    prof = TableProfiler(db, ProfileOptions(max_values_per_column=2_000_000))
    res = prof.profile(db.schema().tables[0])
    values = {(res.table.name, c): v for c, v in res.values.items()}
    read = time.perf_counter() - start
    index = ValueIndex.build(values, tmp / "vi")
    built = time.perf_counter() - start
    rss1 = rss_mib()
    n_values = sum(len(v) for v in values.values())
    rows.append(("Value index: distinct values indexed", f"{n_values:,}", f"columns {', '.join(c for _, c in values)}"))
    rows.append(("Value index: build (read + index + save)", f"{built:.1f} s", f"read {read:.1f} s; target < 60 s"))
    rows.append(("Value index: memory while building", f"+{rss1 - rss0:.0f} MiB", f"RSS {rss1:.0f} MiB"))
    rows.append(("Value index: size on disk", f"{dir_mib(tmp / 'vi'):.0f} MiB", ""))
    del index
    loaded = ValueIndex.load(tmp / "vi", mmap=True)
    rng = random.Random(3)
    queries = [_misspell(rng, s) for s in sample]
    loaded.lookup(queries[0])  # warm
    lat, found = [], 0
    for q, truth in zip(queries, sample):
        s = time.perf_counter()
        hits = loaded.lookup(q, k=10)
        lat.append((time.perf_counter() - s) * 1000)
        found += any(h[2] == truth for h in hits)
    lat.sort()
    rows.append(("Value index: lookup p50 / p95 (misspelled)", f"{lat[len(lat) // 2]:.1f} / {lat[int(len(lat) * 0.95)]:.1f} ms", "target p50 < 30 ms"))
    rows.append(("Value index: misspelled value in top 10", f"{found}/{len(sample)}", ""))
    rows.append(("Value index: RSS after memory-mapped load", f"{rss_mib():.0f} MiB", ""))


def make_wide_db(path: Path, tables: int, columns: int = 10, rows_per_table: int = 20) -> None:
    rng = random.Random(11)
    conn = sqlite3.connect(path)
    topics = ["order", "customer", "invoice", "shipment", "product", "supplier", "employee", "region", "account", "ticket"]
    fields = ["name", "status", "city", "amount", "created_at", "code", "category", "score", "notes"]
    for t in range(tables):
        name = f"{topics[t % len(topics)]}_{t:04d}"
        cols = [f"{name}_id INTEGER PRIMARY KEY"] + [f"{fields[(t + j) % len(fields)]}_{j} TEXT" for j in range(columns - 1)]
        conn.execute(f"CREATE TABLE {name} ({', '.join(cols)})")
        data = [tuple([i] + [f"{_word(rng)} {j}" for j in range(columns - 1)]) for i in range(rows_per_table)]
        conn.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * columns)})", data)
    conn.commit()
    conn.close()


def bench_wide(tmp: Path, tables: int, rows: list[tuple[str, str, str]]) -> None:
    path = tmp / "wide.sqlite"
    make_wide_db(path, tables)
    db = open_database(path)
    settings = Settings(cache_dir=tmp / "cache")
    rss0 = rss_mib()
    start = time.perf_counter()
    meta = load_or_build(db, settings)
    secs = time.perf_counter() - start
    rows.append(("Wide schema: tables / columns", f"{len(meta.tables):,} / {len(meta.columns):,}", ""))
    stages = ", ".join(f"{k} {v:.1f}" for k, v in meta.record.seconds.items())
    rows.append(("Wide schema: full index build", f"{secs:.1f} s", stages))
    rows.append(("Wide schema: memory while building", f"+{rss_mib() - rss0:.0f} MiB", ""))
    start = time.perf_counter()
    again = load_or_build(open_database(path), settings)
    rows.append(("Wide schema: second load_or_build", f"{(time.perf_counter() - start) * 1000:.0f} ms", f"built={again.built}, queries={again.queries}"))
    hits = meta.column_index.query("invoice amount", k=8)
    selection: dict[str, list[str]] = {}
    for t, c, _ in hits:
        selection.setdefault(t, []).append(c)
    question = "total amount of invoices"
    examples = retrieval.question_examples(meta, question, selection)
    linked = render_metadata_schema(meta.record, selection, granularity="complete", question_examples=examples)
    partial = render_metadata_schema(meta.record, selection, granularity="partial", question_examples=examples)
    full = render_metadata_schema(meta.record, granularity="partial")
    rows.append(("Wide schema: linked rendering (complete / partial)",
                 f"{len(linked):,} / {len(partial):,} chars", f"{len(selection)} tables from the column index"))
    rows.append(("Wide schema: full partial rendering", f"{len(full):,} chars", "never needed in a prompt"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spider", type=Path, default=REPO.parent / "shared" / "data" / "spider" / "database")
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--tables", type=int, default=1000)
    parts = ["spider", "values", "wide"]
    ap.add_argument("--skip", nargs="*", default=[], choices=parts, help="parts to leave out")
    ap.add_argument("--only", nargs="*", default=None, choices=parts,
                    help="run only these parts (e.g. --only values: the value index alone)")
    args = ap.parse_args(argv)
    if args.only is not None:
        args.skip = [p for p in parts if p not in args.only]
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="qsql-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if "spider" not in args.skip:
            bench_spider(args.spider, rows)
        if "values" not in args.skip:
            bench_values(tmp, args.cells, rows)
        if "wide" not in args.skip:
            bench_wide(tmp, args.tables, rows)
    print("| measure | value | notes |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
