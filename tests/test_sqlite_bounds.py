"""Issue 16, SQLite: reads leave the folder as it was, hostile single steps stay within the
timeout, memory is bounded per query, and only allowed functions run.

Hostile statements go to the connector's ``_execute`` directly (the sqlglot check bypassed)
as well as through ``execute`` / ``try_execute``: the connection is a lock of its own. Every
database is a real SQLite file: copies of Spider databases in ``tmp_path``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from quorumsql.db import SQLiteDatabase, open_database
from quorumsql.db import sqlite_worker
from quorumsql.db.base import row_bytes
from quorumsql.db.sqlite import DEFAULT_MAX_QUERY_MEMORY
from quorumsql.errors import QueryError, QueryTimeout, UnsafeSQLError
from tests.conftest import REPO, SPIDER, spider_db


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def _gone(pid: int) -> bool:
    """The process ended (no /proc entry, or a zombie no one reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _wait_gone(pids, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return all(_gone(p) for p in pids)


def _copy(db_id: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{db_id}.sqlite"
    shutil.copy(spider_db(db_id), path)
    return path


def _gold(db_ids: set[str]) -> list[tuple[str, str]]:
    lines = (SPIDER / "dev_gold.sql").read_text().splitlines()
    return [tuple(line.split("\t")) for line in lines if line.strip() and line.split("\t")[1] in db_ids]


def _reference_rows(db_id: str, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{spider_db(db_id)}?mode=ro", uri=True)
    conn.text_factory = lambda b: b.decode("utf-8", errors="replace")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def singer(tmp_path) -> Path:
    """concert_singer copied alone into ``tmp_path/db`` (rollback journal mode, as shipped)."""
    return _copy("concert_singer", tmp_path / "db")


@pytest.fixture
def wal_singer(singer) -> Path:
    """The copy switched to WAL mode; the writer closed, so no -wal or -shm is left."""
    conn = sqlite3.connect(singer)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.close()
    assert _listing(singer.parent) == [singer.name]
    return singer


@pytest.fixture
def db_factory():
    """Opens SQLiteDatabase objects and closes them (ending their workers) after the test."""
    opened: list[SQLiteDatabase] = []

    def make(path, **kwargs) -> SQLiteDatabase:
        db = SQLiteDatabase(path, **kwargs)
        opened.append(db)
        return db

    yield make
    pids = [pid for db in opened for pid in db.worker_pids()]
    for db in opened:
        db.close()
    assert _wait_gone(pids), "close() left worker processes running"


# -- 1. WAL side files --------------------------------------------------------------------------


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_reads_leave_the_folder_and_the_stamp_as_they_were(tmp_path, db_factory, journal):
    path = _copy("concert_singer", tmp_path / "db")
    if journal == "wal":
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
    folder, before, sha = path.parent, _listing(path.parent), _sha(path)
    db = db_factory(path)
    stamp, fingerprint = db.change_stamp(), db.fingerprint()  # fingerprint introspects in-process
    for sql, db_id in _gold({"concert_singer"}):
        assert db.execute(sql).rows == _reference_rows(db_id, sql), sql
        assert db._execute(sql, 10.0, 10_000)[1] == _reference_rows(db_id, sql), sql
    assert db.schema(refresh=True).table("singer") is not None
    assert _listing(folder) == before, "a read created a file beside the database"
    assert _sha(path) == sha
    assert db.change_stamp() == stamp and db.refresh_if_changed() is False
    assert db_factory(path).fingerprint() == fingerprint


def test_committed_rows_in_a_live_writers_wal_are_read(wal_singer, db_factory):
    writer = sqlite3.connect(wal_singer)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")  # the rows stay in the -wal file
        writer.execute("INSERT INTO singer (Singer_ID, Name) VALUES (99, 'In the WAL')")
        writer.commit()
        folder = _listing(wal_singer.parent)
        assert folder == sorted([wal_singer.name, wal_singer.name + "-wal", wal_singer.name + "-shm"])
        db = db_factory(wal_singer)
        assert db.execute("SELECT count(*) FROM singer").rows == [(7,)]
        assert db._execute("SELECT Name FROM singer WHERE Singer_ID = 99", 5.0, 10)[1] == [("In the WAL",)]
        assert db.schema().table("singer") is not None
        writer.execute("INSERT INTO singer (Singer_ID, Name) VALUES (100, 'Later')")
        writer.commit()
        assert db.execute("SELECT count(*) FROM singer").rows == [(8,)]
        assert _listing(wal_singer.parent) == folder  # the side files that existed stay, no others
    finally:
        writer.close()
    # the writer's last close checkpoints and removes its files: an idle reader must not prevent it
    assert _listing(wal_singer.parent) == [wal_singer.name]
    assert db.execute("SELECT count(*) FROM singer").rows == [(8,)]
    assert _listing(wal_singer.parent) == [wal_singer.name]


def test_a_writer_that_starts_after_a_lock_free_read_is_seen(wal_singer, db_factory):
    db = db_factory(wal_singer)
    assert sqlite_worker.open_plan(str(wal_singer)) == "immutable"
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]
    stamp = db.change_stamp()
    writer = sqlite3.connect(wal_singer)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("INSERT INTO singer (Singer_ID, Name) VALUES (99, 'New')")
        writer.commit()
        assert db.change_stamp() != stamp
        assert db.execute("SELECT count(*) FROM singer").rows == [(7,)]  # not the cached connection's view
    finally:
        writer.close()
    assert db.execute("SELECT count(*) FROM singer").rows == [(7,)]
    assert _listing(wal_singer.parent) == [wal_singer.name]


def test_wal_content_left_without_its_shm_is_still_read(wal_singer, tmp_path, db_factory):
    writer = sqlite3.connect(wal_singer)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO singer (Singer_ID, Name) VALUES (99, 'Crashed')")
    writer.commit()
    crashed = tmp_path / "crashed"  # what a writer that died leaves, minus the -shm
    crashed.mkdir()
    shutil.copy(wal_singer, crashed / wal_singer.name)
    shutil.copy(str(wal_singer) + "-wal", crashed / (wal_singer.name + "-wal"))
    writer.close()
    copy = crashed / wal_singer.name
    assert sqlite_worker.open_plan(str(copy)) == "ro"
    assert db_factory(copy).execute("SELECT count(*) FROM singer").rows == [(7,)]
    # SQLite needs a wal-index to read the WAL: the -shm is the one file it may add
    assert set(_listing(crashed)) - {copy.name, copy.name + "-wal"} <= {copy.name + "-shm"}


def test_open_plan_follows_the_files(singer):
    path = str(singer)
    assert sqlite_worker.open_plan(path) == "ro"  # rollback journal: nothing to create
    conn = sqlite3.connect(singer)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    assert sqlite_worker.open_plan(path) == "immutable"  # WAL, no WAL content
    Path(path + "-wal").write_bytes(b"")
    assert sqlite_worker.open_plan(path) == "immutable"  # an empty -wal holds nothing
    Path(path + "-shm").write_bytes(b"")
    assert sqlite_worker.open_plan(path) == "ro"  # a writer's files: read with locks
    os.remove(path + "-wal")
    os.remove(path + "-shm")
    Path(path + "-journal").write_bytes(b"")
    assert sqlite_worker.open_plan(path) == "ro"  # a rollback journal: SQLite decides


def test_a_file_changed_during_a_lock_free_read_is_read_again(wal_singer, monkeypatch):
    """The worker's loop, run in this process: a changed file state makes it read again."""
    read_fd, write_fd = os.pipe()
    worker = sqlite_worker._Worker(write_fd)
    worker.configure({"path": str(wal_singer), "max_value_bytes": 1 << 20, "max_query_memory": 0})
    real = sqlite_worker.file_state
    calls = []

    def changing(path):  # the second look (after the first run) sees different files
        calls.append(path)
        state = real(path)
        return state + (len(calls) == 2,)

    monkeypatch.setattr(sqlite_worker, "file_state", changing)
    worker.query("SELECT count(*) FROM singer", 5.0, 10, 1 << 20)
    monkeypatch.setattr(sqlite_worker, "file_state", lambda p: real(p) + (time.monotonic(),))
    worker.query("SELECT count(*) FROM singer", 5.0, 10, 1 << 20)  # changes every time: an error
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    frames = []
    while data:
        n = int.from_bytes(data[:8], "big")
        frames.append(__import__("marshal").loads(data[8:8 + n]))
        data = data[8 + n:]
    assert len(calls) == 4  # before and after each of the two runs
    assert frames[0] == ("done", ["count(*)"], False, [(6,)])
    assert frames[1][:2] == ("error", "changed")
    worker._drop_connection()


# -- 2. single steps the progress handler cannot interrupt ---------------------------------------

HOSTILE_STEPS = [
    pytest.param("SELECT printf('%.*c', 1000000000, 'x')", id="printf-width"),
    pytest.param("SELECT instr(printf('%.*c', 10000000, 'a'), printf('%.*c', 80000, 'a') || 'b')", id="instr"),
    pytest.param("SELECT printf('%.*c', 10000000, 'a') LIKE '%' || printf('%.*c', 8000, 'a') || 'b'", id="like"),
    pytest.param("SELECT printf('%.*c', 10000000, 'a') GLOB '*' || printf('%.*c', 8000, 'a') || 'b'", id="glob"),
    pytest.param(
        "SELECT length(replace(printf('%.*c', 30000000, 'a'), printf('%.*c', 300000, 'a') || 'b', 'x'))",
        id="replace",
    ),
]


def test_an_uninterruptible_step_is_stopped_and_the_worker_replaced(singer, db_factory):
    db = db_factory(singer)
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]
    first = db.worker_pids()
    start = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"exceeded 0.5 s"):
        db._execute("SELECT printf('%.*c', 1000000000, 'x')", 0.5, 10)
    assert time.monotonic() - start < 0.5 + 1.0
    assert _wait_gone(first) and db.worker_pids() == []
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]  # a new worker, started lazily
    assert db.worker_pids() and db.worker_pids() != first


