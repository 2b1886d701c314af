"""``quorumsql bench`` and ``quorumsql report``.

Examples::

    quorumsql bench --dataset spider --data ../shared/data/spider --preset fast --limit 20 --out runs/x
    quorumsql bench --dataset spider --data ../shared/data/spider --baseline zs-ddl-rows \\
        --sample 20 --seed 0 --out runs/y
    quorumsql bench ... --out runs/x --resume        # continue a killed or stopped run
    quorumsql bench --dataset spider --data ../shared/data/spider --own-log 0.5 --seed 0 --sample 60 \
        --preset-file benchmarks/presets/balanced-memory.json --out runs/m   # half of each database's
                                                     # questions as its memory, the other half asked
    quorumsql report runs/x runs/y                   # runs/x/report.{md,html}, diff.json

Exit codes of ``bench``: 0 every question done; 1 some questions still to do (skipped or model
failures; ``--resume`` retries them); 3 stopped because the model endpoint (or scoring) kept
failing; 130 interrupted (Ctrl-C, SIGTERM or SIGHUP; ``run.json`` records it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

from quorumsql.cli import interruptible_run
from quorumsql.errors import ConfigError, InputError

DEFAULT_EX = {"spider": "spider", "bird": "bird", "jsonl": "bird"}


def register(subparsers) -> None:
    """Add the ``bench`` and ``report`` subcommands to the ``quorumsql`` parser."""
    from quorumsql.benchmarks.systems import BASELINES

    bench = subparsers.add_parser(
        "bench", help="run a benchmark (Spider, BIRD or JSONL) into a resumable run directory",
        description="Answer benchmark questions with a preset or a baseline, score them with the "
        "official BIRD / Spider semantics and append one line per question to OUT/results.jsonl.",
    )
    bench.add_argument("--task", choices=["answer", "linking"], default="answer",
                       help="answer: the whole pipeline, scored by EX (default); linking: only the "
                       "schema-linking stages, scored by column recall / precision against the gold SQL")
    bench.add_argument("--rescore", action="store_true",
                       help="with --task linking: no model calls; rebuild the linked schemas of the recorded run from "
                       "its recorded keywords, retrieval hits and drafts with the current linking code, and score them "
                       "(written to OUT/<preset>/linking-rescored.jsonl)")
    bench.add_argument("--dataset", required=True, choices=["spider", "bird", "jsonl"])
    bench.add_argument("--data", required=True, help="dataset directory (spider, bird) or file (bird question file, jsonl)")
    bench.add_argument("--split", default="dev", help="Spider question file stem (default dev)")
    bench.add_argument("--out", required=True, help="run directory (RUN_DIR)")
    system = bench.add_mutually_exclusive_group()
    system.add_argument("--preset", help="pipeline preset: fast, balanced, accurate (default from settings); "
                        "with --task linking a comma-separated list, each measured in OUT/<preset>")
    system.add_argument("--preset-file", help="JSON or TOML file with a custom preset (Preset fields)")
    system.add_argument("--baseline", choices=BASELINES, help="single-call zero-shot baseline instead of the pipeline")
    bench.add_argument("--limit", type=int, help="first N selected questions")
    bench.add_argument("--sample", type=int, help="random sample of N questions (with --seed)")
    bench.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    bench.add_argument("--db-ids", nargs="+", metavar="DB_ID", help="only questions on these databases")
    bench.add_argument("--own-log", type=float, metavar="FRACTION",
                       help="split each database's questions (twins by gold SQL or result on one side, seeded by "
                       "--seed) into a log part whose pairs fill a memory private to the run and a test part, the "
                       "only questions asked (--sample / --limit choose among them); the split is in OUT/own_log.json")
    bench.add_argument("--own-log-source", choices=["human", "sql"], default="human",
                       help="with --own-log: human = the log's human-written questions and gold SQL (the upper "
                       "bound); sql = the log's SQL alone through `learn` (not built yet)")
    bench.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished questions")
    bench.add_argument("--concurrency", type=int, default=1, help="questions in flight at once (remote endpoints)")
    bench.add_argument("--timeout", type=float, help="seconds per SQL execution when scoring (default: settings.query_timeout, 30)")
    bench.add_argument("--ex", choices=["bird", "spider"], help="which EX is the headline (default: the dataset's own)")
    bench.add_argument("--keep-distinct", action="store_true",
                       help="Spider EX: keep DISTINCT (the official evaluator removes it by default)")
    bench.add_argument("--ves", type=int, default=0, metavar="N",
                       help="also compute R-VES with N timed executions per correct prediction (official: 100)")
    bench.add_argument("--judge", action="store_true", help="also score with the LLM judge (QSE, SSE; role 'judge')")
    bench.add_argument("--max-tokens", type=int, help="completion budget of baseline calls (default 384)")
    bench.add_argument("--max-model-failures", type=int, default=3,
                       help="stop after this many consecutive questions with model errors (default 3)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.set_defaults(func=cmd_bench)

    report = subparsers.add_parser(
        "report", help="Markdown + HTML report comparing run directories, with a per-question diff",
    )
    report.add_argument("runs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--out", help="output directory (default: the first RUN_DIR)")
    report.set_defaults(func=cmd_report)


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse numeric ``bench`` flags out of range, before anything is loaded or written.

    Raises:
        InputError: ``--limit``, ``--sample``, ``--concurrency``, ``--max-model-failures`` or
            ``--max-tokens`` below 1, ``--ves`` below 0, or ``--timeout`` not a number of
            seconds above 0.
    """
    for flag, value, least in (("--limit", args.limit, 1), ("--sample", args.sample, 1),
                               ("--concurrency", args.concurrency, 1),
                               ("--max-model-failures", args.max_model_failures, 1),
                               ("--max-tokens", args.max_tokens, 1), ("--ves", args.ves, 0)):
        if value is not None and value < least:
            raise InputError(f"{flag} must be {'positive' if least else 'zero or more'}, got {value}")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise InputError(f"--timeout must be a number of seconds above 0, got {args.timeout:g}")


