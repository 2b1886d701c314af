"""Per-database commands: ``index`` builds the metadata store; ``teach`` and ``examples`` manage
the example memory.

``quorumsql index DB [--descriptions DIR] [--cache-dir DIR] [--force]``
``quorumsql teach DB --question Q --sql S [--evidence E]``: run S read-only, then store the pair
(a pair that does not run is refused with the database's reason, exit 2).
``quorumsql examples DB [--export FILE | --remove ID]``: list, export (JSON Lines) or remove pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``index`` subcommand to an argparse ``subparsers`` object; returns its parser."""
    p = subparsers.add_parser(
        "index",
        help="profile a database and build its value and column indexes (cached)",
        description="Profile DB (column, inter-column and table metadata), build its value index and "
        "column index, and store them under the cache directory. An unchanged database is not "
        "profiled again.",
    )
    p.add_argument("db", metavar="DB", help="SQLite file or database URL")
    p.add_argument("--descriptions", metavar="DIR", default=None,
                   help="BIRD database_description folder with per-table column description CSVs")
    p.add_argument("--cache-dir", metavar="DIR", default=None, help="cache directory (default: settings)")
    p.add_argument("--force", action="store_true", help="rebuild even when the store is up to date")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)

    teach = subparsers.add_parser(
        "teach", help="store a question and the SQL that answers it in the database's example memory",
        description="Run SQL read-only on DB and, when it runs, store the pair in DB's example memory "
        "(beside its metadata in the cache directory). Similar questions are then shown it as an "
        "example. A pair that does not run is refused with the reason (exit 2).",
    )
    teach.add_argument("db", metavar="DB", help="SQLite file or database URL")
    teach.add_argument("--question", required=True, help="the question in plain language")
    teach.add_argument("--sql", required=True, help="the SQL that answers it")
    teach.add_argument("--evidence", default=None, help="external knowledge that goes with the question")
    teach.add_argument("--cache-dir", metavar="DIR", default=None, help="cache directory (default: settings)")
    teach.set_defaults(func=run_teach)

    ex = subparsers.add_parser(
        "examples", help="list, export or remove the pairs of a database's example memory",
        description="Without options: list the pairs of DB's example memory (id, provenance, whether "
        "the SQL still runs, question, SQL).",
    )
    ex.add_argument("db", metavar="DB", help="SQLite file or database URL")
    action = ex.add_mutually_exclusive_group()
    action.add_argument("--export", metavar="FILE", help="write every pair as JSON Lines to FILE ('-': stdout)")
    action.add_argument("--remove", metavar="ID", type=int, help="delete the pair with this id")
    ex.add_argument("--cache-dir", metavar="DIR", default=None, help="cache directory (default: settings)")
    ex.set_defaults(func=run_examples)
    return p


def _memory(args: argparse.Namespace):
    """``(database, memory)`` of a ``teach`` / ``examples`` command; repair notes go to stderr."""
    from quorumsql.config import Settings
    from quorumsql.db import open_database
    from quorumsql.metadata.examples import ExampleMemories, default_root

    overrides = {"cache_dir": Path(args.cache_dir)} if args.cache_dir else {}
    settings = Settings.load(getattr(args, "config", None), **overrides)
    db = open_database(args.db, query_timeout=settings.query_timeout, max_rows=settings.max_rows,
                       allowed_functions=tuple(settings.allowed_functions))
    memory = ExampleMemories(default_root(settings)).memory_for(db)
    for note in memory.take_notes():
        print(f"note: {note}", file=sys.stderr)
    return db, memory


def run_teach(args: argparse.Namespace) -> int:
    """Handle ``quorumsql teach``: check the SQL, store the pair, say where; returns the exit code."""
    from quorumsql.metadata.examples import teach_pair

    db, memory = _memory(args)
    pair = teach_pair(memory, db, args.question, args.sql, evidence=args.evidence, provenance="taught",
                      source="quorumsql teach")
    print(f"stored pair #{pair.id} in the example memory of {db.db_id} ({memory.count()} pair(s); {memory.path})")
    return 0


def run_examples(args: argparse.Namespace) -> int:
    """Handle ``quorumsql examples``: list, export or remove pairs; returns the exit code."""
    import json

    from quorumsql.errors import ConfigError, InputError

    db, memory = _memory(args)
    if args.remove is not None:
        if not memory.remove(args.remove):
            raise InputError(f"the example memory of {db.db_id} has no pair #{args.remove}")
        print(f"removed pair #{args.remove} from the example memory of {db.db_id} ({memory.count()} left)")
        return 0
    pairs = memory.pairs(include_broken=True)
    if args.export:
        text = "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs)
        if args.export == "-":
            sys.stdout.write(text)
        else:
            try:
                Path(args.export).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write {args.export}: {exc}") from None
            print(f"exported {len(pairs)} pair(s) of {db.db_id} to {args.export}")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not pairs:
        console.print(f"the example memory of {db.db_id} is empty ({memory.path})", highlight=False)
        return 0
    table = Table(title=f"{db.db_id}: {len(pairs)} pair(s)")
    for name in ("id", "provenance", "runs", "question", "SQL"):
        table.add_column(name)
    for p in pairs:
        table.add_row(str(p.id), p.provenance, "yes" if p.runs else f"no: {p.problem}", p.question, p.sql)
    console.print(table)
    return 0


def run(args: argparse.Namespace) -> int:
    """Handle ``quorumsql index``; prints a summary table; returns the exit code."""
    from rich.console import Console
    from rich.table import Table

    from quorumsql.config import Settings
    from quorumsql.db import open_database
    from quorumsql.metadata.store import load_or_build

    overrides = {"cache_dir": Path(args.cache_dir)} if args.cache_dir else {}
    settings = Settings.load(**overrides)
    db = open_database(args.db)
    err = Console(stderr=True)
    for warning in db.privilege_warnings():
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    meta = load_or_build(db, settings, descriptions_dir=args.descriptions,
                         progress=not args.no_progress and sys.stderr.isatty(), force=args.force)
    console = Console()
    s = meta.summary()
    table = Table(title=f"{s['db_id']}: " + ("built" if meta.built else "up to date, nothing to do"), show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("tables", s["tables"]), ("columns", s["columns"]), ("rows", s["rows"]),
        ("indexed text columns", s["indexed_columns"]), ("indexed values", s["indexed_values"]),
        ("declared foreign keys", s["declared_fks"]), ("inferred joins", s["inferred_joins"]),
        ("duplicate columns", s["duplicates"]), ("similar columns", s["similar"]),
        ("functional dependencies", s["dependencies"]),
        ("profiling queries (this run)", meta.queries), ("build seconds", s["seconds"]),
        ("store", str(meta.path)),
    ]
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)
    notes = meta.record.skipped
    if notes:
        console.print(f"[bold]Skipped or limited[/bold] ({len(notes)}):")
        for n in notes[:20]:
            console.print(f"  - {n}", markup=False, highlight=False)
        if len(notes) > 20:
            console.print(f"  ... and {len(notes) - 20} more (see metadata.json)")
    return 0
