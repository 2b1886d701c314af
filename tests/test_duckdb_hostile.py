"""Issue 22: every hostile DuckDB case of ``benchmarks/bench_hostile.py``, on a real DuckDB file and
on a real folder of CSV / TSV / Parquet / JSON-lines files, asserting the effects.

Each statement is tried three ways, each time watching the database's files (checksums), the
folders a statement could write to (new files) and what comes back (the first line of
/etc/passwd, which a CSV and a Parquet file beside the database also hold, so that reading any
file the database was not given shows):

- through ``quorumsql.answer()`` with a scripted chat model (``FakeListChatModel``), a
  one-candidate preset without refinement, the check on;
- through the connector with ``quorumsql.db.base.check_read_only`` replaced by a pass-through:
  the connector's guard and DuckDB's own locks stand;
- through the worker alone (:meth:`DuckDBDatabase._run_in_worker`, no check and no guard):
  DuckDB's settings (read-only catalog, external access off, locked configuration) and the
  kernel's lock on file writes (Landlock) stand. Some statements run there (``SET VARIABLE``, a
  temporary table, ``CHECKPOINT`` of a read-only catalog, ``query_table('singer')``), changing
  nothing that outlives the query; none changes a file, creates one or reads one it was not given.

Controls show that the set-up is real: without the locks, DuckDB reads the secret file and a
``COPY ... (USE_TMP_FILE false)`` overwrites an allowed data file.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

import quorumsql
import quorumsql.db.base as db_base
from quorumsql.config import Preset, Settings
from quorumsql.db import open_database
from quorumsql.errors import DatabaseError
from tests.conftest import REPO, require_module

duckdb = require_module("duckdb", "pip install 'quorumsql[duckdb]'")

from quorumsql.db import duckdb_worker  # noqa: E402 - after the duckdb check
from quorumsql.db.duckdb import DataFilesDatabase, DuckDBDatabase  # noqa: E402

PRESET = Preset(name="duckdb-hostile", temperatures=[0.0], refine_rounds=0)
TIMEOUT = 1.5
PASSWD = "root:x:0:0"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_hostile", REPO / "benchmarks" / "bench_hostile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return sys.modules[spec.name]


BENCH = _load_bench()
HOSTILE = [pytest.param(label, sql, id=label) for label, sql, control in BENCH.DUCKDB_STATEMENTS if not control]
CONTROLS = [pytest.param(sql, id=label) for label, sql, control in BENCH.DUCKDB_STATEMENTS if control]
READS = [pytest.param(sql, id=label) for label, sql in BENCH.DUCKDB_READS]
# statements whose result a cap may cut before the time limit stops them (DuckDB streams the rows
# of an endless recursive CTE or not, depending on timing): they stop at the row cap, or time out
CAPPED = {"recursive CTE, rows"}


@pytest.fixture(scope="module")
def work():
    path = Path(tempfile.mkdtemp(prefix="qsql-duckdb-hostile-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module", params=["duckdb", "duckdb files"])
def target(request, work):
    """The bench's DuckDB target: a .duckdb copy of concert_singer, or the same tables as files."""
    cls = BENCH.DuckDBTarget if request.param == "duckdb" else BENCH.DuckDBFilesTarget
    return cls(work)


@pytest.fixture(scope="module")
def settings(work):
    return Settings(query_timeout=TIMEOUT, cache_dir=work / "cache")