@pytest.mark.e2e
@pytest.mark.parametrize("sql", HOSTILE_STEPS)
def test_hostile_single_steps_end_within_a_second_of_the_timeout(singer, db_factory, sql):
    db = db_factory(singer, query_timeout=1.0)
    before = _sha(singer)
    start = time.monotonic()
    with pytest.raises(QueryTimeout):
        db._execute(sql, 1.0, 10)  # the check bypassed
    assert time.monotonic() - start < 1.0 + 1.0
    res = db.try_execute(sql)  # and through the check
    assert res.error_kind in ("timeout", "refused"), (res.error_kind, res.error)
    assert res.seconds < 1.0 + 1.0
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]
    assert _listing(singer.parent) == [singer.name] and _sha(singer) == before


def test_long_like_patterns_fail_at_once(singer, db_factory):
    db = db_factory(singer)
    with pytest.raises(QueryError, match="pattern too complex.*10,000 bytes"):
        db._execute("SELECT printf('%.*c', 1000000, 'a') LIKE '%' || printf('%.*c', 40000, 'a') || 'b'", 5.0, 10)
    sql = "SELECT count(*) FROM singer WHERE Name LIKE '%e%'"
    assert db.execute(sql).rows == _reference_rows("concert_singer", sql) == [(2,)]


