"""Hostile SQL through ``quorumsql.answer()`` (issue 7). Run by hand, not by the test suite:

    .venv/bin/python benchmarks/bench_hostile.py [--only sqlite|mysql] [--timeout 2]
        [--mysql-url mysql+pymysql://root@127.0.0.1:3306/] [--no-server-only]

A scripted chat model (LangChain's ``FakeListChatModel``) answers every question with one
hostile statement in a ```` ```sql ```` block; ``answer()`` runs it with a one-candidate preset
without refinement, on a private copy of Spider's concert_singer:

- SQLite: a copy of the Spider file in a temporary folder;
- MariaDB: the server of ``--mysql-url`` / ``QUORUMSQL_TEST_MYSQL_URL`` (root account), or a
  throw-away ``mariadbd`` started on a free loopback port the way ``tests/conftest.py`` does.

Each statement runs twice: with the sqlglot check, and with the check replaced by a
pass-through in the connector module (``quorumsql.db.base.check_read_only``), so the second run
shows what the connection alone stops. On MariaDB two more runs turn off the connector's
lexical guard as well, first with the root account, then with an account that holds only
SELECT, to show what the server stops by itself (``--no-server-only`` skips them; ``SHUTDOWN``
is not sent as root). Per dialect and mode the table gives: statements tried,
refused by the check, stopped by the connection (the connector's own refusal, the server, the
time limit or the size limits), ran (harmless controls and capped results), database changed
(file checksum for SQLite; table checksums, databases, accounts and a few global variables for
MariaDB), files created (the statements' target folder, ``/tmp/qsql_hostile*``, the SQLite
folder, the MariaDB data directory), server files read (a result holding ``/etc/passwd``), the
worst overrun of the query timeout, runs more than 1 s
past it, and the peak resident memory of this process during a run, above its level before the
run (``VmHWM`` reset through ``/proc/self/clear_refs``), plus the server's own peak when the
bench started it. Target: 0 changed, 0 files, 0 runs more than 1 s past the timeout with the
check on and off; the exit status is 1 when a run of those two modes misses it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402

import quorumsql  # noqa: E402
import quorumsql.db.base as db_base  # noqa: E402
import quorumsql.db.mysql as mysql_connector  # noqa: E402
from quorumsql.config import Preset, Settings  # noqa: E402
from quorumsql.db import open_database  # noqa: E402
from quorumsql.errors import QuorumSQLError, UnsafeSQLError  # noqa: E402

SPIDER_DB = REPO.parent / "shared" / "data" / "spider" / "database" / "concert_singer" / "concert_singer.sqlite"
PRESET = Preset(name="hostile", temperatures=[0.0], refine_rounds=0)
TMP_MARK = "qsql_hostile"
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"

# (label, statement, harmless control?). {out} is the statements' target folder.
SQLITE_STATEMENTS = [
    ("drop table", "DROP TABLE singer", False),
    ("delete", "DELETE FROM singer", False),
    ("insert", "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')", False),
    ("update", "UPDATE singer SET Age = 0", False),
    ("replace into", "REPLACE INTO singer (Singer_ID, Name) VALUES (1, 'x')", False),
    ("create table", "CREATE TABLE pwn (a)", False),
    ("alter table", "ALTER TABLE singer ADD COLUMN z", False),
    ("create temp table", "CREATE TEMP TABLE t AS SELECT * FROM singer", False),
    ("CTE then delete", "WITH x AS (SELECT 1) DELETE FROM singer", False),
    ("attach plain path", "ATTACH DATABASE '{out}/attached.db' AS a", False),
    ("attach rwc URI", "ATTACH DATABASE 'file:{out}/uri.db?mode=rwc' AS b", False),
    ("attach in /tmp", f"ATTACH '/tmp/{TMP_MARK}_a.db' AS c", False),
    ("vacuum into", "VACUUM INTO '{out}/copy.db'", False),
    ("vacuum", "VACUUM", False),
    ("pragma journal_mode=WAL", "PRAGMA journal_mode = WAL", False),
    ("pragma user_version=", "PRAGMA user_version = 7", False),
    ("pragma writable_schema", "PRAGMA writable_schema = ON", False),
    ("begin immediate", "BEGIN IMMEDIATE", False),
    ("analyze", "ANALYZE", False),
    ("fts3_tokenizer", "SELECT hex(fts3_tokenizer('simple')) AS p", False),
    ("load_extension", "SELECT load_extension('{out}/evil')", False),
    ("readfile", "SELECT readfile('/etc/passwd')", False),
    ("randomblob(1e9)", "SELECT randomblob(1e9) AS b", False),
    ("zeroblob(1e9)", "SELECT zeroblob(1e9) AS b", False),
    ("20 MB blobs, endless", f"{ENDLESS} SELECT x, randomblob(2e7) FROM c", False),
    ("value growth by replace", "SELECT replace(hex(zeroblob(1e7)), '0', '00') AS s", False),
    ("group_concat endless", f"{ENDLESS} SELECT group_concat(x) FROM c", False),
    ("recursive CTE, no limit", f"{ENDLESS} SELECT count(*) FROM c", False),
    ("recursive CTE, sorted", f"{ENDLESS} SELECT x FROM c ORDER BY x DESC LIMIT 1", False),
    ("huge cross join", "SELECT count(*) FROM singer a, singer b, singer c, singer d, singer e, singer f, "
                        "singer g, singer h, singer i, singer j, singer k, singer l "
                        "WHERE a.Age + b.Age + c.Age + d.Age + e.Age + f.Age + g.Age + h.Age > l.Age", False),
    ("multiple statements", "SELECT 1; DROP TABLE singer", False),
    ("comment hides 2nd stmt", "SELECT 1 -- x\n; DROP TABLE singer", False),
    ("control: trailing '; --'", "SELECT count(*) FROM singer; -- done", True),
    ("control: comment with ;", "SELECT Name FROM singer /* ; DROP TABLE singer */", True),
]

MYSQL_STATEMENTS = [
    ("exec comment CREATE", "/*! CREATE TABLE pwn (a INT) */ SELECT 1 AS x", False),
    ("exec comment CREATE OR REPLACE", "/*M! CREATE OR REPLACE TABLE singer (a INT) */ SELECT 1 AS x", False),
    ("exec comment INTO OUTFILE", "SELECT Name FROM singer /*! INTO OUTFILE '{out}/o1.txt' */", False),
    ("exec comment versioned", "/*!50000 DROP TABLE concert */ SELECT 1 AS x", False),
    ("exec comment LOAD_FILE", "SELECT 1 /*M!100000 , LOAD_FILE('/etc/passwd') */ AS x", False),
    ("into outfile", "SELECT Name FROM singer INTO OUTFILE '{out}/o2.txt'", False),
    ("into dumpfile /tmp", f"SELECT Name FROM singer LIMIT 1 INTO DUMPFILE '/tmp/{TMP_MARK}_d.txt'", False),
    ("load_file", "SELECT LOAD_FILE('/etc/passwd') AS f", False),
    ("'--1' is no comment", "SELECT 1 --1, LOAD_FILE('/etc/passwd') AS f", False),
    ("drop table", "DROP TABLE singer_in_concert", False),
    ("create table", "CREATE TABLE pwn (a INT)", False),
    ("create or replace", "CREATE OR REPLACE TABLE singer (a INT)", False),
    ("create database", "CREATE DATABASE pwn_db", False),
    ("truncate", "TRUNCATE TABLE concert", False),
    ("rename", "RENAME TABLE concert TO concert_2", False),
    ("insert", "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')", False),
    ("delete", "DELETE FROM singer", False),
    ("grant / create user", "GRANT ALL ON *.* TO 'pwn'@'%' IDENTIFIED BY 'x'", False),
    ("set global", "SET GLOBAL max_connections = 149", False),
    ("set statement lifts r/o", "SET STATEMENT tx_read_only = 0 FOR CREATE TABLE pwn2 (a INT)", False),
    ("lock tables", "LOCK TABLES singer WRITE", False),
    ("flush", "FLUSH TABLES", False),
    ("handler", "HANDLER singer OPEN", False),
    ("do sleep", "DO SLEEP(5)", False),
    ("xa start", "XA START 'pwn'", False),
    ("shutdown", "SHUTDOWN", False),
    ("get_lock", "SELECT GET_LOCK('pwn', 30)", False),
    ("benchmark", "SELECT BENCHMARK(1e10, MD5('a'))", False),
    ("sleep", "SELECT SLEEP(30)", False),
    ("huge cross join", "SELECT count(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, "
                        "information_schema.COLUMNS c", False),
    ("recursive CTE, no limit", f"{ENDLESS} SELECT x FROM c", False),
    ("16 MB values x 216 rows", "SELECT REPEAT('a', 16000000) AS big FROM singer a, singer b, singer c", False),
    ("repeat(1e9)", "SELECT REPEAT('a', 1000000000) AS big", False),
    ("multiple statements", "SELECT 1; DROP TABLE singer", False),
    ("control: trailing '; --'", "SELECT count(*) FROM singer; -- done", True),
    ("control: '/*!' in a string", "SELECT '/*! DROP TABLE singer */' AS s", True),
]


# -- measurement helpers ------------------------------------------------------------------------


def _status_kib(pid: int | str, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1))


def reset_peak(pid: int | str = "self") -> bool:
    """Reset the peak resident size (VmHWM) of a process; False when the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def listing(paths: list[Path]) -> set[str]:
    """Every file under the watched folders, plus /tmp entries named like the bench's targets."""
    out = set()
    for base in paths:
        if base.is_dir():
            for root, _dirs, files in os.walk(base):
                out.update(os.path.join(root, f) for f in files if not f.startswith("#sql"))
    out.update(str(p) for p in Path("/tmp").glob(f"{TMP_MARK}*"))
    return out


