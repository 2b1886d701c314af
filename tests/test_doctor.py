"""``quorumsql doctor``: findings for privileged accounts, and the SELECT-only account it prints.

The key check is the round trip on real servers: doctor run as root / the superuser prints the
statements for a SELECT-only account, the test executes them on the server, and doctor run as
that account finds nothing (exit 0), while the account still reads and cannot write.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from quorumsql.cli import build_parser, main
from quorumsql.db import open_database
from quorumsql.db.doctor import READ_ONLY_ACCOUNT, diagnose
from tests.conftest import _free_port, load_sqlite_into_mysql, load_sqlite_into_postgres, require_module, spider_db

DB = "qsql_doctor"
EXT_DB = "qsql_doctor_ext"


def _doctor(capsys, *args: str) -> tuple[int, str]:
    """Run ``quorumsql doctor ARGS`` in-process: (exit code, stdout)."""
    code = main(["doctor", *args])
    return code, capsys.readouterr().out


def _doctor_json(capsys, url: str) -> tuple[int, dict]:
    code, out = _doctor(capsys, url, "--json")
    return code, json.loads(out)


def _kinds(doc: dict) -> set[str]:
    return {f["kind"] for f in doc["findings"]}


def _executable(statements: list[str]) -> list[str]:
    return [s for s in statements if not s.lstrip().startswith(("--", "#"))]


# -- MariaDB --------------------------------------------------------------------------------


def _mysql_root(server):
    import pymysql

    host, port, user, password = server
    return pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True)


@pytest.fixture(scope="module")
def mysql_doctor_db(mysql_server) -> str:
    """Root URL of a private copy of concert_singer with one stored function."""
    url = load_sqlite_into_mysql(spider_db("concert_singer"), mysql_server, DB)
    conn = _mysql_root(mysql_server)
    with conn.cursor() as cur:
        cur.execute(f"CREATE FUNCTION `{DB}`.qsql_bump() RETURNS INT MODIFIES SQL DATA RETURN 1")
    conn.close()
    return url


def _drop_mysql_account(server) -> None:
    conn = _mysql_root(server)
    with conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{READ_ONLY_ACCOUNT}'@'127.0.0.1'")
        cur.execute("DROP ROLE IF EXISTS qsql_doctor_writer")
    conn.close()


@pytest.mark.mysql
def test_mysql_root_findings(mysql_doctor_db, capsys):
    code, doc = _doctor_json(capsys, mysql_doctor_db)
    assert code == 1 and doc["read_only"] is False and doc["dialect"] == "mysql"
    assert {"superuser", "write", "files", "routines"} <= _kinds(doc)
    by_kind = {f["kind"]: f["message"] for f in doc["findings"]}
    assert "ALL PRIVILEGES" in by_kind["superuser"] and "*.*" in by_kind["superuser"]
    assert "qsql_bump" in by_kind["routines"]
    statements = doc["fix"]["statements"]
    assert statements[0].startswith(f"CREATE USER '{READ_ONLY_ACCOUNT}'@'127.0.0.1' IDENTIFIED BY '")
    assert statements[1] == f"GRANT SELECT, SHOW VIEW ON `{DB}`.* TO '{READ_ONLY_ACCOUNT}'@'127.0.0.1';"
    # text: one finding per line, then the statements
    code, out = _doctor(capsys, mysql_doctor_db)
    lines = out.splitlines()
    assert code == 1
    for kind in ("superuser", "write", "files", "routines"):
        assert sum(line.startswith(f"{kind}: ") for line in lines) == 1
    assert any(line.strip().startswith("GRANT SELECT, SHOW VIEW ON") for line in lines)


@pytest.mark.mysql
def test_mysql_select_only_account_round_trip(mysql_server, mysql_doctor_db, capsys):
    import pymysql

    _, doc = _doctor_json(capsys, mysql_doctor_db)
    _drop_mysql_account(mysql_server)
    conn = _mysql_root(mysql_server)
    try:
        with conn.cursor() as cur:
            for statement in _executable(doc["fix"]["statements"]):
                cur.execute(statement)  # what doctor printed, for real
        url = doc["fix"]["url"]
        code, after = _doctor_json(capsys, url)
        assert (code, after["findings"], after["read_only"]) == (0, [], True)
        assert after["account"] == f"'{READ_ONLY_ACCOUNT}'@'127.0.0.1'"
        code, out = _doctor(capsys, url)
        assert code == 0 and "read-only" in out.splitlines()[-1]
        ro = open_database(url)
        assert ro.privilege_warnings() == []
        assert ro.execute("SELECT count(*) FROM singer").rows == [(6,)]
        host, port, _, _ = mysql_server
        direct = pymysql.connect(host=host, port=port, user=READ_ONLY_ACCOUNT,
                                 password=doc["fix"]["password"], database=DB, autocommit=True)
        with direct.cursor() as cur, pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("DELETE FROM singer")
        direct.close()

        # a role that can write, and EXECUTE on the database: found through SET ROLE
        with conn.cursor() as cur:
            cur.execute("CREATE ROLE qsql_doctor_writer")
            cur.execute(f"GRANT INSERT, EXECUTE ON `{DB}`.* TO qsql_doctor_writer")
            cur.execute(f"GRANT qsql_doctor_writer TO '{READ_ONLY_ACCOUNT}'@'127.0.0.1'")
        code, found = _doctor_json(capsys, url)
        assert code == 1 and {"write", "routines"} <= _kinds(found)
        messages = " ".join(f["message"] for f in found["findings"])
        assert "INSERT" in messages and "qsql_doctor_writer" in messages and "qsql_bump" in messages
        assert any("INSERT" in w for w in open_database(url).privilege_warnings())
        # run as the account doctor made, the fix takes back what it found instead of creating it
        reset = _executable(found["fix"]["statements"])
        assert not any(st.startswith("CREATE USER") for st in reset) and found["fix"]["url"] is None
        with conn.cursor() as cur:
            for statement in reset:
                cur.execute(statement)
        code, again = _doctor_json(capsys, url)
        assert (code, again["findings"]) == (0, [])
    finally:
        conn.close()
        _drop_mysql_account(mysql_server)


# -- PostgreSQL -------------------------------------------------------------------------------


def _pg(server, dbname: str):
    import psycopg

    host, port, user = server
    return psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True)


def _drop_pg_role(server) -> None:
    with _pg(server, "postgres") as conn:
        present = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READ_ONLY_ACCOUNT,)).fetchone()
        names = [n for (n,) in conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", ([DB, EXT_DB],))]
    if not present:
        return
    for name in names:
        with _pg(server, name) as conn:
            conn.execute(f"DROP OWNED BY {READ_ONLY_ACCOUNT}")
    with _pg(server, "postgres") as conn:
        conn.execute(f"DROP ROLE {READ_ONLY_ACCOUNT}")


@pytest.fixture(scope="module")
def pg_doctor_db(postgres_server) -> str:
    return load_sqlite_into_postgres(spider_db("concert_singer"), postgres_server, DB)


@pytest.fixture(scope="module")
def pg_ext_db(postgres_server) -> str:
    """A copy with dblink, adminpack and a VOLATILE user function."""
    url = load_sqlite_into_postgres(spider_db("concert_singer"), postgres_server, EXT_DB)
    with _pg(postgres_server, EXT_DB) as conn:
        conn.execute("CREATE EXTENSION dblink")
        conn.execute("CREATE EXTENSION adminpack")
        conn.execute("CREATE FUNCTION qsql_bump() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'")
    return url


@pytest.mark.postgres
def test_postgres_superuser_findings(pg_doctor_db, capsys):
    code, doc = _doctor_json(capsys, pg_doctor_db)
    assert code == 1 and doc["dialect"] == "postgres"
    assert {"superuser", "write", "files", "extension"} <= _kinds(doc)
    messages = " ".join(f["message"] for f in doc["findings"])
    assert "rolsuper" in messages and "pg_read_server_files" in messages
    assert "install dblink" in messages and "install adminpack" in messages  # the ability to create them
    statements = doc["fix"]["statements"]
    assert statements[0].startswith(f"CREATE ROLE {READ_ONLY_ACCOUNT} LOGIN PASSWORD '")
    assert f"GRANT pg_read_all_data TO {READ_ONLY_ACCOUNT};" in statements  # PostgreSQL 15
    assert f"-- GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READ_ONLY_ACCOUNT};" in statements


@pytest.mark.postgres
def test_postgres_select_only_role_round_trip(postgres_server, pg_doctor_db, capsys):
    import psycopg

    _, doc = _doctor_json(capsys, pg_doctor_db)
    _drop_pg_role(postgres_server)
    try:
        with _pg(postgres_server, DB) as conn:
            for statement in _executable(doc["fix"]["statements"]):
                conn.execute(statement)
        url = doc["fix"]["url"]
        code, after = _doctor_json(capsys, url)
        assert (code, after["findings"], after["account"]) == (0, [], READ_ONLY_ACCOUNT)
        ro = open_database(url)
        assert ro.privilege_warnings() == []
        assert ro.execute("SELECT count(*) FROM singer").rows == [(6,)]
        host, port, _ = postgres_server
        with psycopg.connect(host=host, port=port, user=READ_ONLY_ACCOUNT, dbname=DB, autocommit=True) as direct:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                direct.execute("DELETE FROM singer")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                direct.execute("CREATE TABLE qsql_t (a int)")

        # extra rights, directly and through a role: found, and the fix takes them back
        with _pg(postgres_server, DB) as conn:
            conn.execute("DROP ROLE IF EXISTS qsql_doctor_writer")
            conn.execute("CREATE ROLE qsql_doctor_writer")
            conn.execute("GRANT UPDATE ON singer TO qsql_doctor_writer")
            conn.execute(f"GRANT qsql_doctor_writer, pg_write_server_files TO {READ_ONLY_ACCOUNT}")
            conn.execute(f"GRANT INSERT ON stadium TO {READ_ONLY_ACCOUNT}")
            conn.execute(f"ALTER ROLE {READ_ONLY_ACCOUNT} CREATEDB")
        code, found = _doctor_json(capsys, url)
        assert code == 1 and _kinds(found) == {"write", "files"}
        assert any("write 2 table(s)" in w for w in open_database(url).privilege_warnings())
        reset = _executable(found["fix"]["statements"])
        assert not any(st.startswith("CREATE ROLE") for st in reset) and found["fix"]["url"] is None
        with _pg(postgres_server, DB) as conn:
            for statement in reset:
                conn.execute(statement)
        code, again = _doctor_json(capsys, url)
        assert (code, again["findings"]) == (0, [])
    finally:
        with _pg(postgres_server, DB) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'qsql_doctor_writer'").fetchone():
                conn.execute("DROP OWNED BY qsql_doctor_writer")
                conn.execute("DROP ROLE qsql_doctor_writer")
        _drop_pg_role(postgres_server)


@pytest.mark.postgres
def test_postgres_dblink_and_adminpack_are_reported(postgres_server, pg_ext_db, capsys):
    code, doc = _doctor_json(capsys, pg_ext_db)
    assert code == 1
    extension = [f["message"] for f in doc["findings"] if f["kind"] == "extension"]
    assert any("can use dblink" in m and "dblink_exec" in m for m in extension)
    assert any("can use adminpack" in m and "pg_file_write" in m for m in extension)
    assert any(f["kind"] == "routines" and "qsql_bump()" in f["message"] for f in doc["findings"])
    statements = _executable(doc["fix"]["statements"])
    revokes = [s for s in statements if s.startswith("REVOKE")]
    assert any("dblink_exec(text)" in s for s in revokes) and any("qsql_bump()" in s for s in revokes)

    _drop_pg_role(postgres_server)
    try:
        with _pg(postgres_server, EXT_DB) as conn:
            for statement in statements:
                if not statement.startswith("REVOKE"):
                    conn.execute(statement)
        url = doc["fix"]["url"]
        # SELECT-only, yet every role may call dblink's functions and the user function
        code, before = _doctor_json(capsys, url)
        assert code == 1 and _kinds(before) == {"extension", "routines"}
        assert "dblink" in " ".join(f["message"] for f in before["findings"])
        assert any("dblink" in w for w in open_database(url).privilege_warnings())
        with _pg(postgres_server, EXT_DB) as conn:
            for statement in revokes:
                conn.execute(statement)
        code, after = _doctor_json(capsys, url)
        assert (code, after["findings"]) == (0, [])
        assert any("dblink is installed" in n for n in after["notes"])
    finally:
        _drop_pg_role(postgres_server)


# -- SQLite ----------------------------------------------------------------------------------


def test_sqlite_writable_file(concert_singer, tmp_path, capsys):
    copy = tmp_path / "concert_singer.sqlite"
    shutil.copy(concert_singer, copy)
    copy.chmod(0o644)
    code, doc = _doctor_json(capsys, str(copy))
    assert code == 1 and [f["kind"] for f in doc["findings"]] == ["write"]
    assert "writable" in doc["findings"][0]["message"]
    assert any("folder" in n and "is writable" in n for n in doc["notes"])
    fix = " ".join(doc["fix"]["statements"])
    assert ("mount" in fix) if os.geteuid() == 0 else (f"chmod a-w {copy}" in fix)


def _run_as(uid: int, argv: list[str]) -> tuple[int, str]:
    """``quorumsql.cli.main(argv)`` in a forked child running as ``uid``: (exit code, stdout).

    The interpreter may live where that user cannot read (e.g. under /root): everything the
    command imports is imported here first.
    """
    build_parser()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            with os.fdopen(write, "w") as out, contextlib.redirect_stdout(out):
                code = main(argv)
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        out = fh.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_sqlite_read_only_file(concert_singer, tmp_path, capsys):
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        copy = folder / "concert_singer.sqlite"
        shutil.copy(concert_singer, copy)
        copy.chmod(0o444)
        folder.chmod(0o555)
        try:
            code, doc = _doctor_json(capsys, str(copy))
        finally:
            folder.chmod(0o755)
        assert (code, doc["findings"]) == (0, [])
        return
    # root ignores file modes: check as the unprivileged user "nobody", for real
    nobody = 65534
    diagnose(concert_singer)  # imports what the child needs
    folder = Path(tempfile.mkdtemp(prefix="qsql-doctor-"))  # under /tmp: reachable by nobody
    try:
        copy = folder / "concert_singer.sqlite"
        shutil.copy(concert_singer, copy)
        copy.chmod(0o444)
        folder.chmod(0o755)
        code, out = _run_as(nobody, ["doctor", str(copy), "--json"])
        doc = json.loads(out)
        assert (code, doc["findings"], doc["fix"]) == (0, [], None)
        assert any("not writable" in n for n in doc["notes"])
        code, out = _run_as(nobody, ["doctor", str(copy)])
        assert code == 0 and out.splitlines()[-1].startswith("read-only: the user nobody can only read")
        copy.chmod(0o666)  # the same file, writable by everyone
        code, out = _run_as(nobody, ["doctor", str(copy), "--json"])
        doc = json.loads(out)
        assert code == 1 and [f["kind"] for f in doc["findings"]] == ["write"]
        assert f"chmod a-w {copy}" in doc["fix"]["statements"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- bad input: exit 2, one line, no traceback -------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quorumsql.cli", "doctor", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("spec", [
    str(Path(__file__).resolve().parents[1] / "README.md"),  # a file that is not a database
    "/nonexistent/db.sqlite",
    "ftp://127.0.0.1/x",
    "mysql+pymysql://root@127.0.0.1:{port}/x",  # nothing listens there
    "postgresql://postgres@127.0.0.1:{port}/x",
])
def test_bad_input_exits_2_with_one_line(spec):
    if spec.startswith("postgresql"):
        require_module("psycopg", "pip install 'quorumsql[postgres]'")
    proc = _cli(spec.format(port=_free_port()))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
