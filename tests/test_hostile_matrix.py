"""Issue 16: the hostile-SQL matrix, on real engines, with the most privileged accounts.

Every hole found by probing as a hostile model is a test here, tried two ways:

- through ``quorumsql.answer()``: a scripted chat model (``FakeListChatModel``) returns the
  hostile statement and a one-candidate preset without refinement runs it, the check on;
- through the connector alone: ``quorumsql.db.base.check_read_only`` is replaced by a
  pass-through (:func:`connector`), so only the connector's own locks stand. The pass-through
  records that it was called, so a refactoring cannot silently turn this into a second run of
  the check.

The engines: a copy of Spider's concert_singer in ``tmp_path`` (SQLite) and private copies on
the MariaDB and PostgreSQL servers of ``tests/conftest.py`` (root, the postgres superuser), with
the stored functions and extensions (dblink, adminpack) a hostile model would look for. Each test
asserts that the effect did not happen (no file written, no row inserted or deleted, the global
variable unchanged, the other session alive, no text of /etc/passwd in a result or a message)
and, where a refusal is expected, that its reason names the function or the statement. Where the
set-up could fail silently (file permissions, a connection string, a function body), a control
first runs the statement in a raw read-only session, as the connector opens it, and shows that
the effect does happen when nothing refuses the statement.

The SQLite time and memory cases run in a fresh Python process each (:data:`_PROBE`): the peak
resident size measured is that of a process doing nothing but the query, and a query that never
stops cannot hang the test session.

The read queries that must never be refused are the benchmark's own lists
(``benchmarks/bench_hostile.py``), run here with the check on and off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

import quorumsql
import quorumsql.db.base as db_base
from quorumsql.config import Preset, Settings
from quorumsql.db import open_database
from quorumsql.db.base import ExecutionResult
from quorumsql.db.safety import check_read_only
from quorumsql.errors import UnsafeSQLError
from tests.conftest import REPO, load_sqlite_into_mysql, load_sqlite_into_postgres, require_module, spider_db

PRESET = Preset(name="hostile-matrix", temperatures=[0.0], refine_rounds=0)
TIMEOUT = 2.0
PASSWD = "root:x:0:0"  # the first line of /etc/passwd
ODD_SPACES = [pytest.param("\u00a0", id="U+00A0"), pytest.param("\u3000", id="U+3000"),
              pytest.param("\u2028", id="U+2028")]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_hostile", REPO / "benchmarks" / "bench_hostile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


BENCH = _load_bench()


# -- the two ways in ---------------------------------------------------------------------------


def ask(db, sql: str, tmp_path: Path, settings: Settings | None = None):
    """The one candidate of ``answer()`` when the model's reply is ``sql``."""
    llm = FakeListChatModel(responses=[f"```sql\n{sql}\n```"])
    settings = settings or Settings(query_timeout=TIMEOUT, cache_dir=tmp_path / "cache")
    ans = quorumsql.answer("hostile", db, preset=PRESET, llm=llm, settings=settings)
    assert len(ans.candidates) == 1, ans
    return ans.candidates[0]


def connector(db, sql: str, monkeypatch, timeout: float = TIMEOUT) -> ExecutionResult:
    """``db.try_execute(sql)`` with the sqlglot check replaced by a pass-through."""
    seen: list[str] = []

    def pass_through(text, *args, **kwargs):
        seen.append(text)
        return (text or "").strip()

    with monkeypatch.context() as m:
        m.setattr(db_base, "check_read_only", pass_through)
        res = db.try_execute(sql, timeout=timeout)
    assert seen, "the check was not bypassed: Database.execute no longer calls quorumsql.db.base.check_read_only"
    return res


def refused(cand, *names: str) -> None:
    """The candidate was refused by the check, and the reason names each of ``names``."""
    assert cand.status == "refused", (cand.status, cand.error)
    for name in names:
        assert name.lower() in (cand.error or "").lower(), f"{name!r} is not named in: {cand.error}"


def stopped(res: ExecutionResult, *names: str) -> None:
    """The connector did not run the statement to a result, and its reason names ``names``."""
    assert not res.ok and res.rows == [], (res.error_kind, res.error, res.rows)
    for name in names:
        assert name.lower() in (res.error or "").lower(), f"{name!r} is not named in: {res.error}"