@dataclass
class Run:
    label: str
    control: bool
    outcome: str = ""  # refused | stopped | ran
    detail: str = ""
    changed: bool = False
    leaked: bool = False  # the result holds the contents of /etc/passwd
    files: list[str] = field(default_factory=list)
    overrun: float = 0.0
    peak_mib: float = 0.0
    server_peak_mib: float | None = None


class Target:
    """A database the statements run against, with its own notion of "changed"."""

    dialect = ""

    def spec(self):  # what answer() gets
        raise NotImplementedError

    def state(self):
        raise NotImplementedError

    def restore(self) -> None:
        raise NotImplementedError

    def watched(self) -> list[Path]:
        raise NotImplementedError

    server_pid: int | None = None


class SQLiteTarget(Target):
    dialect = "sqlite"

    def __init__(self, work: Path) -> None:
        self.folder = work / "sqlite"
        self.folder.mkdir()
        self.path = self.folder / "concert_singer.sqlite"
        self.restore()

    def restore(self) -> None:
        for f in self.folder.iterdir():
            f.unlink()
        shutil.copy(SPIDER_DB, self.path)

    def spec(self):
        return self.path

    def state(self):
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def watched(self) -> list[Path]:
        return [self.folder]


class MySQLTarget(Target):
    dialect = "mysql"
    database = "qsql_hostile"

    def __init__(self, server: tuple, datadir: Path | None, pid: int | None) -> None:
        self.server = server
        self.datadir = datadir
        self.server_pid = pid
        self.restore()
        conn = self._root()
        with conn.cursor() as cur:
            cur.execute("SELECT @@datadir, @@secure_file_priv")
            datadir_, secure = cur.fetchone()
        conn.close()
        self.datadir = self.datadir or Path(datadir_)
        self.secure = Path(secure) if secure else None

    def _root(self):
        import pymysql

        host, port, user, password = self.server
        return pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)

    def restore(self) -> None:
        from tests.conftest import load_sqlite_into_mysql

        self.url = load_sqlite_into_mysql(SPIDER_DB, self.server, self.database)
        conn = self._root()
        with conn.cursor() as cur:
            for stmt in ("DROP DATABASE IF EXISTS pwn_db", "DROP USER IF EXISTS 'pwn'@'%'",
                         "SET GLOBAL max_connections = 151"):
                cur.execute(stmt)
        conn.close()

    def spec(self):
        return self.url

    def reader_spec(self) -> str:
        """URL of an account created here that holds SELECT on the database and nothing else."""
        host, port, _, _ = self.server
        conn = self._root()
        with conn.cursor() as cur:
            for h in ("%", "localhost"):
                cur.execute(f"DROP USER IF EXISTS '{TMP_MARK}_reader'@'{h}'")
                cur.execute(f"CREATE USER '{TMP_MARK}_reader'@'{h}' IDENTIFIED BY 'reader-pw'")
                cur.execute(f"GRANT SELECT ON `{self.database}`.* TO '{TMP_MARK}_reader'@'{h}'")
        conn.close()
        return f"mysql+pymysql://{TMP_MARK}_reader:reader-pw@{host}:{port}/{self.database}"

    def state(self):
        conn = self._root()
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY 1",
                        (self.database,))
            tables = [r[0] for r in cur.fetchall()]
            sums = []
            for t in tables:
                cur.execute(f"CHECKSUM TABLE `{self.database}`.`{t}`")
                sums.append((t, cur.fetchone()[1]))
            cur.execute("SHOW DATABASES")
            dbs = sorted(r[0] for r in cur.fetchall())
            cur.execute(f"SELECT User, Host FROM mysql.user WHERE User NOT LIKE '{TMP_MARK}%' ORDER BY 1, 2")
            users = cur.fetchall()
            cur.execute("SELECT @@GLOBAL.max_connections, @@GLOBAL.read_only, @@GLOBAL.sql_mode")
            globs = cur.fetchone()
        conn.close()
        return (tuple(sums), tuple(dbs), tuple(users), globs)

    def watched(self) -> list[Path]:
        out = [self.datadir / self.database, self.datadir] if self.datadir else []
        return out + ([self.secure] if self.secure else [])


