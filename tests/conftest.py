"""Shared fixtures: real Spider data, the real embedded model, real MariaDB and PostgreSQL servers.

A test that needs something absent (../shared/data, a server, psycopg) is skipped on a
developer's machine and fails when the environment variable ``CI`` is set: use
:func:`require_shared`, :func:`require_module`, :func:`spider_db` or the ``spider_data`` /
``bird_data`` fixtures rather than ``pytest.skip``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SPIDER = SHARED_DATA / "spider"
BIRD = SHARED_DATA / "bird_minidev_format"


def in_ci() -> bool:
    """True when the environment variable ``CI`` is set to ``1``/``true``/``yes`` (read at call time)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the calling test, or fail it when running in CI, where nothing may be missing.

    Raises:
        pytest's ``Failed`` outcome under CI (see :func:`in_ci`), its ``Skipped`` outcome otherwise.
    """
    if in_ci():
        pytest.fail(f"{reason} [CI is set: a missing prerequisite fails instead of skipping]")
    pytest.skip(reason)


def require_shared(path: Path, what: str = "shared reference data") -> Path:
    """``path`` (a file or folder under ``../shared/data``) when it exists.

    Otherwise the test is skipped with a message naming the path, or failed when ``CI`` is set.
    """
    if not Path(path).exists():
        skip_or_fail(f"{what} not found at {path} (expected ../shared/data beside the repo)")
    return Path(path)


def require_module(name: str, hint: str = ""):
    """Import and return module ``name``; skip the test without it, fail under ``CI``."""
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(f"Python package {name!r} is not installed{': ' + hint if hint else ''}")


def spider_db(db_id: str) -> Path:
    """Path of a Spider database in ../shared/data (skips the test when absent, fails under CI)."""
    return require_shared(SPIDER / "database" / db_id / f"{db_id}.sqlite", f"Spider database {db_id!r}")


@pytest.fixture(scope="session")
def spider_data() -> Path:
    """The Spider folder of ../shared/data (``dev.json``, ``database/``); see :func:`require_shared`."""
    require_shared(SPIDER / "dev.json", "Spider dev.json")
    require_shared(SPIDER / "database", "Spider databases")
    return SPIDER


@pytest.fixture(scope="session")
def bird_data() -> Path:
    """The BIRD Mini-Dev folder of ../shared/data (description CSVs, questions)."""
    return require_shared(BIRD / "dev_databases", "BIRD Mini-Dev files")


@pytest.fixture
def concert_singer() -> Path:
    return spider_db("concert_singer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def embedded_server():
    """The real embedded model (Qwen2.5-Coder-1.5B via llama.cpp), started once per session."""
    from quorumsql.config import Settings
    from quorumsql.llm.embedded import get_embedded_server

    settings = Settings.load(llm_base_url="")
    return get_embedded_server(settings)


@pytest.fixture(scope="session")
def embedded_llm_url(embedded_server) -> str:
    """OpenAI-compatible base URL of the session's embedded model (``http://127.0.0.1:PORT/v1``)."""
    return embedded_server.base_url


@pytest.fixture
def embedded_env(embedded_server, monkeypatch) -> dict[str, str]:
    """Environment for subprocesses (CLI, langgraph dev) that use the session's embedded model."""
    env = dict(os.environ)
    env["QUORUMSQL_LLM_BASE_URL"] = embedded_server.base_url
    env["QUORUMSQL_LLM_MODEL"] = embedded_server.alias
    return env


# --------------------------------------------------------------------------------------------
# MariaDB: CI starts one (QUORUMSQL_TEST_MYSQL_URL); otherwise the fixture starts its own
# mariadbd on a free loopback port with a throw-away data directory.