def no_passwd(*things) -> None:
    text = repr(things)
    assert PASSWD not in text, "the text of /etc/passwd came back"


@pytest.fixture
def server_dir():
    """A fresh folder the database servers' own users may write to (a statement that could write
    a file there really does, so its absence means it was stopped)."""
    path = Path(tempfile.mkdtemp(prefix="qsql_hostile_matrix_"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- statements every dialect must name when it refuses them -----------------------------------


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgres"])
@pytest.mark.parametrize("sql,word", [("FLUSH TABLES", "FLUSH"), ("SHUTDOWN", "SHUTDOWN"), ("CHECKPOINT", "CHECKPOINT")])
def test_check_names_the_refused_statement(dialect, sql, word):
    with pytest.raises(UnsafeSQLError) as err:
        check_read_only(sql, dialect)
    message = str(err.value)
    assert word in message.upper() and not re.search(r"got (ALIAS|COLUMN)\b", message), message


# -- SQLite --------------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def singer_copy(tmp_path) -> Path:
    """A private copy of concert_singer alone in ``tmp_path/db``."""
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "concert_singer.sqlite"
    shutil.copy(spider_db("concert_singer"), path)
    return path


@pytest.fixture
def wal_copy(singer_copy) -> Path:
    """The copy switched to WAL journal mode; the writer closed, so no -wal / -shm file is left."""
    conn = sqlite3.connect(singer_copy)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.close()
    assert os.listdir(singer_copy.parent) == [singer_copy.name]
    return singer_copy


def test_sqlite_reading_a_wal_file_creates_no_side_files(wal_copy, tmp_path, monkeypatch):
    before = _sha(wal_copy)
    cand = ask(wal_copy, "SELECT count(*) FROM singer", tmp_path)
    assert cand.status == "ok" and cand.rows == [(6,)], (cand.status, cand.error)
    assert os.listdir(wal_copy.parent) == [wal_copy.name], "answer() left side files"
    res = connector(open_database(wal_copy), "SELECT Name FROM singer ORDER BY Singer_ID", monkeypatch)
    assert res.ok and len(res.rows) == 6, res.error
    assert os.listdir(wal_copy.parent) == [wal_copy.name], "the connector left side files"
    assert _sha(wal_copy) == before


# A fresh interpreter runs one statement, through answer() or through the connector with the check
# bypassed, and prints what it measured: the seconds of each execution of the statement, the peak
# resident size (VmHWM, reset just before; absolute, imports included) of the interpreter and of
# each process it started (a connector may run queries in a child process), and the outcome.
# Children are sampled every 20 ms while they live; one that ended shows in RUSAGE_CHILDREN.
_PROBE = r"""
import json, os, re, resource, sys, threading, time
from pathlib import Path
from langchain_core.language_models.fake_chat_models import FakeListChatModel
import quorumsql
import quorumsql.db.base as db_base
from quorumsql.config import Preset, Settings
from quorumsql.db import open_database

path, mode, sql, timeout, cache = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]

def descendants():
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, todo = [], [os.getpid()]
    while todo:
        kids = [p for p, pp in parents.items() if pp == todo[0]]
        found += kids
        todo = todo[1:] + kids
    return found

def hwm_mib(pid="self"):
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        return 0.0

db = open_database(path, query_timeout=timeout)
db.schema()
seconds, bypassed, peaks = [], [], {}
execute = db.execute

def timed(text, **kwargs):
    start = time.monotonic()
    try:
        return execute(text, **kwargs)
    finally:
        if isinstance(text, str) and text.strip() == sql.strip():
            seconds.append(time.monotonic() - start)

def pass_through(text, *args, **kwargs):
    bypassed.append(text)
    return (text or "").strip()

done = threading.Event()

def sample():
    while not done.wait(0.02):
        for pid in descendants():
            peaks[pid] = max(peaks.get(pid, 0.0), hwm_mib(pid))

db.execute = timed
for pid in ["self"] + descendants():
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass
ended_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
if mode == "answer":
    llm = FakeListChatModel(responses=["```sql\n" + sql + "\n```"])
    preset = Preset(name="hostile-matrix", temperatures=[0.0], refine_rounds=0)
    ans = quorumsql.answer("hostile", db, preset=preset, llm=llm,
                           settings=Settings(query_timeout=timeout, cache_dir=cache))
    status, error = ans.candidates[0].status, ans.candidates[0].error
else:
    db_base.check_read_only = pass_through
    res = db.try_execute(sql)
    status, error = ("ok" if res.ok else res.error_kind), res.error
done.set()
sampler.join()
for pid in descendants():
    peaks[pid] = max(peaks.get(pid, 0.0), hwm_mib(pid))
ended = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
children = max([0.0] + list(peaks.values()) + ([ended] if ended > ended_before else []))
print(json.dumps({"status": status, "error": error, "seconds": seconds, "peak_mib": hwm_mib(),
                  "children_peak_mib": children, "bypassed": bool(bypassed)}))
"""
HARD_LIMIT = 30.0  # seconds past the timeout after which the probe is killed

SINGLE_STEPS = [
    pytest.param("SELECT printf('%.*c', 1000000000, 'x') AS s", id="printf-width-1e9"),
    pytest.param("SELECT instr(printf('%.*c', 10000000, 'a'), printf('%.*c', 80000, 'a') || 'b') AS i", id="instr"),
    pytest.param("SELECT printf('%.*c', 2000000, 'a') LIKE '%' || printf('%.*c', 5000, 'a') || 'b' AS m", id="like"),
    pytest.param("SELECT " + ", ".join(f"randomblob(30000000) AS b{i}" for i in range(40)), id="randomblob-x40"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["answer", "connector"])
@pytest.mark.parametrize("sql", SINGLE_STEPS)
def test_sqlite_single_step_stays_within_the_timeout_and_1_gb(singer_copy, tmp_path, sql, mode):
    """No execution ends more than 1 s past the timeout; the process, and any process it started to run
    the query, stays under 1 GiB resident."""
    before = _sha(singer_copy)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, str(singer_copy), mode, sql, str(TIMEOUT), str(tmp_path / "cache")],
            capture_output=True, text=True, cwd=REPO, timeout=TIMEOUT + HARD_LIMIT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the statement was still running {HARD_LIMIT:g} s past the {TIMEOUT:g} s timeout (killed)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["seconds"], f"the statement was never executed: {got}"
    if mode == "connector":
        assert got["bypassed"], "the check was not bypassed"
    assert max(got["seconds"]) <= TIMEOUT + 1.0, f"{max(got['seconds']) - TIMEOUT:.1f} s past the timeout: {got}"
    assert got["peak_mib"] < 1024, f"peak resident size {got['peak_mib']:.0f} MiB: {got}"
    assert got["children_peak_mib"] < 1024, f"a child process peaked at {got['children_peak_mib']:.0f} MiB: {got}"
    assert os.listdir(singer_copy.parent) == [singer_copy.name]
    assert _sha(singer_copy) == before


@pytest.mark.parametrize("label,sql", BENCH.SQLITE_READS, ids=[label for label, _ in BENCH.SQLITE_READS])
def test_sqlite_read_queries_are_not_refused(singer_copy, monkeypatch, label, sql):
    db = open_database(singer_copy)
    res = db.try_execute(sql)
    assert res.ok and res.rows, (res.error_kind, res.error)
    alone = connector(db, sql, monkeypatch)
    # the same rows; their order may differ where ORDER BY leaves ties
    assert alone.ok and sorted(alone.rows, key=repr) == sorted(res.rows, key=repr), (alone.error_kind, alone.error)


# -- MariaDB ---------------------------------------------------------------------------------------

MY_DB = "qsql_hostile_matrix"


def _my(server, database: str | None = MY_DB):
    import pymysql

    host, port, user, password = server
    return pymysql.connect(host=host, port=port, user=user, password=password, database=database,
                           autocommit=True, charset="utf8mb4")


def _my_rows(server, sql: str, read_only: bool = False) -> list[tuple]:
    """Run ``sql`` as root; ``read_only`` opens the session the way the connector does
    (read-only session and transaction), without QuorumSQL's refusals."""
    conn = _my(server)
    try:
        with conn.cursor() as cur:
            if read_only:
                cur.execute("SET SESSION TRANSACTION READ ONLY")
                cur.execute("START TRANSACTION READ ONLY")
            cur.execute(sql)
            rows = list(cur.fetchall())
            if read_only:
                cur.execute("ROLLBACK")
            return rows
    finally:
        conn.close()


def _max_connections(server) -> int:
    return int(_my_rows(server, "SELECT @@GLOBAL.max_connections")[0][0])


@pytest.fixture(scope="module")
def my_victim(mysql_server):
    """A private copy of concert_singer on MariaDB, with two stored functions:
    ``qsql_set_global()`` (runs ``SET GLOBAL max_connections = 999``) and ``qsql_twice(x)``
    (read-only, returns ``2 * x``). The global is put back afterwards."""
    url = load_sqlite_into_mysql(spider_db("concert_singer"), mysql_server, MY_DB)
    saved = _max_connections(mysql_server)
    conn = _my(mysql_server)
    with conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.log_bin_trust_function_creators")
        trust = int(cur.fetchone()[0])
        cur.execute("SET GLOBAL log_bin_trust_function_creators = 1")  # in case binary logging is on
        try:
            cur.execute("CREATE FUNCTION qsql_set_global() RETURNS INT NOT DETERMINISTIC MODIFIES SQL DATA "
                        "BEGIN SET GLOBAL max_connections = 999; RETURN 1; END")
            cur.execute("CREATE FUNCTION qsql_twice(x INT) RETURNS INT DETERMINISTIC NO SQL RETURN x * 2")
        finally:
            cur.execute(f"SET GLOBAL log_bin_trust_function_creators = {trust}")
    conn.close()
    try:
        yield SimpleNamespace(url=url, max_connections=saved)
    finally:
        conn = _my(mysql_server, None)
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL max_connections = {saved}")
            cur.execute(f"DROP DATABASE IF EXISTS `{MY_DB}`")
        conn.close()


@pytest.fixture
def my_globals(mysql_server, my_victim):
    """Puts max_connections back after the test, whatever happened."""
    yield
    _my_rows(mysql_server, f"SET GLOBAL max_connections = {my_victim.max_connections}")


@pytest.fixture(scope="module")
def my_db(my_victim):
    return open_database(my_victim.url, query_timeout=TIMEOUT)


@pytest.fixture
def my_out_dir(mysql_server, my_victim, server_dir):
    """Where the server may write files: its ``secure_file_priv`` folder when it has one."""
    secure = _my_rows(mysql_server, "SELECT @@secure_file_priv")[0][0]
    out = Path(secure) if secure else server_dir
    made = set()
    yield out, made
    for path in made:
        path.unlink(missing_ok=True)


@pytest.mark.mysql
@pytest.mark.parametrize("ch", ODD_SPACES)
def test_mysql_dashes_before_a_non_ascii_space_write_no_file(mysql_server, my_victim, my_out_dir, tmp_path,
                                                             monkeypatch, ch):
    """``--`` and then U+00A0 / U+3000 / U+2028 is no comment to the server: the rest is code."""
    out, made = my_out_dir

    def target(name: str) -> Path:
        path = out / f"qsql_hostile_matrix_{os.getpid()}_{name}.txt"
        made.add(path)
        return path

    def sql(path: Path) -> str:
        return f"SELECT 1 --{ch} FROM (SELECT 1 AS `{ch}`) t INTO OUTFILE '{path}'"

    control = target("control")
    _my_rows(mysql_server, sql(control), read_only=True)
    assert control.exists(), "a read-only root session did not write the file: the test shows nothing"
    control.unlink()
    cand = ask(my_victim.url, sql(target("answer")), tmp_path)
    assert cand.status == "refused", (cand.status, cand.error)
    res = connector(open_database(my_victim.url, query_timeout=TIMEOUT), sql(target("connector")), monkeypatch)
    stopped(res)
    assert not any(path.exists() for path in made)


@pytest.mark.mysql
@pytest.mark.parametrize("ch", ODD_SPACES)
def test_mysql_dashes_before_a_non_ascii_space_read_no_file(mysql_server, my_victim, tmp_path, monkeypatch, ch):
    """The reason names what was refused: ``load_file``, or the ``--`` that is not a comment."""
    sql = f"SELECT 1 --{ch} AS a, LOAD_FILE('/etc/passwd') AS f FROM (SELECT 1 AS `{ch}`) t"
    assert PASSWD in repr(_my_rows(mysql_server, sql, read_only=True)), "the server did not read the file"
    cand = ask(my_victim.url, sql, tmp_path)
    assert cand.status == "refused", (cand.status, cand.error)
    assert "load_file" in cand.error.lower() or "--" in cand.error, cand.error
    no_passwd(cand.rows, cand.error)
    res = connector(open_database(my_victim.url, query_timeout=TIMEOUT), sql, monkeypatch)
    stopped(res)
    assert "load_file" in res.error.lower() or "--" in res.error, res.error
    no_passwd(res.rows, res.error)


@pytest.mark.mysql
def test_mysql_backquoted_load_file_reads_nothing(my_victim, my_db, tmp_path, monkeypatch):
    sql = "SELECT `load_file`('/etc/passwd') AS f"
    cand = ask(my_victim.url, sql, tmp_path)
    refused(cand, "load_file")
    no_passwd(cand.rows, cand.error)
    res = connector(my_db, sql, monkeypatch)
    stopped(res, "load_file")
    no_passwd(res.rows, res.error)
    # neither path returned a row: the server never read the file
    assert cand.rows == [] and res.rows == [] and res.error_kind == "refused"


@pytest.mark.mysql
def test_mysql_backquoted_get_lock_never_waits_on_the_lock(mysql_server, my_victim, my_db, tmp_path, monkeypatch):
    """Another session holds the lock: a GET_LOCK that ran would wait out the whole timeout."""
    holder = _my(mysql_server)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK('qsql_matrix_lock', 0), CONNECTION_ID()")
            got, holder_id = cur.fetchone()
        assert got == 1
        sql = "SELECT `get_lock`('qsql_matrix_lock', 100) AS l"
        cand = ask(my_victim.url, sql, tmp_path)
        refused(cand, "get_lock")
        start = time.monotonic()
        res = connector(my_db, sql, monkeypatch)
        elapsed = time.monotonic() - start
        stopped(res, "get_lock")
        assert elapsed < 1.0, f"the statement reached the server's lock queue ({elapsed:.1f} s)"
        assert _my_rows(mysql_server, "SELECT IS_USED_LOCK('qsql_matrix_lock')") == [(holder_id,)]
    finally:
        holder.close()


@pytest.mark.mysql
def test_mysql_stored_function_cannot_set_a_global(mysql_server, my_victim, my_db, my_globals, tmp_path, monkeypatch):
    sql = "SELECT qsql_set_global() AS x"
    before = my_victim.max_connections
    assert _my_rows(mysql_server, sql, read_only=True) == [(1,)]
    assert _max_connections(mysql_server) == 999, "the function did not change the global: the test shows nothing"
    _my_rows(mysql_server, f"SET GLOBAL max_connections = {before}")
    cand = ask(my_victim.url, sql, tmp_path)
    refused(cand, "qsql_set_global")
    assert _max_connections(mysql_server) == before
    res = connector(my_db, sql, monkeypatch)
    stopped(res, "qsql_set_global")
    assert _max_connections(mysql_server) == before


@pytest.mark.mysql
def test_mysql_allowed_functions_permit_a_users_read_only_function(mysql_server, my_victim, my_globals, tmp_path,
                                                                   monkeypatch):
    sql = "SELECT qsql_twice(21) AS x"
    # by default a routine of the database is refused, by the check and by the connector
    refused(ask(my_victim.url, sql, tmp_path), "qsql_twice")
    stopped(connector(open_database(my_victim.url, query_timeout=TIMEOUT), sql, monkeypatch), "qsql_twice")
    # named in the settings (answer) or given to the connector, it runs
    settings = Settings(query_timeout=TIMEOUT, cache_dir=tmp_path / "cache", allowed_functions=["qsql_twice"])
    cand = ask(my_victim.url, sql, tmp_path, settings)
    assert cand.status == "ok" and cand.rows == [(42,)], (cand.status, cand.error)
    db = open_database(my_victim.url, query_timeout=TIMEOUT, allowed_functions=["qsql_twice"])
    assert db.execute(sql).rows == [(42,)]
    alone = connector(db, sql, monkeypatch)
    assert alone.ok and alone.rows == [(42,)], alone.error
    # what is not named stays refused
    for bad, name in [("SELECT qsql_set_global() AS x", "qsql_set_global"),
                      ("SELECT LOAD_FILE('/etc/passwd') AS f", "load_file")]:
        refused(ask(my_victim.url, bad, tmp_path, settings), name)
        res = db.try_execute(bad)
        assert res.error_kind == "refused" and name in res.error.lower(), res.error
        stopped(connector(db, bad, monkeypatch), name)
        no_passwd(res.error)
    assert _max_connections(mysql_server) == my_victim.max_connections


@pytest.mark.mysql
@pytest.mark.parametrize("sql,word", [("FLUSH TABLES", "FLUSH"), ("SHUTDOWN", "SHUTDOWN")])
def test_mysql_refusal_names_the_statement(mysql_server, my_victim, my_db, tmp_path, monkeypatch, sql, word):
    cand = ask(my_victim.url, sql, tmp_path)
    refused(cand, word)
    assert not re.search(r"got (ALIAS|COLUMN)\b", cand.error), cand.error
    stopped(connector(my_db, sql, monkeypatch), word)
    assert _my_rows(mysql_server, "SELECT 1") == [(1,)]  # the server is still up


@pytest.mark.mysql
@pytest.mark.parametrize("label,sql", BENCH.MYSQL_READS, ids=[label for label, _ in BENCH.MYSQL_READS])
def test_mysql_read_queries_are_not_refused(my_db, monkeypatch, label, sql):
    res = my_db.try_execute(sql)
    assert res.ok and res.rows, (res.error_kind, res.error)
    alone = connector(my_db, sql, monkeypatch)
    # the same rows; their order may differ where ORDER BY leaves ties
    assert alone.ok and sorted(alone.rows, key=repr) == sorted(res.rows, key=repr), (alone.error_kind, alone.error)


# -- PostgreSQL --------------------------------------------------------------------------------

PG_DB = "qsql_hostile_matrix"


def _pg(server, dbname: str = PG_DB, read_only: bool = False):
    import psycopg

    host, port, user = server
    options = "-c default_transaction_read_only=on" if read_only else ""
    return psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=not read_only,
                           options=options)


def _pg_rows(server, sql: str, read_only: bool = False) -> list[tuple]:
    """Run ``sql`` as the superuser; ``read_only`` opens the session the way the connector does
    (``default_transaction_read_only``), without QuorumSQL's refusals."""
    with _pg(server, read_only=read_only) as conn:
        cur = conn.execute(sql)
        rows = cur.fetchall() if cur.description else []
        if read_only:
            conn.rollback()
        return rows


def _canary(server) -> list[int]:
    return [r[0] for r in _pg_rows(server, "SELECT id FROM qsql_canary ORDER BY id")]


@pytest.fixture(scope="module")
def pg_victim(postgres_server):
    """A private copy of concert_singer on PostgreSQL with the extensions dblink and adminpack, a
    table ``qsql_canary`` (ids 1, 2, 3) and three functions: ``qsql_remote_insert()`` (inserts
    id 99 through ``dblink_exec``), ``qsql_copy_out(path)`` (plpgsql, ``EXECUTE 'COPY ... TO'``
    the file) and ``qsql_double(x)`` (read-only, ``2 * x``)."""
    require_module("psycopg", "pip install 'quorumsql[postgres]'")
    url = load_sqlite_into_postgres(spider_db("concert_singer"), postgres_server, PG_DB)
    host, port, user = postgres_server
    dsn = f"host={host} port={port} user={user} dbname={PG_DB}"
    with _pg(postgres_server) as conn:
        conn.execute("CREATE EXTENSION dblink")
        conn.execute("CREATE EXTENSION adminpack")
        conn.execute("CREATE TABLE qsql_canary (id int PRIMARY KEY)")
        conn.execute("INSERT INTO qsql_canary VALUES (1), (2), (3)")
        conn.execute("CREATE FUNCTION qsql_remote_insert() RETURNS text LANGUAGE sql AS "
                     f"$f$ SELECT dblink_exec('{dsn}', 'INSERT INTO qsql_canary VALUES (99)') $f$")
        conn.execute("CREATE FUNCTION qsql_copy_out(path text) RETURNS int LANGUAGE plpgsql AS "
                     "$f$ BEGIN EXECUTE 'COPY qsql_canary TO ' || quote_literal(path); RETURN 1; END $f$")
        conn.execute("CREATE FUNCTION qsql_double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $f$ SELECT x * 2 $f$")
    try:
        yield SimpleNamespace(url=url, dsn=dsn)
    finally:
        with _pg(postgres_server, "postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_db(pg_victim):
    return open_database(pg_victim.url, query_timeout=TIMEOUT)


@pytest.fixture
def canary(postgres_server, pg_victim):
    """Puts qsql_canary back to 1, 2, 3 after the test, whatever happened."""
    yield
    _pg_rows(postgres_server, "DELETE FROM qsql_canary")
    _pg_rows(postgres_server, "INSERT INTO qsql_canary VALUES (1), (2), (3)")


@pytest.mark.postgres
def test_pg_function_wrapping_dblink_exec_inserts_nothing(postgres_server, pg_victim, pg_db, canary, tmp_path,
                                                          monkeypatch):
    sql = "SELECT qsql_remote_insert() AS r"
    _pg_rows(postgres_server, sql, read_only=True)
    assert _canary(postgres_server) == [1, 2, 3, 99], "the read-only session did not insert: the test shows nothing"
    _pg_rows(postgres_server, "DELETE FROM qsql_canary WHERE id = 99")
    refused(ask(pg_victim.url, sql, tmp_path), "qsql_remote_insert")
    assert _canary(postgres_server) == [1, 2, 3]
    stopped(connector(pg_db, sql, monkeypatch), "qsql_remote_insert")
    assert _canary(postgres_server) == [1, 2, 3]


@pytest.mark.postgres
def test_pg_plpgsql_function_running_copy_writes_no_file(postgres_server, pg_victim, pg_db, server_dir, tmp_path,
                                                         monkeypatch):
    control = server_dir / "control.txt"
    _pg_rows(postgres_server, f"SELECT qsql_copy_out('{control}')", read_only=True)
    assert control.exists(), "the read-only session did not write the file: the test shows nothing"
    control.unlink()
    refused(ask(pg_victim.url, f"SELECT qsql_copy_out('{server_dir / 'answer.txt'}') AS r", tmp_path), "qsql_copy_out")
    stopped(connector(pg_db, f"SELECT qsql_copy_out('{server_dir / 'connector.txt'}') AS r", monkeypatch),
            "qsql_copy_out")
    assert list(server_dir.iterdir()) == []


@pytest.mark.postgres
def test_pg_dblink_exec_deletes_nothing(postgres_server, pg_victim, pg_db, canary, tmp_path, monkeypatch):
    sql = f"SELECT dblink_exec('{pg_victim.dsn}', 'DELETE FROM qsql_canary WHERE id = 1') AS r"
    _pg_rows(postgres_server, sql, read_only=True)
    assert _canary(postgres_server) == [2, 3], "the read-only session did not delete: the test shows nothing"
    _pg_rows(postgres_server, "INSERT INTO qsql_canary VALUES (1)")
    refused(ask(pg_victim.url, sql, tmp_path), "dblink_exec")
    stopped(connector(pg_db, sql, monkeypatch), "dblink_exec")
    assert _canary(postgres_server) == [1, 2, 3]


@pytest.mark.postgres
def test_pg_file_write_writes_no_file(postgres_server, pg_victim, pg_db, server_dir, tmp_path, monkeypatch):
    def sql(path: Path) -> str:
        return f"SELECT pg_file_write('{path}', 'pwned', false) AS n"

    control = server_dir / "control.txt"
    _pg_rows(postgres_server, sql(control), read_only=True)
    assert control.exists(), "the read-only session did not write the file: the test shows nothing"
    control.unlink()
    refused(ask(pg_victim.url, sql(server_dir / "answer.txt"), tmp_path), "pg_file_write")
    stopped(connector(pg_db, sql(server_dir / "connector.txt"), monkeypatch), "pg_file_write")
    assert list(server_dir.iterdir()) == []


@pytest.mark.postgres
def test_pg_terminate_backend_kills_no_session(postgres_server, pg_victim, pg_db, tmp_path, monkeypatch):
    with _pg(postgres_server, "postgres") as bystander:
        pid = bystander.execute("SELECT pg_backend_pid()").fetchone()[0]
        sql = f"SELECT pg_terminate_backend({pid}) AS killed"
        refused(ask(pg_victim.url, sql, tmp_path), "pg_terminate_backend")
        assert bystander.execute("SELECT 1").fetchone() == (1,)
        stopped(connector(pg_db, sql, monkeypatch), "pg_terminate_backend")
        assert bystander.execute("SELECT 1").fetchone() == (1,), "the other session was killed"


READ_FILE_SPELLINGS = [
    pytest.param("pg_read_file", id="plain"),
    pytest.param("PG_READ_FILE", id="upper"),
    pytest.param('"pg_read_file"', id="quoted"),
    pytest.param("pg_catalog.pg_read_file", id="qualified"),
    pytest.param('pg_catalog."pg_read_file"', id="qualified-quoted"),
    pytest.param('U&"pg\\005fread\\005ffile"', id="unicode-escaped"),
]


@pytest.mark.postgres
@pytest.mark.parametrize("spelling", READ_FILE_SPELLINGS)
def test_pg_read_file_reads_nothing_however_spelled(postgres_server, pg_victim, pg_db, tmp_path, monkeypatch,
                                                    spelling):
    sql = f"SELECT {spelling}('/etc/passwd') AS f"
    assert PASSWD in repr(_pg_rows(postgres_server, sql, read_only=True)), "the spelling does not reach pg_read_file"
    cand = ask(pg_victim.url, sql, tmp_path)
    refused(cand, "pg_read_file")
    no_passwd(cand.rows, cand.error)
    res = connector(pg_db, sql, monkeypatch)
    stopped(res, "pg_read_file")
    no_passwd(res.rows, res.error)


@pytest.mark.postgres
def test_pg_refusal_names_checkpoint(pg_victim, pg_db, tmp_path, monkeypatch):
    cand = ask(pg_victim.url, "CHECKPOINT", tmp_path)
    refused(cand, "CHECKPOINT")
    assert not re.search(r"got (ALIAS|COLUMN)\b", cand.error), cand.error
    stopped(connector(pg_db, "CHECKPOINT", monkeypatch), "CHECKPOINT")


@pytest.mark.postgres
def test_pg_allowed_functions_permit_a_users_read_only_function(postgres_server, pg_victim, canary, tmp_path,
                                                                monkeypatch):
    sql = "SELECT qsql_double(21) AS x"
    # by default a routine of the database is refused, by the check and by the connector
    refused(ask(pg_victim.url, sql, tmp_path), "qsql_double")
    stopped(connector(open_database(pg_victim.url, query_timeout=TIMEOUT), sql, monkeypatch), "qsql_double")
    # named in the settings (answer) or given to the connector, it runs
    settings = Settings(query_timeout=TIMEOUT, cache_dir=tmp_path / "cache", allowed_functions=["qsql_double"])
    cand = ask(pg_victim.url, sql, tmp_path, settings)
    assert cand.status == "ok" and cand.rows == [(42,)], (cand.status, cand.error)
    db = open_database(pg_victim.url, query_timeout=TIMEOUT, allowed_functions=["qsql_double"])
    assert db.execute(sql).rows == [(42,)]
    alone = connector(db, sql, monkeypatch)
    assert alone.ok and alone.rows == [(42,)], alone.error
    # what is not named stays refused
    for bad, name in [("SELECT qsql_remote_insert() AS r", "qsql_remote_insert"),
                      ("SELECT pg_read_file('/etc/passwd') AS f", "pg_read_file")]:
        refused(ask(pg_victim.url, bad, tmp_path, settings), name)
        res = db.try_execute(bad)
        assert res.error_kind == "refused" and name in res.error.lower(), res.error
        stopped(connector(db, bad, monkeypatch), name)
        no_passwd(res.error)
    assert _canary(postgres_server) == [1, 2, 3]


@pytest.mark.postgres
@pytest.mark.parametrize("label,sql", BENCH.POSTGRES_READS, ids=[label for label, _ in BENCH.POSTGRES_READS])
def test_pg_read_queries_are_not_refused(pg_db, monkeypatch, label, sql):
    res = pg_db.try_execute(sql)
    assert res.ok and res.rows, (res.error_kind, res.error)
    alone = connector(pg_db, sql, monkeypatch)
    # the same rows; their order may differ where ORDER BY leaves ties
    assert alone.ok and sorted(alone.rows, key=repr) == sorted(res.rows, key=repr), (alone.error_kind, alone.error)