def test_queries_of_other_threads_do_not_wait_for_a_stuck_one(singer, db_factory):
    db = db_factory(singer)
    expected = _reference_rows("concert_singer", "SELECT Name, Age FROM singer ORDER BY Age")
    ends: dict[str, float] = {}
    errors: list[BaseException] = []

    def stuck() -> None:
        try:
            db._execute("SELECT printf('%.*c', 1000000000, 'x')", 2.0, 10)
        except QueryTimeout:
            ends["stuck"] = time.monotonic()

    def quick(i: int) -> None:
        try:
            for _ in range(5):
                assert db.execute("SELECT Name, Age FROM singer ORDER BY Age").rows == expected
            ends[f"quick{i}"] = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    slow = threading.Thread(target=stuck)
    slow.start()
    time.sleep(0.2)
    threads = [threading.Thread(target=quick, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in [*threads, slow]:
        t.join()
    assert not errors, errors
    assert "stuck" in ends and all(ends[f"quick{i}"] < ends["stuck"] for i in range(4))


# -- 3. memory per query ------------------------------------------------------------------------


def test_a_query_over_its_memory_fails_with_a_clear_message(singer, db_factory):
    db = db_factory(singer, max_query_memory=32 * 1024 * 1024)
    with pytest.raises(QueryError) as err:
        db._execute("SELECT randomblob(20000000), randomblob(20000000)", 10.0, 10)
    message = str(err.value)
    assert "out of memory" in message and "max_query_memory" in message and "33,554,432" in message
    assert "\n" not in message
    res = db.try_execute("SELECT randomblob(20000000), randomblob(20000000)")
    assert res.error_kind == "error" and "max_query_memory" in res.error
    assert db.execute("SELECT length(randomblob(1000000))").rows == [(1000000,)]


def test_the_worker_bounds_its_own_memory(singer, db_factory):
    db = db_factory(singer)
    db.execute("SELECT 1")
    (pid,) = db.worker_pids()
    limits = Path(f"/proc/{pid}/limits").read_text()
    line = next(ln for ln in limits.splitlines() if ln.startswith("Max address space"))
    assert int(line.split()[3]) == 2 * DEFAULT_MAX_QUERY_MEMORY + 256 * 1024 * 1024


def test_memory_error_inside_a_query_is_a_failed_query():
    class Exhausted:
        def set_progress_handler(self, *args):
            pass

        def execute(self, sql):
            raise MemoryError()

    with pytest.raises(sqlite_worker.QueryFailed) as err:
        sqlite_worker.run_query(Exhausted(), "SELECT 1", 1.0, 10, 100, lambda rows: None)
    assert err.value.kind == "nomem" and str(err.value) == "out of memory"


def test_a_row_over_the_byte_cap_never_leaves_the_worker(singer, db_factory):
    db = db_factory(singer, max_result_bytes=100_000)
    res = db.execute("SELECT 1 UNION ALL SELECT randomblob(200000)")
    assert res.truncated and res.rows == [(1,)]
    cols, rows, truncated = db._execute("SELECT randomblob(150000)", 5.0, 10)
    assert truncated and rows == []


def test_worker_and_base_count_row_bytes_alike():
    for row in [(1, 2.5, None), ("abc", b"\x00\x01"), ("é" * 10, 7), ()]:
        assert sqlite_worker.row_bytes(row) == row_bytes(row)


_PEAK_PROBE = r"""
import json, resource, sys, time
from quorumsql.db import open_database
db = open_database(sys.argv[1], query_timeout=2.0)
db.execute("SELECT 1")
out = []
for sql in sys.argv[2:]:
    start = time.monotonic()
    res = db.try_execute(sql) if sql.startswith("WITH") else None
    if res is None:
        try:
            db._execute(sql, 2.0, 10_000)
            kind = "ok"
        except Exception as exc:
            kind = type(exc).__name__
    else:
        kind = res.error_kind or f"ok {len(res.rows)} rows"
    out.append([kind, time.monotonic() - start])
db.close()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a probe started from a large
# pytest process (the embedded model loaded) would report that process's size
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_mib": int(hwm.split()[1]) / 1024, "runs": out}))
"""


@pytest.mark.e2e
def test_hostile_queries_keep_the_calling_process_under_1_gib(singer):
    wide = "SELECT " + ", ".join(["randomblob(30000000)"] * 40)
    emoji = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
             "SELECT x, replace(printf('%.*c', 4000000, 'a'), 'a', '\U0001F600') FROM c")
    blobs = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x, randomblob(1000000) FROM c"
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_PROBE, str(singer), wide, "SELECT printf('%.*c', 1000000000, 'x')", emoji, blobs],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["peak_mib"] < 1024, got
    (wide_kind, wide_s), (printf_kind, printf_s), (emoji_kind, emoji_s), (blob_kind, blob_s) = got["runs"]
    assert wide_kind == "QueryError" and printf_kind == "QueryTimeout", got
    assert max(wide_s, printf_s, emoji_s, blob_s) < 2.0 + 1.0, got
    assert blob_kind.startswith("ok"), got  # cut at the 64 MiB byte cap


