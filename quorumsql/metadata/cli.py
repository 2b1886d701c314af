"""``quorumsql index DB [--descriptions DIR] [--cache-dir DIR] [--force]``: build the store."""

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
    return p


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