def _load_preset_file(path: str):
    from pydantic import ValidationError

    from quorumsql.config import Preset

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"preset file not found: {p}") from None
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"preset file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    data = data.get("preset", data)
    data.setdefault("name", p.stem)
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid preset in {p}: {exc}") from None


def _build_system(args, settings, dataset, own_log=None):
    from quorumsql.benchmarks.own_log import MEMORY_DIR
    from quorumsql.benchmarks.systems import BaselineSystem, PipelineSystem
    from quorumsql.llm import get_chat_model

    if args.baseline:
        return BaselineSystem(
            args.baseline, llm_factory=lambda: get_chat_model(settings, role="generator"),
            max_tokens=args.max_tokens or 384, descriptions=dataset.descriptions,
        )
    from quorumsql.api import Pipeline

    preset = _load_preset_file(args.preset_file) if args.preset_file else (args.preset or settings.preset)
    # a run never reads the user's example memories: its own (empty unless --own-log fills it)
    pipeline = Pipeline(settings, preset=preset, examples_dir=Path(args.out) / MEMORY_DIR)
    return PipelineSystem(pipeline, descriptions=dataset.descriptions, own_log=own_log)


def _bench_linking(args, settings, dataset, examples) -> int:
    """``bench --task linking``: run the linking stages per preset and print the summaries."""
    from tqdm import tqdm

    from quorumsql.api import Pipeline
    from quorumsql.benchmarks.linking import (
        format_summary,
        run_linking,
        summarize_linking,
    )

    if args.baseline:
        raise InputError("--task linking measures presets; a baseline has no linking stage")
    presets = [_load_preset_file(args.preset_file)] if args.preset_file else (args.preset or settings.preset).split(",")
    print(f"schema linking on {len(examples)} question(s) (seed {args.seed})", flush=True)
    for preset in presets:
        pipe = Pipeline(settings, preset=preset.strip() if isinstance(preset, str) else preset)
        name = pipe.preset.name
        for ex in examples:
            if dataset.descriptions.get(ex.db_id):
                pipe.set_descriptions(ex.db, dataset.descriptions[ex.db_id])
        ids = {e.id for e in examples}
        if args.rescore:
            from quorumsql.benchmarks.linking import (
                RESULTS,
                read_linking_results,
                rescore_linking,
            )

            path = Path(args.out) / name / RESULTS
            if not path.is_file():
                raise InputError(f"nothing to rescore: {path} does not exist")
            records = rescore_linking(read_linking_results(path), pipe, {e.id: e.db for e in examples})
            out = path.with_name("linking-rescored.jsonl")
            out.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records), encoding="utf-8")
            print(format_summary(f"{name} (rescored with the current linking code)",
                                 summarize_linking([r for r in records if r["id"] in ids])), flush=True)
            continue
        bar = tqdm(total=len(examples), desc=name, disable=args.no_progress, unit="q")
        records = run_linking(examples, pipe, Path(args.out) / name, resume=args.resume,
                              progress=lambda done, total: (bar.update(done - bar.n)))
        bar.close()
        print(format_summary(name, summarize_linking([r for r in records if r["id"] in ids])), flush=True)
    return 0