# -- 4. the function allowlist in the authorizer -------------------------------------------------


def test_functions_outside_the_allowlist_are_denied_by_the_connection(singer, db_factory):
    db = db_factory(singer)
    assert "soundex" not in db.allowed_function_names()
    with pytest.raises(QueryError, match="not authorized"):
        db._execute("SELECT soundex(Name) FROM singer", 5.0, 10)  # the check bypassed
    with pytest.raises(UnsafeSQLError):
        db.execute("SELECT soundex(Name) FROM singer")
    permitted = db_factory(singer, allowed_functions=["SOUNDEX"])
    assert permitted._execute("SELECT soundex('Robert')", 5.0, 10)[1] == [("R163",)]
    assert permitted.execute("SELECT soundex('Robert')").rows == [("R163",)]


def test_never_allowed_functions_stay_denied_whatever_the_user_permits(singer, db_factory):
    db = db_factory(singer, allowed_functions=["fts3_tokenizer", "load_extension"])
    for sql in ("SELECT hex(fts3_tokenizer('simple'))", "SELECT load_extension('x')"):
        with pytest.raises(QueryError, match="not authorized"):
            db._execute(sql, 5.0, 10)


@pytest.mark.parametrize(
    "sql,rows",
    [
        ("SELECT count(*) FROM singer WHERE Name LIKE 'J%' OR Name GLOB 'T*'", [(5,)]),
        ("""SELECT '{"a": [1, 2]}' -> '$.a', '{"a": 3}' ->> 'a'""", [("[1,2]", 3)]),
        ("SELECT length(current_date) = 10, current_time IS NOT NULL, current_timestamp IS NOT NULL", [(1, 1, 1)]),
        ("SELECT sum(value) FROM json_each('[1, 2, 3]')", [(6,)]),
        ("SELECT count(*) FROM json_tree('{\"a\": {\"b\": 1}}')", [(3,)]),
        ("SELECT name FROM pragma_table_info('singer') WHERE pk = 1", [("Singer_ID",)]),
        ("SELECT user_version FROM pragma_user_version", [(0,)]),
        ("SELECT count(*) FROM pragma_foreign_key_list('concert')", [(1,)]),
    ],
)
def test_operators_and_read_only_table_valued_functions_work(singer, db_factory, sql, rows):
    """LIKE, GLOB, ->, ->> and CURRENT_DATE reach the authorizer as function calls; json_each and
    pragma_table_info as reads of a virtual table (and of their pragma): all read-only, all run."""
    assert db_factory(singer)._execute(sql, 5.0, 10)[1] == rows
    if "current_" not in sql:
        assert rows == _reference_rows("concert_singer", sql)  # what SQLite itself answers


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM pragma_journal_mode('wal')", "SELECT * FROM pragma_user_version(7)",
     "SELECT * FROM pragma_writable_schema"],
)
def test_table_valued_pragmas_cannot_set_anything(singer, db_factory, sql):
    """A table-valued pragma takes a schema name, never a value; writable_schema is not read."""
    sha = _sha(singer)
    with pytest.raises(QueryError, match="unknown database|too many arguments|not authorized"):
        db_factory(singer)._execute(sql, 5.0, 10)
    assert _sha(singer) == sha and _listing(singer.parent) == [singer.name]