@pytest.fixture
def out():
    """A fresh folder the statements aim at."""
    path = Path(tempfile.mkdtemp(prefix="qsql-duckdb-out-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Effects:
    """What a statement did: the database's files changed, files created, /etc/passwd's text seen."""

    def __init__(self, target, out: Path) -> None:
        self.target, self.out = target, out

    def __enter__(self) -> "Effects":
        self.state = self.target.state()
        self.files = BENCH.listing(self.target.watched() + [self.out])
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self.start
        self.changed = self.target.state() != self.state
        self.created = sorted(BENCH.listing(self.target.watched() + [self.out]) - self.files)
        if self.changed or self.created:
            for f in self.created:
                BENCH._remove(f)
            self.target.restore()

    def assert_none(self, *seen) -> None:
        assert not self.changed, "the database's files changed"
        assert self.created == [], f"files created: {self.created}"
        assert PASSWD not in repr(seen), "the text of /etc/passwd came back"
        assert self.seconds < TIMEOUT + 1.5, f"ran {self.seconds:.1f} s with a {TIMEOUT} s timeout"


def ask(target, sql: str, settings: Settings):
    llm = FakeListChatModel(responses=[f"```sql\n{sql}\n```"])
    ans = quorumsql.answer("hostile", target.spec(), preset=PRESET, llm=llm, settings=settings)
    assert len(ans.candidates) == 1, ans
    return ans.candidates[0]


def without_check(db, sql: str, monkeypatch):
    """``db.try_execute(sql)`` with the sqlglot check replaced by a pass-through."""
    seen: list[str] = []

    def pass_through(text, *args, **kwargs):
        seen.append(text)
        return (text or "").strip()

    with monkeypatch.context() as m:
        m.setattr(db_base, "check_read_only", pass_through)
        res = db.try_execute(sql, timeout=TIMEOUT)
    assert seen, "the check was not bypassed: Database.execute no longer calls quorumsql.db.base.check_read_only"
    return res


def engine_only(db, sql: str):
    """The statement in a worker with neither the check nor the guard: ``(rows, error)``."""
    try:
        _columns, rows, _truncated = db._run_in_worker(sql, TIMEOUT, 100)
        return rows, None
    except DatabaseError as exc:
        return [], str(exc)


# -- the hostile statements, three ways --------------------------------------------------------------


@pytest.mark.parametrize("label,sql", HOSTILE)
def test_hostile_statement_through_answer(target, label, sql, settings, out):
    text = target.fill(sql, out)
    with Effects(target, out) as fx:
        cand = ask(target, text, settings)
    fx.assert_none(cand.rows, cand.error)
    if label in CAPPED and cand.status == "ok":
        assert len(cand.rows) == settings.max_rows
    else:
        assert cand.status != "ok" and cand.rows == [], (cand.status, cand.error)
        if cand.status == "refused":
            assert "refused by the connection" not in (cand.error or ""), "the check let it through"


@pytest.mark.parametrize("label,sql", HOSTILE)
def test_hostile_statement_through_the_connector_alone(target, label, sql, out, monkeypatch):
    db = open_database(target.spec(), query_timeout=TIMEOUT)
    text = target.fill(sql, out)
    with Effects(target, out) as fx:
        res = without_check(db, text, monkeypatch)
    fx.assert_none(res.rows, res.error)
    if label in CAPPED and res.ok:
        assert res.truncated
    else:
        assert not res.ok and res.rows == [], (res.error_kind, res.error)
    db.close()


@pytest.mark.parametrize("label,sql", HOSTILE)
def test_hostile_statement_through_the_engine_alone(target, label, sql, out):
    db = open_database(target.spec(), query_timeout=TIMEOUT)
    text = target.fill(sql, out)
    with Effects(target, out) as fx:
        rows, error = engine_only(db, text)
    fx.assert_none(rows, error)
    db.close()


# -- what must run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", CONTROLS + READS)
def test_read_queries_run_with_the_check_on_and_off(target, sql, settings, out, monkeypatch):
    text = target.fill(sql, out)
    cand = ask(target, text, settings)
    assert cand.status in ("ok", "empty"), (cand.status, cand.error)
    db = open_database(target.spec(), query_timeout=TIMEOUT)
    res = without_check(db, text, monkeypatch)
    assert res.ok, res.error
    db.close()


# -- the set-up is real: what happens without the locks -------------------------------------------


def test_without_the_locks_duckdb_reads_the_secret_and_overwrites_an_allowed_file(target, out):
    raw = duckdb.connect()
    rows = raw.execute(f"SELECT * FROM '{target.secret}'").fetchall()
    assert PASSWD in repr(rows)
    copy = out / "copy.csv"
    shutil.copy(target.secret, copy)
    raw.execute("SET allowed_paths = ?", [[str(copy)]])
    raw.execute("SET enable_external_access = false")
    raw.execute(f"COPY (SELECT 1 AS pwned) TO '{copy}' (USE_TMP_FILE false)")  # DuckDB alone lets it through
    raw.close()
    assert copy.read_text().startswith("pwned"), "DuckDB's allowed_paths no longer allow writes: revisit the notes"


@pytest.mark.skipif(duckdb_worker.landlock_abi() == 0, reason="the kernel has no Landlock")
def test_the_kernel_stops_the_write_that_duckdb_allows(target, out):
    db = open_database(target.spec())
    sql = target.fill("COPY (SELECT 1 AS pwned) TO '{data}' (USE_TMP_FILE false)", out)
    with Effects(target, out) as fx:
        rows, error = engine_only(db, sql)
    fx.assert_none(rows, error)
    if isinstance(db, DataFilesDatabase):  # an allowed file: only the kernel refuses
        assert error and "Permission denied" in error, error
    else:  # DuckDB refuses a COPY onto its own attached file by itself
        assert error and "attached database" in error, error
    assert db.sandbox == duckdb_worker.landlock_abi()
    assert db.privilege_warnings() == []


def test_without_landlock_a_file_database_says_what_stops_writes(target, monkeypatch):
    monkeypatch.setattr(duckdb_worker, "landlock_abi", lambda: 0)
    db = open_database(target.spec())
    warnings = db.privilege_warnings()
    if isinstance(db, DataFilesDatabase):
        assert len(warnings) == 1 and "Landlock" in warnings[0] and "COPY" in warnings[0]
    else:
        assert isinstance(db, DuckDBDatabase) and warnings == []


def test_a_sandboxed_worker_cannot_write_or_connect(tmp_path):
    """The lock itself, in a process of its own: no file written, none created, no TCP connection."""
    import subprocess

    if duckdb_worker.landlock_abi() == 0:
        pytest.skip("the kernel has no Landlock")
    probe = (
        "import socket, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from quorumsql.db.duckdb_worker import restrict_writes\n"
        "print(restrict_writes())\n"
        f"try:\n    open({str(tmp_path / 'x.txt')!r}, 'w')\n    print('wrote')\nexcept OSError as e:\n    print('refused', e.errno)\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n    print('connected')\n"
        "except OSError as e:\n    print('refused', e.errno)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60).stdout.split("\n")
    assert int(out[0]) >= 1 and out[1] == "refused 13" and out[2].startswith("refused")
    assert not (tmp_path / "x.txt").exists()


# -- time and memory ------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "SELECT repeat('a', 300000000) AS s FROM range(20)",
    "SELECT length(repeat('a', 300000000)) AS n",
    "SELECT len(range(1000000000)) AS n",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
])
def test_peaks_and_overruns_stay_bounded(target, sql):
    db = open_database(target.spec(), query_timeout=TIMEOUT)
    # this process may already be large (the e2e tests load the embedded model into it): the
    # bound is on what the query adds to it, and on the worker that runs the query
    before = BENCH._status_kib("self", "VmRSS") / 1024
    with BENCH.PeakWatch() as watch:
        start = time.monotonic()
        res = db.try_execute(sql)
        seconds = time.monotonic() - start
    assert not res.ok and seconds < TIMEOUT + 1.0, (res.error, seconds)
    assert watch.own - before < 1024 and watch.child < 1024, (watch.own, before, watch.child)
    db.close()