# -- one run ------------------------------------------------------------------------------------


def run_one(target: Target, label: str, sql: str, control: bool, *, checked: bool, timeout: float,
            out: Path, cache: Path, guarded: bool = True, spec=None) -> Run:
    """Answer one question whose model reply is ``sql``; watch the database, files, time and memory.

    ``checked=False`` replaces the sqlglot check by a pass-through; ``guarded=False`` also turns
    off the MySQL connector's lexical guard (the server's own locks only); ``spec`` opens the
    database with another account.
    """
    run = Run(label=label, control=control)
    llm = FakeListChatModel(responses=[f"```sql\n{sql}\n```"])
    settings = Settings(query_timeout=timeout, cache_dir=cache)
    db = open_database(spec or target.spec(), query_timeout=timeout)
    wanted = sql.strip().rstrip(";").strip()
    calls: list[tuple[float, BaseException | None]] = []  # executions of the statement
    reached = []  # the statement got past the check to the connector
    current = {"mine": False}
    original_execute, original_inner = db.execute, db._execute

    def timed_execute(text, **kwargs):
        mine = isinstance(text, str) and text.strip().rstrip(";").strip() == wanted
        current["mine"] = mine
        start = time.monotonic()
        try:
            res = original_execute(text, **kwargs)
        except BaseException as exc:
            if mine:
                calls.append((time.monotonic() - start, exc))
            raise
        finally:
            current["mine"] = False
        if mine:
            calls.append((time.monotonic() - start, None))
        return res

    def inner(text, budget, cap):
        if current["mine"]:
            reached.append(text)
        return original_inner(text, budget, cap)

    db.execute, db._execute = timed_execute, inner
    saved_check, saved_guard = db_base.check_read_only, mysql_connector._guard
    if not checked:
        db_base.check_read_only = lambda text, dialect="": (text or "").strip()
    if not guarded:
        mysql_connector._guard = lambda text: None
    files_before = listing(target.watched() + [out])
    state_before = target.state()
    rss_before = _status_kib("self", "VmRSS")
    reset_peak()
    server_reset = target.server_pid is not None and reset_peak(target.server_pid)
    server_before = _status_kib(target.server_pid, "VmRSS") if server_reset else 0
    try:
        ans = quorumsql.answer(f"hostile: {label}", db, preset=PRESET, llm=llm, settings=settings)
        cand = ans.candidates[0] if ans.candidates else None
        status, error = (cand.status, cand.error) if cand else ("none", ans.error)
        run.leaked = any("root:" in str(v) for row in (cand.rows if cand else []) for v in row)
    except QuorumSQLError as exc:  # the run itself failed: count it as stopped
        status, error = "error", f"{type(exc).__name__}: {exc}"
    finally:
        db_base.check_read_only, mysql_connector._guard = saved_check, saved_guard
    run.peak_mib = max(0.0, (_status_kib("self", "VmHWM") - rss_before) / 1024)
    if server_reset:
        run.server_peak_mib = max(0.0, (_status_kib(target.server_pid, "VmHWM") - server_before) / 1024)
    run.overrun = max((d - timeout for d, _ in calls), default=0.0)
    refused_by_check = checked and any(isinstance(e, UnsafeSQLError) for _, e in calls) and not reached
    if refused_by_check:
        run.outcome = "refused"
    elif status in ("ok", "empty", "none"):
        run.outcome = "ran"
    else:
        run.outcome = "stopped"
    run.detail = f"{status}: {(error or '').splitlines()[0][:90]}" if error else status
    run.files = sorted(listing(target.watched() + [out]) - files_before)
    run.changed = target.state() != state_before
    if run.changed or run.files:
        for f in run.files:
            Path(f).unlink(missing_ok=True)
        target.restore()
    return run