def _wait_mysql(host: str, port: int, user: str, password: str, timeout: float = 60.0) -> None:
    import pymysql

    deadline = time.monotonic() + timeout
    while True:
        try:
            pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=2).close()
            return
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def mysql_server():
    """``(host, port, user, password)`` of a running MariaDB/MySQL server on 127.0.0.1."""
    from urllib.parse import urlsplit

    url = os.environ.get("QUORUMSQL_TEST_MYSQL_URL")
    if url:
        parts = urlsplit(url)
        server = (parts.hostname or "127.0.0.1", parts.port or 3306, parts.username or "root", parts.password or "")
        _wait_mysql(*server)
        yield server
        return
    mariadbd = shutil.which("mariadbd") or shutil.which("mysqld") or (
        "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None
    )
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not mariadbd or not install:
        skip_or_fail("MariaDB server not installed (apt-get install mariadb-server); .ci/run installs it")
    datadir = Path(tempfile.mkdtemp(prefix="qsql-mariadb-"))
    port = _free_port()
    subprocess.run(
        [install, "--user=root", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
         "--skip-test-db"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    proc = subprocess.Popen(
        [mariadbd, "--no-defaults", "--user=root", f"--datadir={datadir}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={datadir}/mysqld.sock", "--skip-log-bin",
         f"--pid-file={datadir}/mysqld.pid"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_mysql("127.0.0.1", port, "root", "")
        yield ("127.0.0.1", port, "root", "")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(datadir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Copies of Spider SQLite databases on the test servers (fixture data only). Each column gets the
# server type its declared SQLite type names (integer, floating point, date, timestamp, text),
# unless a stored value does not fit that type (SQLite does not enforce declared types), in which
# case the column is text; values are converted to what the column holds.

_INT_TYPES = {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT"}
_FLOAT_TYPES = {"REAL", "DOUBLE", "FLOAT", "NUMBER", "NUMERIC", "DECIMAL"}
_SERVER_TYPES = {
    "mysql": {"int": "BIGINT", "float": "DOUBLE", "date": "DATE", "timestamp": "DATETIME", "text": "VARCHAR(255)",
              "long_text": "TEXT"},
    "postgres": {"int": "BIGINT", "float": "DOUBLE PRECISION", "date": "DATE", "timestamp": "TIMESTAMP",
                 "text": "TEXT", "long_text": "TEXT"},
}


def _fits(kind: str, v) -> bool:
    from datetime import date, datetime

    if v is None:
        return True
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind in ("date", "timestamp") and isinstance(v, str):
        try:
            (date.fromisoformat if kind == "date" else datetime.fromisoformat)(v)
        except ValueError:
            return False
        return True
    return False


def _convert(kind: str, v):
    from datetime import date, datetime

    if v is None:
        return None
    if kind in ("text", "long_text"):
        return v if isinstance(v, str) else str(v)
    if kind == "date":
        return date.fromisoformat(v)
    if kind == "timestamp":
        return datetime.fromisoformat(v)
    return v


def _sqlite_tables(src: sqlite3.Connection):
    """``[(table, [(column, kind)], primary key columns, rows)]`` with rows converted per column kind."""
    out = []
    tables = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    for t in tables:
        info = src.execute(f'PRAGMA table_info("{t}")').fetchall()
        rows = src.execute(f'SELECT * FROM "{t}"').fetchall()
        cols = []
        for i, (_, name, typ, _nn, _d, _pk) in enumerate(info):
            base = (typ or "TEXT").split("(")[0].strip().upper()
            kind = ("int" if base in _INT_TYPES else "float" if base in _FLOAT_TYPES else "date" if base == "DATE"
                    else "timestamp" if base in ("DATETIME", "TIMESTAMP") else "text")
            if kind != "text" and not all(_fits(kind, r[i]) for r in rows):
                kind = "text"
            if kind == "text" and any(isinstance(r[i], str) and len(r[i]) > 255 for r in rows) and not _pk:
                kind = "long_text"
            cols.append((name, kind))
        rows = [tuple(_convert(kind, v) for (_, kind), v in zip(cols, r)) for r in rows]
        pks = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
        out.append((t, cols, pks, rows))
    return out


def _open_sqlite(path: Path) -> sqlite3.Connection:
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    src.text_factory = lambda b: b.decode("utf-8", "replace")
    return src


def load_sqlite_into_mysql(sqlite_path: Path, server, database: str) -> str:
    """Copy a Spider SQLite database into a fresh MariaDB database (test fixture data only).

    Args:
        sqlite_path: the ``.sqlite`` file.
        server: ``(host, port, user, password)`` of :func:`mysql_server`.
        database: name of the database to (re)create.

    Returns:
        The ``mysql+pymysql://`` URL of the copy. Foreign keys MariaDB refuses (type mismatches,
        dangling references in Spider's data) are left out.
    """
    import pymysql

    host, port, user, password = server
    src = _open_sqlite(sqlite_path)
    types = _SERVER_TYPES["mysql"]
    conn = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{database}`")
        for t, cols, pks, rows in _sqlite_tables(src):
            defs = [f"`{name}` {types[kind]}" for name, kind in cols]
            if pks:
                defs.append("PRIMARY KEY (" + ", ".join(f"`{p}`" for p in pks) + ")")
            cur.execute(f"CREATE TABLE `{t}` ({', '.join(defs)})")
            if rows:
                cur.executemany(f"INSERT INTO `{t}` VALUES ({', '.join(['%s'] * len(cols))})", rows)
        for (t,) in src.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"):
            for fk in src.execute(f'PRAGMA foreign_key_list("{t}")').fetchall():
                try:
                    cur.execute(f"ALTER TABLE `{t}` ADD FOREIGN KEY (`{fk[3]}`) REFERENCES `{fk[2]}`(`{fk[4]}`)")
                except pymysql.err.MySQLError:
                    pass  # Spider declares some keys MariaDB cannot enforce
    conn.close()
    src.close()
    return f"mysql+pymysql://{user}{':' + password if password else ''}@{host}:{port}/{database}"


def load_sqlite_into_postgres(sqlite_path: Path, server, database: str) -> str:
    """Copy a Spider SQLite database into a fresh PostgreSQL database (test fixture data only).

    Args:
        sqlite_path: the ``.sqlite`` file.
        server: ``(host, port, user)`` of :func:`postgres_server`.
        database: name of the database to (re)create.

    Returns:
        The ``postgresql://`` URL of the copy. Foreign keys PostgreSQL refuses (type mismatches,
        references to non-unique columns, dangling values in Spider's data) are left out.
    """
    import psycopg

    host, port, user = server
    src = _open_sqlite(sqlite_path)
    types = _SERVER_TYPES["postgres"]
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')
    with psycopg.connect(host=host, port=port, user=user, dbname=database, autocommit=True) as conn:
        for t, cols, pks, rows in _sqlite_tables(src):
            defs = [f'"{name}" {types[kind]}' for name, kind in cols]
            if pks:
                defs.append("PRIMARY KEY (" + ", ".join(f'"{p}"' for p in pks) + ")")
            conn.execute(f'CREATE TABLE "{t}" ({", ".join(defs)})')
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(f'INSERT INTO "{t}" VALUES ({", ".join(["%s"] * len(cols))})', rows)
        for (t,) in src.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"):
            for fk in src.execute(f'PRAGMA foreign_key_list("{t}")').fetchall():
                try:
                    conn.execute(f'ALTER TABLE "{t}" ADD FOREIGN KEY ("{fk[3]}") REFERENCES "{fk[2]}"("{fk[4]}")')
                except psycopg.Error:
                    pass  # Spider declares some keys PostgreSQL cannot enforce
    src.close()
    return f"postgresql://{user}@{host}:{port}/{database}"


@pytest.fixture(scope="session")
def mysql_concert_singer(mysql_server) -> str:
    """URL of concert_singer copied into the test MariaDB server."""
    return load_sqlite_into_mysql(spider_db("concert_singer"), mysql_server, "concert_singer")


# --------------------------------------------------------------------------------------------
# PostgreSQL: CI installs Debian's postgresql; the fixture runs its own cluster as the
# `postgres` user (the server refuses to run as root) on a free loopback port.


@pytest.fixture(scope="session")
def postgres_server():
    """``(host, port, user)`` of a throw-away PostgreSQL cluster on 127.0.0.1 (trust auth)."""
    import glob
    import pwd

    require_module("psycopg", "pip install 'quorumsql[postgres]'")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    try:
        pwd.getpwnam("postgres")
        have_user = True
    except KeyError:
        have_user = False
    if not bins or not have_user:
        skip_or_fail("PostgreSQL server not installed (apt-get install postgresql); .ci/run installs it")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="qsql-pg-"))
    datadir = root / "data"
    shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(
        [*as_pg, str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(root / "server.log"), "-w", "-o",
         f"-p {port} -c listen_addresses=127.0.0.1 -k {root}", "start"],
        check=True, stdout=subprocess.DEVNULL,
    )
    try:
        yield ("127.0.0.1", port, "postgres")
    finally:
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "fast", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_concert_singer(postgres_server) -> str:
    """URL of concert_singer copied into the test PostgreSQL cluster."""
    return load_sqlite_into_postgres(spider_db("concert_singer"), postgres_server, "concert_singer")