def test_authorizer_closure_rules():
    allow = sqlite_worker.make_authorizer(frozenset({"count", "readfile"}))
    ok, deny = sqlite3.SQLITE_OK, sqlite3.SQLITE_DENY
    assert allow(sqlite3.SQLITE_FUNCTION, None, "COUNT", None, None) == ok
    assert allow(sqlite3.SQLITE_FUNCTION, None, "upper", None, None) == deny
    assert allow(sqlite3.SQLITE_FUNCTION, None, "like", None, None) == ok  # an operator
    assert allow(sqlite3.SQLITE_FUNCTION, None, "readfile", None, None) == deny  # the deny list wins
    assert allow(sqlite3.SQLITE_READ, "json_each", "value", "main", None) == ok
    assert allow(sqlite3.SQLITE_PRAGMA, "table_info", "singer", None, None) == ok
    assert allow(sqlite3.SQLITE_PRAGMA, "journal_mode", "wal", None, None) == deny
    assert allow(sqlite3.SQLITE_ATTACH, "x.db", None, None, None) == deny
    legacy = sqlite_worker.make_authorizer(None)
    assert legacy(sqlite3.SQLITE_FUNCTION, None, "upper", None, None) == ok
    assert legacy(sqlite3.SQLITE_FUNCTION, None, "load_extension", None, None) == deny


# -- 5. the Spider gold queries give the same rows as plain SQLite --------------------------------


def test_spider_gold_queries_match_plain_sqlite(tmp_path, db_factory):
    db_ids = {"concert_singer", "pets_1", "car_1", "flight_2"}
    dbs = {d: db_factory(_copy(d, tmp_path / d)) for d in db_ids}
    queries = _gold(db_ids)
    assert len(queries) > 100
    for sql, db_id in queries:  # interleaved across databases, one worker each
        res = dbs[db_id].try_execute(sql)
        assert res.ok, (sql, res.error)
        assert res.rows == _reference_rows(db_id, sql), sql
    for db_id, db in dbs.items():
        assert _listing(tmp_path / db_id) == [f"{db_id}.sqlite"]


# -- 6. workers end with the database and with this process --------------------------------------


def test_close_and_garbage_collection_end_the_workers(singer):
    db = SQLiteDatabase(singer)
    db.execute("SELECT 1")
    pids = db.worker_pids()
    db.close()
    assert _wait_gone(pids) and db.worker_pids() == []
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]  # usable after close
    pids = db.worker_pids()
    del db
    gc.collect()
    assert _wait_gone(pids)


def test_workers_die_with_the_parent(singer):
    script = (
        "import sys, time\n"
        "from quorumsql.db import open_database\n"
        "db = open_database(sys.argv[1])\n"
        "db.execute('SELECT 1')\n"
        "print(db.worker_pids()[0], flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(singer)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        worker = int(parent.stdout.readline())
        assert not _gone(worker)
    finally:
        parent.send_signal(signal.SIGKILL)  # no atexit, no finalizer: only the closed pipe tells
        parent.wait()
        parent.stdout.close()
    assert _wait_gone([worker], 10.0), "the worker outlived its parent"
