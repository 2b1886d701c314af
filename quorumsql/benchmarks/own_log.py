"""The own-log protocol (issue 18): learn from part of each database's questions, test on the rest.

``quorumsql bench ... --own-log FRACTION --seed S`` measures what same-database examples are
worth without letting the answer in. For each database:

1. **Twins.** Questions are grouped when their gold SQL is the same (case, spacing, quote style
   and a final ``;`` ignored) or their gold results are the same (an order-insensitive key of
   the rows, :func:`quorumsql.agents.sql_text.result_key`); groups are closed under both
   relations (union-find), so a paraphrase pair, or two queries that compute the same thing
   differently, always land on one side.
2. **Split.** The groups are shuffled with a generator seeded by ``S`` and the database's id
   and taken into the *log* part while it stays within ``round(FRACTION * n)`` questions; the
   other groups are the *test* part. Only test questions are asked (``--sample`` / ``--limit``
   then choose among them).
3. **Memory.** The log part's pairs go into a memory private to the run
   (``RUN_DIR/memory/``, :mod:`quorumsql.metadata.examples`), never into the user's cache.
   With ``--own-log-source human`` the pairs are the benchmark's human-written questions with
   their gold SQL: the upper bound of what a query log can teach. Gold SQL that does not run
   is left out (and counted).

Because every twin group sits on one side, the memory never holds the asked question's own pair
or a twin of it; :func:`check_split` verifies this, and ``RUN_DIR/own_log.json`` records the
split (ids per side and per database, group counts, pairs stored).

``--own-log-source sql`` (the log's SQL alone, its questions written by the synthesis graph,
then filtered: the ``learn`` path) is the next slice of issue 18; :func:`learn_log_sql` is its
hook and says so.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorumsql.agents.sql_text import result_key
from quorumsql.benchmarks.datasets import Example
from quorumsql.db import Database
from quorumsql.errors import DatabaseError, InputError

__all__ = ["OWN_LOG_FILE", "SOURCES", "OwnLogSplit", "check_split", "fill_memories", "learn_log_sql", "sql_key",
           "split_own_log", "twin_groups", "write_split"]

OWN_LOG_FILE = "own_log.json"
MEMORY_DIR = "memory"
SOURCES = ("human", "sql")


def sql_key(sql: str) -> str:
    """Gold SQL normalised for twin detection: lower case, one quote style, single spaces, no final ``;``."""
    return " ".join(sql.lower().replace('"', "'").strip().rstrip(";").split())


@dataclass
class _Gold:
    example: Example
    sql: str
    result: str | None
    error: str | None


def _gold(examples: Sequence[Example], db: Database | None, timeout: float | None) -> list[_Gold]:
    out = []
    for ex in examples:
        sql = ex.gold_sql or ""
        result = error = None
        if db is None:
            error = "database unavailable"
        elif sql.strip():
            res = db.try_execute(sql, timeout=timeout)
            if res.ok:
                result = result_key(res.rows)
            else:
                error = " ".join(str(res.error).split())
        else:
            error = "no gold SQL"
        out.append(_Gold(ex, sql_key(sql) if sql.strip() else f"<none:{ex.id}>", result, error))
    return out


def twin_groups(golds: Sequence[_Gold]) -> list[list[_Gold]]:
    """Questions of one database grouped by equal gold SQL or equal gold result (transitively)."""
    parent = list(range(len(golds)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, g in enumerate(golds):
        for key in (f"sql:{g.sql}", f"result:{g.result}" if g.result is not None else None):
            if key is None:
                continue
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    groups: dict[int, list[_Gold]] = {}
    for i, g in enumerate(golds):
        groups.setdefault(find(i), []).append(g)
    return list(groups.values())


@dataclass
class OwnLogSplit:
    """A twin-aware split of each database's questions into a log part and a test part.

    Attributes:
        fraction, seed, source: the options it was made with.
        log, test: the examples on each side, in dataset order.
        databases: per db id: ``questions``, ``groups``, ``largest_group``, ``log`` and ``test``
            (question ids), ``gold_failed`` (log questions whose gold SQL did not run, kept out
            of the memory).
        pairs: per db id, the pairs for its memory (``question``, ``sql``, ``evidence``, ``source``).
    """

    fraction: float
    seed: int
    source: str
    log: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _keys: dict[str, tuple[str, str | None]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """What ``own_log.json`` records."""
        return {
            "fraction": self.fraction, "seed": self.seed, "source": self.source,
            "log_questions": len(self.log), "test_questions": len(self.test),
            "memory_pairs": sum(len(p) for p in self.pairs.values()),
            "databases": self.databases,
        }


def split_own_log(
    examples: Sequence[Example],
    fraction: float,
    *,
    seed: int = 0,
    source: str = "human",
    open_db: Callable[[str], Database],
    timeout: float | None = None,
) -> OwnLogSplit:
    """Split each database's questions into a log part and a test part, twins on one side.

    Args:
        examples: every question of the databases taking part (before any sampling).
        fraction: share of each database's questions that go to the log (0 < fraction < 1).
        seed: seeds the shuffle of the twin groups (with the database's id).
        source: ``human`` (the log's human-written questions become the memory) or ``sql``
            (the next slice, see :func:`learn_log_sql`).
        open_db: opens an example's ``db`` (path or URL).
        timeout: seconds per gold query (for the result twins).

    Returns:
        The :class:`OwnLogSplit`; a database whose file is missing has all its questions on the
        test side (the runner then skips them as usual).

    Raises:
        InputError: ``fraction`` outside (0, 1) or an unknown ``source``.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError(f"--own-log must be a fraction between 0 and 1 (exclusive), got {fraction:g}")
    if source not in SOURCES:
        raise InputError(f"unknown --own-log-source {source!r}; one of {', '.join(SOURCES)}")
    split = OwnLogSplit(fraction=fraction, seed=seed, source=source)
    by_db: dict[str, list[Example]] = {}
    for ex in examples:
        by_db.setdefault(ex.db_id, []).append(ex)
    side: dict[str, str] = {}
    for db_id, exs in by_db.items():
        try:
            db = open_db(exs[0].db)
            db.schema()
        except DatabaseError:
            db = None
        golds = _gold(exs, db, timeout)
        for g in golds:
            split._keys[g.example.id] = (g.sql, g.result)
        groups = twin_groups(golds)
        rng = random.Random(f"own-log:{seed}:{db_id}")
        rng.shuffle(groups)
        target = round(fraction * len(exs)) if db is not None else 0
        log: list[_Gold] = []
        for group in groups:
            if len(log) + len(group) <= target:
                log.extend(group)
                for g in group:
                    side[g.example.id] = "log"
        for g in golds:
            side.setdefault(g.example.id, "test")
        kept = [g for g in log if g.error is None]
        split.pairs[db_id] = [
            {"question": g.example.question, "sql": g.example.gold_sql, "evidence": g.example.evidence or "",
             "source": f"own-log {g.example.id} (human-written question)"}
            for g in sorted(kept, key=lambda g: exs.index(g.example))
        ]
        split.databases[db_id] = {
            "questions": len(exs), "groups": len(groups), "largest_group": max((len(g) for g in groups), default=0),
            "log": [e.id for e in exs if side[e.id] == "log"], "test": [e.id for e in exs if side[e.id] == "test"],
            "gold_failed": [g.example.id for g in log if g.error is not None],
            **({"note": "database unavailable: every question is on the test side"} if db is None else {}),
        }
    split.log = [e for e in examples if side.get(e.id) == "log"]
    split.test = [e for e in examples if side.get(e.id) == "test"]
    return split


def check_split(split: OwnLogSplit) -> None:
    """Verify that no log question shares a gold SQL or a gold result with a test question of its database.

    Raises:
        AssertionError: a twin crossed the split (a bug: the split would leak answers).
    """
    for db_id, info in split.databases.items():
        log_keys = set()
        for i in info["log"]:
            sql, res = split._keys[i]
            log_keys.add(("sql", sql))
            if res is not None:
                log_keys.add(("result", res))
        for i in info["test"]:
            sql, res = split._keys[i]
            assert ("sql", sql) not in log_keys, f"{i} of {db_id} has a log twin by SQL"
            assert res is None or ("result", res) not in log_keys, f"{i} of {db_id} has a log twin by result"


def learn_log_sql(split: OwnLogSplit, **kwargs: Any) -> None:
    """Hook of ``--own-log-source sql``: the log's gold SQL alone through the ``learn`` path.

    The next slice of issue 18 fills the memory from the log part's SQL (questions thrown away)
    with the synthesis graph (execution filter, question writing, round-trip filter) and reports
    the fraction of SQL kept and seconds per kept pair.

    Raises:
        InputError: always, until that slice lands.
    """
    raise InputError("--own-log-source sql (learning from the log's SQL alone through `quorumsql learn`) is not "
                     "built yet (issue 18, next slice); use --own-log-source human")


def fill_memories(split: OwnLogSplit, memories, open_db: Callable[[str], Database]) -> dict[str, int]:
    """Put each database's log pairs into its memory in ``memories`` (an
    :class:`~quorumsql.metadata.examples.ExampleMemories` private to the run).

    A memory that already holds exactly these pairs (a resumed run) is left as it is, so the
    pair ids recorded in earlier results stay valid; otherwise it is emptied and filled.

    Returns:
        ``{db_id: pairs stored}``.
    """
    if split.source == "sql":
        learn_log_sql(split)
    stored: dict[str, int] = {}
    first_db = {e.db_id: e.db for e in [*split.log, *split.test]}
    for db_id, pairs in split.pairs.items():
        if db_id not in first_db:
            continue
        try:
            db = open_db(first_db[db_id])
        except DatabaseError:
            continue
        memory = memories.memory_for(db)
        have = {(p.question, p.sql.strip().rstrip(";").strip(), p.evidence) for p in memory.pairs(include_broken=True)}
        want = {(" ".join(p["question"].split()), p["sql"].strip().rstrip(";").strip(), p["evidence"].strip())
                for p in pairs}
        if have != want:
            memory.clear()
            memory.add_many(pairs, provenance="log")
        stored[db_id] = memory.count()
    return stored


def write_split(run_dir: str | Path, split: OwnLogSplit, stored: dict[str, int]) -> Path:
    """Write ``RUN_DIR/own_log.json`` (the split, and the pairs stored per database); returns its path."""
    from quorumsql.benchmarks.runner import write_json_atomic

    path = Path(run_dir) / OWN_LOG_FILE
    doc = split.to_json()
    for db_id, n in stored.items():
        doc["databases"].setdefault(db_id, {})["memory_pairs"] = n
    write_json_atomic(path, json.loads(json.dumps(doc, default=str)))
    return path


# -- the bench command's side ---------------------------------------------------------------
def check_options(args) -> None:
    """Refuse ``--own-log`` options that cannot work, before anything is loaded.

    Raises:
        InputError: a baseline or ``--task linking`` (no example memory there), a fraction
            outside (0, 1), or ``--own-log-source sql`` (not built yet).
    """
    if getattr(args, "baseline", None):
        raise InputError("--own-log measures the pipeline's example memory; a baseline shows no examples")
    if getattr(args, "task", "answer") != "answer":
        raise InputError("--own-log goes with --task answer")
    if not 0.0 < args.own_log < 1.0:
        raise InputError(f"--own-log must be a fraction between 0 and 1 (exclusive), got {args.own_log:g}")
    if args.own_log_source == "sql":
        learn_log_sql(None)  # type: ignore[arg-type]


def _opener(settings) -> Callable[[str], Database]:
    from quorumsql.db import open_database

    opened: dict[str, Database] = {}

    def open_db(spec: str) -> Database:
        if spec not in opened:
            opened[spec] = open_database(spec, query_timeout=settings.query_timeout, max_rows=settings.max_rows)
        return opened[spec]

    return open_db


def split_for_run(args, settings, dataset) -> tuple[OwnLogSplit, list[Example]]:
    """The split of ``bench --own-log`` and the test questions to ask (``--sample`` / ``--limit`` among them).

    Raises:
        InputError: an unknown db id in ``--db-ids``, or no test question left.
    """
    everything = dataset.select(db_ids=args.db_ids)
    split = split_own_log(everything, args.own_log, seed=args.seed, source=args.own_log_source,
                          open_db=_opener(settings), timeout=settings.query_timeout)
    check_split(split)
    if not split.test:
        raise InputError("--own-log left no test question (every twin group went to the log)")
    tests = dataset.model_copy(update={"examples": split.test})
    examples = tests.select(limit=args.limit, sample=args.sample, seed=args.seed)
    print(f"own log: {len(split.log)} log and {len(split.test)} test questions over {len(split.databases)} "
          f"database(s) (fraction {split.fraction:g}, seed {split.seed}, source {split.source}); "
          f"asking {len(examples)} test question(s)", flush=True)
    return split, examples


def prepare_run(args, split: OwnLogSplit, system) -> str:
    """Fill the run's private memories with the log pairs and record the split; returns one line.

    Raises:
        ConfigError: ``OUT`` holds a run and ``--resume`` is not given, or the run recorded
            another split (other fraction, seed, source or questions): checked before the
            memory is touched.
    """
    from quorumsql.benchmarks.runner import RESULTS_FILE, RUN_FILE
    from quorumsql.errors import ConfigError

    run_dir = Path(args.out)
    results = run_dir / RESULTS_FILE
    if not args.resume and ((run_dir / RUN_FILE).is_file() or (results.is_file() and results.stat().st_size)):
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    recorded = run_dir / OWN_LOG_FILE
    if recorded.is_file():
        try:
            old = json.loads(recorded.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        new = split.to_json()
        same = isinstance(old, dict) and all(old.get(k) == new[k] for k in ("fraction", "seed", "source")) and {
            d: v.get("log") for d, v in (old.get("databases") or {}).items()} == {
            d: v["log"] for d, v in new["databases"].items()}
        if not same:
            raise ConfigError(f"{run_dir} was run with another --own-log split ({recorded}); resume with the same "
                              "--own-log, --own-log-source, --seed and questions, or choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {run_dir}: {exc}") from None
    stored = fill_memories(split, system.pipeline.memories, _opener(system.pipeline.settings))
    path = write_split(run_dir, split, stored)
    preset = system.pipeline.preset
    line = (f"own log: {sum(stored.values())} pair(s) in the run's memories ({run_dir / MEMORY_DIR}); "
            f"split recorded in {path}")
    if "icl" not in preset.generators or not preset.memory:
        line += (f"\nnote: preset {preset.name} shows no memory examples (no icl generator with memory on): "
                 "this run is the no-memory baseline on the own-log test questions")
    return line