def _cache_note(summary: dict) -> str:
    if summary.get("read_tokens") is None:
        return ""
    return f" ({summary['read_tokens']:.0f} read, {summary['cached_tokens']:.0f} from cache)"


def cmd_bench(args: argparse.Namespace) -> int:
    """Handler of ``quorumsql bench``; returns the exit code (see the module docstring)."""
    from quorumsql.benchmarks.datasets import load_dataset
    from quorumsql.benchmarks.evaluators import Evaluator
    from quorumsql.benchmarks.judge import Judge
    from quorumsql.benchmarks.report import load_run, summarize
    from quorumsql.benchmarks.runner import BenchmarkRunner
    from quorumsql.config import Settings
    from quorumsql.llm import get_chat_model

    check_numbers(args)
    own_log = getattr(args, "own_log", None)
    if own_log is not None:
        from quorumsql.benchmarks.own_log import check_options

        check_options(args)
    settings = Settings.load(args.config)
    dataset = load_dataset(args.dataset, args.data, split=args.split)
    for w in dataset.warnings:
        print(f"warning: {w}", file=sys.stderr)
    split = None
    if own_log is not None:
        from quorumsql.benchmarks.own_log import split_for_run

        split, examples = split_for_run(args, settings, dataset)
    else:
        examples = dataset.select(limit=args.limit, sample=args.sample, seed=args.seed, db_ids=args.db_ids)
    if not examples:
        raise InputError("no question selected")
    missing = sorted({e.db for e in examples if "://" not in e.db and not Path(e.db).is_file()})
    if missing:
        print(f"warning: {len(missing)} database file(s) missing, their questions will be skipped: "
              + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""), file=sys.stderr)
    if args.task == "linking":
        return _bench_linking(args, settings, dataset, examples)
    own_info = None if split is None else {"fraction": split.fraction, "seed": split.seed, "source": split.source}
    system = _build_system(args, settings, dataset, own_log=own_info)
    if split is not None:
        from quorumsql.benchmarks.own_log import prepare_run

        print(prepare_run(args, split, system), flush=True)
    evaluator = Evaluator(
        args.ex or DEFAULT_EX[args.dataset],
        timeout=args.timeout or settings.query_timeout,
        keep_distinct=args.keep_distinct,
        ves_iterations=args.ves,
    )
    judge = Judge(get_chat_model(settings, role="judge")) if args.judge else None
    runner = BenchmarkRunner(
        system, evaluator, args.out, judge=judge, concurrency=args.concurrency,
        max_model_failures=args.max_model_failures, descriptions=dataset.descriptions,
        query_timeout=settings.query_timeout, max_rows=settings.max_rows, progress=not args.no_progress,
    )
    dataset_info = {
        "kind": args.dataset, "path": str(Path(args.data).resolve()), "split": args.split,
        "selection": {"limit": args.limit, "sample": args.sample, "seed": args.seed, "db_ids": args.db_ids,
                      **({"own_log": own_info} if own_info else {})},
        "loaded": len(dataset.examples), "warnings": dataset.warnings[:50],
    }
    # SIGKILL cannot be caught; results.jsonl is safe anyway
    with interruptible_run(f"finished questions are saved in {Path(args.out) / 'results.jsonl'}"):
        outcome = runner.run(examples, resume=args.resume, dataset_info=dataset_info)
    summary = summarize(load_run(args.out))
    print(outcome.message)
    if summary["n"]:
        ex = "–" if summary["ex"] is None else f"{summary['ex']:.1f}%"
        print(
            f"{summary['system']}: EX {ex} over {summary['n']} question(s); per question "
            f"{summary['prompt_tokens']:.0f} prompt{_cache_note(summary)} + {summary['completion_tokens']:.0f} "
            "completion tokens, "
            f"{summary['llm_calls']:.2f} LLM calls, {summary['system_seconds']:.1f} s answering "
            f"(system time; {summary['seconds']:.1f} s with gold execution and scoring)"
        )
        if summary["gold_failures"]:
            print(f"gold SQL failed on {sum(summary['gold_failures'].values())} question(s) "
                  f"({', '.join(f'{k} {v}' for k, v in summary['gold_failures'].items())}); scored 0")
    print(f"results: {Path(args.out) / 'results.jsonl'}")
    return {"finished": 0, "incomplete": 1, "stopped": 3}.get(outcome.status, 1)


def cmd_report(args: argparse.Namespace) -> int:
    """Handler of ``quorumsql report``: writes report.md, report.html and diff.json."""
    from quorumsql.benchmarks.report import write_report

    paths = write_report(args.runs, args.out)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
