"""Shared fixtures: real Spider data, the real embedded model, a real MariaDB server."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SPIDER = SHARED_DATA / "spider"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def spider_db(db_id: str) -> Path:
    """Path of a Spider database in ../shared/data (skips the test when the data is absent)."""
    path = SPIDER / "database" / db_id / f"{db_id}.sqlite"
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"Spider data missing in CI: {path}")
        pytest.skip(f"Spider data not found at {path} (expected ../shared/data beside the repo)")
    return path


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
        msg = "MariaDB server not installed (apt-get install mariadb-server); .ci/run installs it"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
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


_TYPE_MAP = {"INT": "INT", "INTEGER": "INT", "REAL": "DOUBLE", "NUMBER": "DOUBLE", "BOOL": "VARCHAR(8)"}


def load_sqlite_into_mysql(sqlite_path: Path, server, database: str) -> str:
    """Copy a Spider SQLite database into a fresh MariaDB database (test fixture data only).

    Returns the ``mysql+pymysql://`` URL of the copy.
    """
    import pymysql

    host, port, user, password = server
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    src.text_factory = lambda b: b.decode("utf-8", "replace")
    conn = pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{database}`")
        tables = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        for t in tables:
            info = src.execute(f'PRAGMA table_info("{t}")').fetchall()
            cols = []
            for _, name, typ, _nn, _d, _pk in info:
                base = (typ or "TEXT").split("(")[0].upper()
                mtype = _TYPE_MAP.get(base, "VARCHAR(255)")
                cols.append(f"`{name}` {mtype}")
            pks = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
            if pks:
                cols.append("PRIMARY KEY (" + ", ".join(f"`{p}`" for p in pks) + ")")
            cur.execute(f"CREATE TABLE `{t}` ({', '.join(cols)})")
            rows = src.execute(f'SELECT * FROM "{t}"').fetchall()
            if rows:
                marks = ", ".join(["%s"] * len(info))
                cur.executemany(f"INSERT INTO `{t}` VALUES ({marks})", rows)
        for t in tables:
            for fk in src.execute(f'PRAGMA foreign_key_list("{t}")').fetchall():
                try:
                    cur.execute(
                        f"ALTER TABLE `{t}` ADD FOREIGN KEY (`{fk[3]}`) REFERENCES `{fk[2]}`(`{fk[4]}`)"
                    )
                except pymysql.err.MySQLError:
                    pass  # Spider declares some keys MariaDB cannot enforce (type mismatch)
    conn.close()
    src.close()
    return f"mysql+pymysql://{user}{':' + password if password else ''}@{host}:{port}/{database}"


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

    pytest.importorskip("psycopg", reason="pip install 'quorumsql[postgres]'")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    try:
        pwd.getpwnam("postgres")
        have_user = True
    except KeyError:
        have_user = False
    if not bins or not have_user:
        msg = "PostgreSQL server not installed (apt-get install postgresql); .ci/run installs it"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
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
    import psycopg

    host, port, user = postgres_server
    src = sqlite3.connect(f"file:{spider_db('concert_singer')}?mode=ro", uri=True)
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS concert_singer")
        conn.execute("CREATE DATABASE concert_singer")
    with psycopg.connect(host=host, port=port, user=user, dbname="concert_singer", autocommit=True) as conn:
        for (t,) in src.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"):
            info = src.execute(f'PRAGMA table_info("{t}")').fetchall()
            cols = [f'"{name}" {"INTEGER" if (typ or "").upper().startswith("INT") else "TEXT"}' for _, name, typ, *_ in info]
            pks = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
            if pks:
                cols.append("PRIMARY KEY (" + ", ".join(f'"{p}"' for p in pks) + ")")
            conn.execute(f'CREATE TABLE "{t}" ({", ".join(cols)})')
            rows = [tuple(None if v is None else (v if isinstance(v, int) else str(v)) for v in r)
                    for r in src.execute(f'SELECT * FROM "{t}"')]
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(f'INSERT INTO "{t}" VALUES ({", ".join(["%s"] * len(info))})', rows)
        conn.execute('ALTER TABLE "singer_in_concert" ADD FOREIGN KEY ("concert_ID") REFERENCES "concert"("concert_ID")')
    src.close()
    return f"postgresql://{user}@{host}:{port}/concert_singer"
