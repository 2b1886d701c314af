"""``quorumsql synth`` and ``quorumsql synth review``.

Examples::

    # SQLord's reverse generation from a query log (Spider's training SQL)
    quorumsql synth --seed-sql ../shared/data/spider/train_gold.sql --data ../shared/data/spider \\
        --limit 50 --out synth/
    quorumsql synth ... --out synth/ --resume               # continue a killed or stopped run
    # a database alone: SQL written at complexity levels, or questions written first
    quorumsql synth --db shop.sqlite --complexity simple,moderate --per-seed 3 --out synth-shop/
    quorumsql synth --data ../shared/data/spider --db-ids farm --questions-first --out synth-farm/
    # existing (question, SQL) pairs to refine and vary
    quorumsql synth --pairs pairs.jsonl --data ../shared/data/spider --out synth-pairs/
    # review the actively selected records
    quorumsql synth review synth/ --write                   # synth/review.csv
    quorumsql synth review synth/ --read                    # apply it, re-export, calibrate the judge

Exit codes of ``synth``: 0 every seed done; 1 some seeds failed with model errors (``--resume``
retries them); 2 bad input, or every seed failed on its database (nothing synthesized; the
dropped records are kept); 3 stopped because the model kept failing; 130 interrupted. ``OUT`` receives
``records.jsonl``, ``sft.jsonl``, ``alpaca.jsonl``, ``icl_pool.jsonl``, ``summary.json``, ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from pathlib import Path

from quorumsql.cli import interruptible_run
from quorumsql.errors import ConfigError, DatabaseError, InputError


def register(subparsers) -> None:
    """Add the ``synth`` subcommand (and ``synth review``) to the ``quorumsql`` parser."""
    synth = subparsers.add_parser(
        "synth", help="synthesize (question, evidence, SQL, chain of thought) data from databases and SQL logs",
        description="Turn seed SQL, databases or existing pairs into training data and ICL pools: SQL variation, "
        "execution filter, question writing, consistency judge, chain of thought, difficulty, near-duplicate "
        "removal and active selection for review. Records go to OUT/records.jsonl (append-only, --resume), "
        "exports to OUT/sft.jsonl, OUT/alpaca.jsonl and OUT/icl_pool.jsonl, counts to OUT/summary.json.",
    )
    src = synth.add_argument_group("seeds")
    src.add_argument("--seed-sql", metavar="FILE", help="seed SQL, one query per line, optionally <TAB>db_id "
                     "(e.g. ../shared/data/spider/train_gold.sql)")
    src.add_argument("--pairs", metavar="FILE", help="existing pairs, JSONL with question, query/SQL/sql, "
                     "db_id (or db) and optional evidence")
    src.add_argument("--data", metavar="DIR", help="databases in Spider's layout: DIR/database/<db_id>/<db_id>.sqlite")
    src.add_argument("--db", metavar="PATH_OR_URL", help="one database for every seed (SQLite path or URL)")
    src.add_argument("--db-ids", nargs="+", metavar="DB_ID", help="only these databases (seed lines on others "
                     "are left out; database-alone seeds are made for these)")
    src.add_argument("--complexity", metavar="LEVELS", help="database-alone seeds: SQL written at these levels, "
                     "comma-separated: simple, moderate, complex, highly complex (default when no --seed-sql or "
                     "--pairs is given: simple,moderate,complex)")
    src.add_argument("--questions-first", action="store_true", help="database-alone seeds: write questions "
                     "first and answer them with the inference graph (ASASQL's forward path)")
    src.add_argument("--limit", type=int, metavar="N", help="first N seeds")
    src.add_argument("--sample", type=int, metavar="N",
                     help="N seeds drawn at random with --seed (kept in file order), so that a few "
                          "seeds cover many databases; with --limit, the sample is taken first")
    work = synth.add_argument_group("work per seed")
    work.add_argument("--variants", type=int, default=1, metavar="N",
                      help="SQL variants per seed SQL (default 1; 0: none)")
    work.add_argument("--questions", type=int, default=3, metavar="N",
                      help="candidate questions per SQL, in different styles (default 3)")
    work.add_argument("--per-seed", type=int, default=2, metavar="N",
                      help="SQL queries (or questions) written per database-alone seed (default 2)")
    work.add_argument("--exec-runs", type=int, default=3, metavar="N", help="zero-shot generator runs per pair "
                      "for execution difficulty and agreement (default 3; 0: not measured)")
    work.add_argument("--judge-threshold", type=float, default=0.5, metavar="F",
                      help="least consistency-judge score (0..1) a pair needs (default 0.5)")
    work.add_argument("--keep-empty", action="store_true", help="keep SQL whose result is empty or all NULL")
    work.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds per SQL execution (default 10)")
    work.add_argument("--seed", type=int, default=0, help="seed of sampled model calls and clustering (default 0)")
    work.add_argument("--preset", help="inference preset: answers questions-first seeds, bounds generator tokens "
                      "(default from settings)")
    run = synth.add_argument_group("run and output")
    run.add_argument("--out", metavar="DIR", help="run directory (required)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished seeds")
    run.add_argument("--dedup-threshold", type=float, default=0.95, metavar="F",
                     help="cosine similarity of (question, SQL) pairs from which one is a near-duplicate "
                     "(default 0.95)")
    run.add_argument("--clusters", type=int, metavar="K",
                     help="clusters for active selection (default: square root of the pool)")
    run.add_argument("--per-cluster", type=int, default=1, metavar="N", help="records picked for review per cluster")
    run.add_argument("--sft-answer", choices=["cot", "sql"], default="cot",
                     help="SFT assistant turn: the chain of thought ending in the SQL (default) or the SQL alone")
    run.add_argument("--max-model-failures", type=int, default=3, metavar="N",
                     help="stop after this many seeds in a row with model errors (default 3)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(func=cmd_synth)

    sub = synth.add_subparsers(dest="synth_command", metavar="review")
    review = sub.add_parser("review", help="write or read the human-review CSV of a synthesis run",
                            description="--write puts the actively selected records into a CSV (id, db_id, question, "
                            "evidence, sql, judge score, verdict, fixed_sql); --read applies the filled-in verdicts "
                            "(correct / wrong / fixed), re-exports, and reports how well the judge's score "
                            "predicted them.")
    review.add_argument("run_dir", metavar="OUT", help="the synthesis run directory")
    mode = review.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the review CSV")
    mode.add_argument("--read", action="store_true", help="apply a filled-in review CSV")
    review.add_argument("--csv", metavar="FILE", help="the CSV (default OUT/review.csv)")
    review.set_defaults(func=cmd_review)


def _redact(spec: str | None) -> str | None:
    return None if spec is None else re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", spec)


def _abs(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def _positive(value: int | None, flag: str, *, zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not zero)):
        raise InputError(f"{flag} must be {'zero or more' if zero else 'positive'}, got {value}")


def build_seeds(args: argparse.Namespace):
    """The seeds the flags select, and their description for ``run.json``.

    Returns:
        ``(seeds, problems, seeds_config)``: problems are skipped input lines (pairs file).

    Raises:
        InputError: no database source, unreadable seed files, unknown levels or ids, no seed.
    """
    from quorumsql.synthesis.seeds import (
        DatabaseLocator,
        questions_seeds,
        read_pairs,
        read_seed_sql,
        schema_seeds,
    )

    locator = DatabaseLocator(args.data, args.db) if (args.data or args.db) else None
    seeds, problems = [], []
    if args.seed_sql:
        if locator is None:
            raise InputError("--seed-sql needs --data DIR or --db PATH_OR_URL to find the databases")
        seeds += read_seed_sql(args.seed_sql, locator)
    if args.pairs:
        found, problems = read_pairs(args.pairs, locator)
        seeds += found
    alone = None
    if args.complexity or args.questions_first or not (args.seed_sql or args.pairs):
        if locator is None:
            raise InputError("give seeds (--seed-sql or --pairs) or databases to seed from (--data or --db)")
        databases = locator.databases(args.db_ids)
        if args.questions_first:
            seeds += questions_seeds(databases)
            alone = {"mode": "questions"}
        else:
            levels = [c.strip() for c in (args.complexity or "simple,moderate,complex").split(",") if c.strip()]
            seeds += schema_seeds(databases, levels)
            alone = {"mode": "schema", "complexity": levels}
    if args.db_ids and (args.seed_sql or args.pairs):
        wanted = set(args.db_ids)
        seeds = [s for s in seeds if s.kind in ("schema", "questions") or s.db_id in wanted]
    if args.sample is not None and args.sample < len(seeds):
        chosen = sorted(random.Random(args.seed).sample(range(len(seeds)), args.sample))
        seeds = [seeds[i] for i in chosen]
    if args.limit is not None:
        seeds = seeds[:args.limit]
    if not seeds:
        raise InputError("no seed selected" + (f" ({len(problems)} pair line(s) skipped)" if problems else ""))
    config = {"seed_sql": _abs(args.seed_sql), "pairs": _abs(args.pairs), "data": _abs(args.data),
              "sample": args.sample, "sample_seed": args.seed if args.sample is not None else None,
              "db": _redact(args.db), "db_ids": args.db_ids, "database_alone": alone}
    return seeds, problems, config


def _context(settings, preset, options):
    from quorumsql.graph.synthesis import SynthesisContext

    return SynthesisContext(settings=settings, preset=preset, options=options)


def cmd_synth(args: argparse.Namespace) -> int:
    """Handler of ``quorumsql synth``; returns the exit code (see the module docstring)."""
    from pydantic import ValidationError

    from quorumsql.config import Settings
    from quorumsql.synthesis.records import SynthOptions
    from quorumsql.synthesis.runner import SynthesisRunner

    if not args.out:
        raise InputError("--out DIR is required: the run directory for records.jsonl and the exports")
    _positive(args.limit, "--limit")
    _positive(args.sample, "--sample")
    _positive(args.clusters, "--clusters")
    _positive(args.per_cluster, "--per-cluster")
    _positive(args.max_model_failures, "--max-model-failures")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise InputError(f"--timeout must be a number of seconds above 0, got {args.timeout:g}")
    if not 0.0 < args.dedup_threshold <= 1.0:
        raise InputError(f"--dedup-threshold must be in (0, 1], got {args.dedup_threshold}")
    try:
        options = SynthOptions(variants=args.variants, questions=args.questions, per_seed=args.per_seed,
                               exec_runs=args.exec_runs, judge_threshold=args.judge_threshold,
                               keep_empty=args.keep_empty, query_timeout=args.timeout, seed=args.seed)
    except ValidationError as exc:
        bad = "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid option: {bad}") from None
    settings = Settings.load(args.config)
    seeds, problems, seeds_config = build_seeds(args)
    for p in problems[:20]:
        print(f"warning: {p}", file=sys.stderr)
    if len(problems) > 20:
        print(f"warning: ... and {len(problems) - 20} more skipped line(s)", file=sys.stderr)
    missing = [s for s in seeds if s.db_error]
    if missing:
        print(f"warning: {len(missing)} seed(s) name a database that is not there; they are recorded as dropped "
              f"(first: {missing[0].db_error})", file=sys.stderr)
    context = _context(settings, args.preset or settings.preset, options)
    runner = SynthesisRunner(args.out, context, progress=not args.no_progress,
                             max_model_failures=args.max_model_failures, dedup_threshold=args.dedup_threshold,
                             clusters=args.clusters, per_cluster=args.per_cluster, sft_answer=args.sft_answer)
    print(f"synthesizing from {len(seeds)} seed(s) into {args.out}", file=sys.stderr, flush=True)
    with interruptible_run(f"finished seeds are saved in {Path(args.out) / 'records.jsonl'}"):
        result = runner.run(seeds, resume=args.resume, seeds_config=seeds_config)
    if result.status == "failed":  # the records, exports and summary.json are written all the same
        raise DatabaseError(result.message)
    print(result.message)
    _print_summary(result.summary)
    return {"finished": 0, "incomplete": 1, "stopped": 3}.get(result.status, 1)


def _print_summary(s: dict) -> None:
    if not s:
        return
    print(f"records {s['records']}, kept {s['kept']}; dropped: "
          + (", ".join(f"{k} {v}" for k, v in s["dropped_by"].items()) or "none"))
    comp = ", ".join(f"{k} {v}" for k, v in sorted(s["difficulty"]["component"].items()))
    exe = ", ".join(f"{k} {v}" for k, v in sorted(s["difficulty"]["execution"].items()))
    print(f"difficulty (kept): component {comp or '-'}; execution {exe or '-'}")
    if s.get("tokens_per_kept") is not None:
        print(f"per kept record: {s['tokens_per_kept']:.0f} tokens, {s['seconds_per_kept']:.1f} s "
              f"({s['tokens']['calls']} LLM calls in all)")
    exports = s.get("exports") or {}
    if exports:
        print(f"exports: sft {exports['sft']}, alpaca {exports['alpaca']}, icl_pool {exports['icl_pool']}; "
              f"{s.get('review_selected', 0)} record(s) selected for review (quorumsql synth review OUT --write)")


def _run_config(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{run_dir} holds no synthesis run (no run.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from None
    return (doc.get("config") or {}) if isinstance(doc, dict) else {}


def cmd_review(args: argparse.Namespace) -> int:
    """Handler of ``quorumsql synth review``."""
    from pydantic import ValidationError

    from quorumsql.config import Preset, Settings
    from quorumsql.synthesis.records import SynthOptions
    from quorumsql.synthesis.runner import SynthesisRunner

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir} is not a folder (give the --out of a quorumsql synth run)")
    config = _run_config(run_dir)
    settings = Settings.load(args.config)
    try:
        options = SynthOptions.model_validate(config.get("options") or {})
        preset = Preset.model_validate(config["preset"]) if config.get("preset") else settings.preset
    except ValidationError as exc:
        raise ConfigError(f"{run_dir / 'run.json'} holds invalid options: {exc}") from None
    b = config.get("batch") or {}
    runner = SynthesisRunner(run_dir, _context(settings, preset, options), progress=False,
                             dedup_threshold=b.get("dedup_threshold", 0.95), clusters=b.get("clusters"),
                             per_cluster=b.get("per_cluster", 1), sft_answer=b.get("sft_answer", "cot"))
    if args.write:
        n, path = runner.review_write(args.csv)
        print(f"wrote {n} record(s) to review to {path}: fill in verdict (correct / wrong / fixed) "
              f"and fixed_sql for fixed, then run: quorumsql synth review {run_dir} --read"
              + (f" --csv {args.csv}" if args.csv else ""))
        return 0
    outcome = runner.review_read(args.csv)
    applied = ", ".join(f"{k} {v}" for k, v in sorted(outcome.applied.items())) or "none"
    print(f"{outcome.rows} row(s): applied {applied}; {outcome.unreviewed} left blank; "
          f"{len(outcome.rejected)} rejected; {len(outcome.missing)} selected record(s) missing from the CSV")
    for r in outcome.rejected[:20]:
        print(f"  rejected line {r.line} ({r.id or 'no id'}): {r.reason}")
    cal = outcome.calibration
    if cal.n:
        auc = "n/a (one class only)" if cal.auc is None else f"{cal.auc:.3f}"
        print(f"judge vs {cal.n} verdict(s) ({cal.positives} correct): accuracy {100 * cal.accuracy:.1f}% at "
              f"threshold {cal.threshold:g}; best threshold {cal.best_threshold:g} "
              f"({100 * cal.best_accuracy:.1f}%); AUC {auc}")
    print(f"report: {run_dir / 'review_report.json'}; exports rewritten in {run_dir}")
    return 0