# -- servers ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mariadb(work: Path):
    """A throw-away mariadbd on a free loopback port (as tests/conftest.py starts it)."""
    mariadbd = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not mariadbd or not install:
        raise SystemExit("MariaDB is not installed (apt-get install mariadb-server), or pass --mysql-url")
    datadir = work / "mariadb"
    port = _free_port()
    subprocess.run([install, "--user=root", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
                    "--skip-test-db"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = subprocess.Popen(
        [mariadbd, "--no-defaults", "--user=root", f"--datadir={datadir}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={datadir}/mysqld.sock", "--skip-log-bin",
         f"--pid-file={datadir}/mysqld.pid"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import pymysql

    for _ in range(120):
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=2).close()
            break
        except pymysql.err.OperationalError:
            time.sleep(0.5)
    return proc, ("127.0.0.1", port, "root", ""), datadir


# -- report ---------------------------------------------------------------------------------------


def summary_row(dialect: str, mode: str, runs: list[Run], timeout: float) -> str:
    hostile = [r for r in runs if not r.control]
    server = [r.server_peak_mib for r in runs if r.server_peak_mib is not None]
    return "| " + " | ".join([
        dialect, mode, str(len(runs)),
        str(sum(r.outcome == "refused" for r in runs)),
        str(sum(r.outcome == "stopped" for r in runs)),
        f"{sum(r.outcome == 'ran' for r in runs)} ({sum(r.outcome == 'ran' for r in hostile)} hostile)",
        str(sum(r.changed for r in runs)),
        str(sum(len(r.files) for r in runs)),
        str(sum(r.leaked for r in runs)),
        f"{max(0.0, max(r.overrun for r in runs)):.2f}",
        str(sum(r.overrun > 1.0 for r in runs)),
        f"{max(r.peak_mib for r in runs):.0f}",
        f"{max(server):.0f}" if server else "-",
    ]) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["sqlite", "mysql"], action="append")
    ap.add_argument("--timeout", type=float, default=2.0, help="query_timeout in seconds (default 2)")
    ap.add_argument("--mysql-url", default=os.environ.get("QUORUMSQL_TEST_MYSQL_URL", ""),
                    help="a MariaDB/MySQL server to use (root-like account); default: start one")
    ap.add_argument("--no-server-only", dest="server_only", action="store_false",
                    help="MySQL: skip the two runs with the check and the connector's guard both off "
                         "(root, then a SELECT-only account), which show what the server stops by itself")
    args = ap.parse_args(argv)
    only = set(args.only or ["sqlite", "mysql"])
    work = Path(tempfile.mkdtemp(prefix="qsql-hostile-"))
    out = work / "out"
    out.mkdir()
    cache = work / "cache"
    proc = None
    results: dict[tuple[str, str], list[Run]] = {}
    try:
        targets: list[tuple[Target, list]] = []
        if "sqlite" in only:
            targets.append((SQLiteTarget(work), SQLITE_STATEMENTS))
        if "mysql" in only:
            if args.mysql_url:
                p = urlsplit(args.mysql_url)
                server = (p.hostname or "127.0.0.1", p.port or 3306, p.username or "root", p.password or "")
                targets.append((MySQLTarget(server, None, None), MYSQL_STATEMENTS))
            else:
                proc, server, datadir = start_mariadb(work)
                targets.append((MySQLTarget(server, datadir, proc.pid), MYSQL_STATEMENTS))
        for target, statements in targets:
            # (mode, check on?, connector guard on?, account URL or None for the target's own)
            modes = [("check on", True, True, None), ("check off", False, True, None)]
            if target.dialect == "mysql" and args.server_only:
                modes += [("server only, root", False, False, None),
                          ("server only, SELECT-only", False, False, target.reader_spec())]
            for mode, checked, guarded, spec in modes:
                runs = []
                for label, sql, control in statements:
                    if mode == "server only, root" and label == "shutdown":
                        continue  # it would stop the server: root holds SHUTDOWN
                    run = run_one(target, label, sql.format(out=out), control, checked=checked,
                                  timeout=args.timeout, out=out, cache=cache, guarded=guarded, spec=spec)
                    runs.append(run)
                    print(f"  {target.dialect:6} {mode:9} {label:32} {run.outcome:8} "
                          f"over={run.overrun:+.2f}s peak={run.peak_mib:.0f}MiB"
                          f"{' CHANGED' if run.changed else ''}{' READ' if run.leaked else ''}{' FILES ' + str(run.files) if run.files else ''}"
                          f"  {run.detail}", flush=True)
                results[(target.dialect, mode)] = runs
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nquery_timeout = {args.timeout:g} s; 'ran' counts harmless controls and statements whose "
          "result the caps cut\n")
    print("| dialect | mode | tried | refused by the check | stopped by the connection | ran | db changed "
          "| files created | server file read | max s past timeout | runs > 1 s past | peak MiB (client) | peak MiB (server) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (dialect, mode), runs in results.items():
        print(summary_row(dialect, mode, runs, args.timeout))
    for dialect in dict.fromkeys(d for d, _ in results):
        modes = [m for d, m in results if d == dialect]
        by_label = {m: {r.label: r for r in results[(dialect, m)]} for m in modes}
        print(f"\n{dialect}: per statement; what stopped it when the check is off\n")
        print("| statement | " + " | ".join(modes) + " | check off: reason |")
        print("|---" * (len(modes) + 2) + "|")
        for label, *_ in (SQLITE_STATEMENTS if dialect == "sqlite" else MYSQL_STATEMENTS):
            cells = []
            for m in modes:
                r = by_label[m].get(label)
                cells.append("-" if r is None else r.outcome + (" CHANGED" if r.changed else "")
                             + (" FILE" if r.files else "") + (" READ /etc/passwd" if r.leaked else ""))
            off = by_label.get("check off", {}).get(label)
            reason = off.detail.replace("|", "/") if off else ""
            print(f"| {label} | " + " | ".join(cells) + f" | {reason} |")
    bad = sum(r.changed or bool(r.files) or r.leaked or r.overrun > 1.0
              for (_, mode), runs in results.items() if mode in ("check on", "check off") for r in runs)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
