"""``quorumsql mcp``: the MCP server driven by the official SDK's own client.

In-process (``mcp.Client`` connected to the ``MCPServer`` object, a scripted LangChain model)
for the tools' shapes and every error path; then as a user's MCP client runs it: ``python -m
quorumsql.cli mcp DB ...`` spawned over stdio, and the same command with ``--http PORT`` over
streamable HTTP, both answering with a small OpenAI-compatible stub on 127.0.0.1 that always
replies with one fixed SQL query.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from quorumsql import Pipeline, Settings
from quorumsql.cli import main
from tests.conftest import require_module, spider_db

SCRIPTED_SQL = "SELECT Name, Country FROM singer WHERE Age > 30 ORDER BY Name"


@pytest.fixture(scope="module")
def sdk():
    """The MCP SDK (a test dependency: skipped without it locally, a failure under CI)."""
    return require_module("mcp", "pip install 'quorumsql[mcp]'")


@pytest.fixture
def writable_concert(tmp_path) -> Path:
    """A writable copy of Spider's concert_singer (in tmp_path): a write that got through would stick."""
    path = tmp_path / "concert_singer.sqlite"
    shutil.copyfile(spider_db("concert_singer"), path)
    path.chmod(0o644)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def singer_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM singer").fetchone()[0]


def scripted_pipeline(tmp_path: Path, reply: str = SCRIPTED_SQL, **settings) -> Pipeline:
    llm = FakeListChatModel(responses=[f"```sql\n{reply}\n```"])
    return Pipeline(Settings.load(cache_dir=tmp_path / "cache", **settings), preset="fast", llm=llm)


def call(server, steps):
    """Run ``steps(client)`` (an async function) against ``server`` with the SDK's client."""
    import anyio
    from mcp import Client

    async def go():
        async with Client(server) as client:
            return await steps(client)

    return anyio.run(go)


def text(result) -> str:
    assert len(result.content) == 1
    return result.content[0].text


def expected_rows(path: Path, sql: str = SCRIPTED_SQL) -> list[list]:
    with sqlite3.connect(path) as conn:
        return [list(r) for r in conn.execute(sql).fetchall()]


# -- in process -------------------------------------------------------------------------------


def test_tools_resources_and_their_shapes(sdk, tmp_path, writable_concert):
    from quorumsql.mcp_server import build_server

    pets = spider_db("pets_1")
    server = build_server([writable_concert, pets], pipeline=scripted_pipeline(tmp_path))

    async def steps(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        resources = (await client.list_resources()).resources
        mschema = await client.read_resource("quorumsql://pets_1/mschema")
        listed = await client.call_tool("list_tables", {})
        one = await client.call_tool("list_tables", {"database": "pets_1"})
        described = await client.call_tool("describe_table", {"table": "SINGER", "database": "concert_singer"})
        rows = await client.call_tool("run_sql", {"sql": "SELECT Name FROM singer ORDER BY Name LIMIT 2",
                                                  "database": "concert_singer"})
        asked = await client.call_tool("ask", {"question": "Which singers are over 30?", "database": "concert_singer"})
        return tools, resources, mschema, listed, one, described, rows, asked, client.instructions

    tools, resources, mschema, listed, one, described, rows, asked, instructions = call(server, steps)
    assert set(tools) == {"ask", "list_tables", "describe_table", "run_sql"}
    assert tools["run_sql"].annotations.read_only_hint is True
    assert set(tools["ask"].input_schema["properties"]) == {"question", "evidence", "database"}
    assert tools["ask"].input_schema["required"] == ["question"]
    assert "concert_singer, pets_1" in tools["run_sql"].description
    assert "concert_singer (sqlite, 4 tables); pets_1 (sqlite, 3 tables)" in instructions

    assert [str(r.uri) for r in resources] == ["quorumsql://concert_singer/mschema", "quorumsql://pets_1/mschema"]
    assert mschema.contents[0].text.startswith("【DB_ID】 pets_1\n【Schema】\n# Table: Student\n")
    assert "Has_Pet.StuID=Student.StuID" in mschema.contents[0].text

    assert not listed.is_error
    dbs = listed.structured_content["databases"]
    assert [d["database"] for d in dbs] == ["concert_singer", "pets_1"]
    assert dbs[0]["tables"][1] == {"name": "singer", "kind": "table", "columns": 7}
    assert [d["database"] for d in one.structured_content["databases"]] == ["pets_1"]
    assert json.loads(text(listed)) == listed.structured_content

    assert not described.is_error
    assert text(described).splitlines()[:4] == ["【DB_ID】 concert_singer", "【Schema】", "# Table: singer", "["]
    assert "(Singer_ID:INT, Primary Key, Examples: [1, 2, 3])," in text(described)
    assert "# Table: stadium" not in text(described)
    assert text(described).endswith("【Foreign keys】\nsinger_in_concert.Singer_ID=singer.Singer_ID")

    assert rows.structured_content == {
        "database": "concert_singer", "sql": "SELECT Name FROM singer ORDER BY Name LIMIT 2",
        "columns": ["Name"], "rows": [["Joe Sharp"], ["John Nizinik"]], "row_count": 2, "truncated": False,
    }

    assert not asked.is_error, text(asked)
    doc = asked.structured_content
    assert doc["sql"] == SCRIPTED_SQL and doc["database"] == "concert_singer"
    assert doc["columns"] == ["Name", "Country"]
    assert doc["rows"] == expected_rows(writable_concert) and doc["row_count"] == len(doc["rows"]) > 0
    assert doc["confidence"] == {"share": 1.0, "votes": 1, "candidates": 1, "decisive": True, "decided_by": "vote"}
    assert doc["truncated"] is False and doc["warnings"] == [] and "explanation" not in doc


def test_one_database_needs_no_name_and_rows_are_capped(sdk, tmp_path, writable_concert):
    from quorumsql.mcp_server import build_server

    server = build_server([writable_concert], pipeline=scripted_pipeline(tmp_path), max_rows=2)

    async def steps(client):
        return (await client.call_tool("run_sql", {"sql": "SELECT Name FROM singer"}),
                await client.call_tool("ask", {"question": "Which singers are over 30?"}),
                await client.call_tool("list_tables", {"database": "CONCERT_SINGER"}))

    ran, asked, listed = call(server, steps)
    assert ran.structured_content["rows"] == [["Joe Sharp"], ["Timbaland"]]
    assert ran.structured_content["truncated"] is True
    assert asked.structured_content["row_count"] == 2 and asked.structured_content["truncated"] is True
    assert listed.structured_content["databases"][0]["database"] == "concert_singer"


def test_every_error_is_a_one_line_error_result_and_the_server_goes_on(sdk, tmp_path, writable_concert):
    from quorumsql.mcp_server import build_server

    before = digest(writable_concert)
    server = build_server([writable_concert, spider_db("pets_1")], pipeline=scripted_pipeline(tmp_path))
    cases = {
        "write": ("run_sql", {"sql": "DELETE FROM singer", "database": "concert_singer"}),
        "drop": ("run_sql", {"sql": "SELECT 1; DROP TABLE singer", "database": "concert_singer"}),
        "attach": ("run_sql", {"sql": "ATTACH DATABASE 'x.db' AS x", "database": "concert_singer"}),
        "bad_sql": ("run_sql", {"sql": "SELECT nope FROM singer", "database": "concert_singer"}),
        "empty_sql": ("run_sql", {"sql": "  ", "database": "concert_singer"}),
        "no_db_named": ("run_sql", {"sql": "SELECT 1"}),
        "bad_db": ("run_sql", {"sql": "SELECT 1", "database": "warehouse"}),
        "bad_db_ask": ("ask", {"question": "How many?", "database": "warehouse"}),
        "bad_table": ("describe_table", {"table": "singers", "database": "concert_singer"}),
        "empty_question": ("ask", {"question": "   ", "database": "concert_singer"}),
        "question_not_text": ("ask", {"question": 42, "database": "concert_singer"}),
        "no_question": ("ask", {"database": "concert_singer"}),
        "unknown_tool": ("drop_everything", {}),
    }

    async def steps(client):
        out = {key: await client.call_tool(name, args) for key, (name, args) in cases.items()}
        out["after"] = await client.call_tool("run_sql", {"sql": "SELECT count(*) FROM singer",
                                                          "database": "concert_singer"})
        return out

    results = call(server, steps)
    for key in cases:
        assert results[key].is_error, key
        line = text(results[key])
        assert "\n" not in line and line, key
    msg = {key: text(results[key]) for key in cases}
    assert msg["write"] == ("Error executing tool run_sql: refused: only read queries "
                            "(SELECT / WITH ... SELECT) are allowed; got DELETE")
    assert "refused: only a single read query is allowed; got 2 statements" in msg["drop"]
    assert "refused:" in msg["attach"] and "ATTACH" in msg["attach"]
    assert "the query failed: no such column: nope" in msg["bad_sql"]
    assert "the SQL is empty" in msg["empty_sql"]
    assert "several databases (concert_singer, pets_1)" in msg["no_db_named"]
    assert "unknown database 'warehouse'; this server serves: concert_singer, pets_1" in msg["bad_db"]
    assert "unknown database 'warehouse'" in msg["bad_db_ask"]
    assert "no table 'singers' in concert_singer; its tables: stadium, singer, concert, singer_in_concert" in msg["bad_table"]
    assert "the question is empty" in msg["empty_question"]
    assert "invalid arguments: question: Input should be a valid string" in msg["question_not_text"]
    assert "invalid arguments: question: Field required" in msg["no_question"]
    assert "Unknown tool: drop_everything" in msg["unknown_tool"]
    # nothing was written, and the server still answers after all of that
    assert digest(writable_concert) == before and singer_count(writable_concert) == 6
    assert results["after"].structured_content["rows"] == [[6]]


def test_model_endpoint_down_is_an_error_result(sdk, tmp_path, writable_concert):
    from quorumsql.mcp_server import build_server

    pipeline = Pipeline(Settings.load(cache_dir=tmp_path / "cache", llm_base_url="http://127.0.0.1:9/v1",
                                      llm_max_retries=0), preset="fast")
    server = build_server([writable_concert], pipeline=pipeline)

    async def steps(client):
        return (await client.call_tool("ask", {"question": "How many singers are there?"}),
                await client.call_tool("list_tables", {}))

    asked, listed = call(server, steps)
    assert asked.is_error and "\n" not in text(asked)
    assert "unreachable" in text(asked)
    assert not listed.is_error


def test_an_unexpected_failure_is_one_line_too(sdk, tmp_path, writable_concert, monkeypatch):
    from quorumsql.mcp_server import QuorumTools, build_server

    tools = QuorumTools([writable_concert], pipeline=scripted_pipeline(tmp_path))
    server = build_server(tools=tools)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(tools, "list_tables", broken)

    async def steps(client):
        return (await client.call_tool("list_tables", {}),
                await client.call_tool("run_sql", {"sql": "SELECT 1"}))

    failed, ok = call(server, steps)
    assert failed.is_error
    assert text(failed) == ("Error executing tool list_tables: internal error (RuntimeError: disk on fire "
                            "second line); the server's log has the details")
    assert ok.structured_content["rows"] == [[1]]


def test_two_databases_with_one_name_get_distinct_names(sdk, tmp_path):
    from quorumsql.mcp_server import QuorumTools

    a, b = tmp_path / "a" / "shop.sqlite", tmp_path / "b" / "shop.sqlite"
    for path in (a, b):
        path.parent.mkdir()
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (x INTEGER)")
    tools = QuorumTools([a, b], pipeline=scripted_pipeline(tmp_path))
    assert tools.names() == ["shop", "shop_2"]
    assert tools.resolve("shop_2").spec == str(b)


def test_start_up_errors(sdk, tmp_path, capsys):
    from quorumsql.errors import DatabaseError, InputError
    from quorumsql.mcp_server import QuorumTools, check_loopback, serve

    with pytest.raises(InputError, match="at least one database"):
        QuorumTools([], pipeline=scripted_pipeline(tmp_path))
    with pytest.raises(DatabaseError, match="not found"):
        QuorumTools([tmp_path / "missing.sqlite"], pipeline=scripted_pipeline(tmp_path))
    for host in ("127.0.0.1", "localhost", "::1"):
        assert check_loopback(host) == host
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(InputError, match="loopback only"):
            serve([spider_db("pets_1")], http_port=8000, host=host)
    with pytest.raises(InputError, match="1 to 65535"):
        serve([spider_db("pets_1")], http_port=0)
    # the command says the same in one line, exit code 2
    assert main(["mcp", str(spider_db("pets_1")), "--http", "8000", "--host", "0.0.0.0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: the MCP server listens on loopback only (127.0.0.1, localhost, ::1); refusing '0.0.0.0'")
    assert main(["mcp", str(tmp_path / "missing.sqlite")]) == 2
    assert capsys.readouterr().err.strip() == f"error: SQLite database not found: {tmp_path / 'missing.sqlite'}"


def test_a_port_in_use_is_refused(sdk, tmp_path):
    from quorumsql.errors import InputError
    from quorumsql.mcp_server import serve

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1 port {port}"):
            serve([spider_db("pets_1")], http_port=port, pipeline=scripted_pipeline(tmp_path))


def test_without_the_sdk_the_command_says_how_to_install_it(monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "mcp" or m.startswith("mcp.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mcp", None)  # import mcp -> ImportError
    assert main(["mcp", str(spider_db("pets_1"))]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: the MCP server needs the MCP Python SDK 2.x (package 'mcp'): pip install 'quorumsql[mcp]'")


def test_the_server_sits_above_the_public_api():
    # layers point down: the MCP server uses the package's public surface, never the graph or agents
    from tests.test_layering import PACKAGE, imports_of

    found = {m for m in imports_of(PACKAGE / "mcp_server.py") if m.startswith("quorumsql")}
    allowed = {"quorumsql", "quorumsql.Database", "quorumsql.Pipeline", "quorumsql.__version__",
               "quorumsql.errors", "quorumsql.records", "quorumsql.records.jsonable",
               "quorumsql.schema_repr", "quorumsql.schema_repr.to_mschema"}
    assert found <= allowed | {f"quorumsql.errors.{n}" for n in
                               ("ConfigError", "InputError", "QueryError", "QueryTimeout", "QuorumSQLError",
                                "UnsafeSQLError")}, sorted(found - allowed)
    for path in PACKAGE.rglob("*.py"):  # nothing below imports the server
        if path.name not in ("mcp_server.py", "cli.py"):
            assert not any(m.startswith("quorumsql.mcp_server") for m in imports_of(path)), path


# -- as a client runs it: a subprocess over stdio and over streamable HTTP ------------------------


class SQLStub:
    """A tiny OpenAI-compatible chat-completions server on 127.0.0.1 that always replies ``sql``."""

    def __init__(self, sql: str) -> None:
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests += 1
                reply = {
                    "id": f"stub-{stub.requests}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "stub"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"```sql\n{sql}\n```"}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = SQLStub(SCRIPTED_SQL)
    yield server
    server.close()


def server_env(tmp_path: Path, llm_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUMSQL_")}
    env.update(QUORUMSQL_LLM_BASE_URL=llm_url, QUORUMSQL_LLM_MODEL="stub", QUORUMSQL_LLM_MAX_RETRIES="0",
               QUORUMSQL_LLM_TIMEOUT="20", QUORUMSQL_CACHE_DIR=str(tmp_path / "cache"), QUORUMSQL_PRESET="fast")
    return env


async def client_session_checks(client, concert: Path) -> dict:
    """The calls both transports are checked with."""
    return {
        "tools": sorted(t.name for t in (await client.list_tools()).tools),
        "resources": [str(r.uri) for r in (await client.list_resources()).resources],
        "list": await client.call_tool("list_tables", {"database": "concert_singer"}),
        "describe": await client.call_tool("describe_table", {"table": "stadium", "database": "concert_singer"}),
        "rows": await client.call_tool("run_sql", {"sql": "SELECT count(*) AS n FROM singer",
                                                   "database": "concert_singer"}),
        "write": await client.call_tool("run_sql", {"sql": "UPDATE singer SET Age = 0", "database": "concert_singer"}),
        "bad_db": await client.call_tool("list_tables", {"database": "nope"}),
        "ask": await client.call_tool("ask", {"question": "Which singers are over 30?", "database": "concert_singer"}),
        "after": await client.call_tool("run_sql", {"sql": "SELECT min(Age) FROM singer", "database": "concert_singer"}),
    }


def check_session(out: dict, concert: Path, before: str) -> None:
    assert out["tools"] == ["ask", "describe_table", "list_tables", "run_sql"]
    assert out["resources"] == ["quorumsql://concert_singer/mschema", "quorumsql://pets_1/mschema"]
    assert [t["name"] for t in out["list"].structured_content["databases"][0]["tables"]] == [
        "stadium", "singer", "concert", "singer_in_concert"]
    assert text(out["describe"]).startswith("【DB_ID】 concert_singer\n【Schema】\n# Table: stadium\n")
    assert "concert.Stadium_ID=stadium.Stadium_ID" in text(out["describe"])
    assert out["rows"].structured_content["columns"] == ["n"] and out["rows"].structured_content["rows"] == [[6]]
    assert out["write"].is_error
    assert text(out["write"]) == ("Error executing tool run_sql: refused: only read queries "
                                  "(SELECT / WITH ... SELECT) are allowed; got UPDATE")
    assert out["bad_db"].is_error
    assert text(out["bad_db"]) == ("Error executing tool list_tables: unknown database 'nope'; "
                                   "this server serves: concert_singer, pets_1")
    assert not out["ask"].is_error, text(out["ask"])
    assert out["ask"].structured_content["sql"] == SCRIPTED_SQL
    assert out["ask"].structured_content["rows"] == expected_rows(concert)
    assert out["after"].structured_content["rows"] == [[25]]  # the UPDATE never ran
    assert digest(concert) == before


@pytest.mark.e2e
def test_stdio_subprocess(sdk, tmp_path, writable_concert, stub):
    import anyio
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    before = digest(writable_concert)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "quorumsql.cli", "mcp", str(writable_concert), str(spider_db("pets_1"))],
        env=server_env(tmp_path, stub.url), cwd=str(tmp_path),
    )
    log_path = tmp_path / "server.log"

    async def go():
        with log_path.open("w") as log:
            async with Client(stdio_client(params, errlog=log)) as client:
                return await client_session_checks(client, writable_concert)

    out = anyio.run(go)
    check_session(out, writable_concert, before)
    assert stub.requests == 1  # `fast`: one greedy candidate that ran first time
    log = log_path.read_text()
    assert "QuorumSQL MCP server on stdio, serving concert_singer, pets_1" in log
    assert "Traceback" not in log


@pytest.mark.e2e
def test_streamable_http_subprocess(sdk, tmp_path, writable_concert, stub):
    import anyio
    from mcp import Client

    before = digest(writable_concert)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "quorumsql.cli", "mcp", str(writable_concert), str(spider_db("pets_1")),
             "--http", str(port)],
            env=server_env(tmp_path, stub.url), cwd=tmp_path, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)

        async def go():
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                return await client_session_checks(client, writable_concert)

        out = anyio.run(go)
        check_session(out, writable_concert, before)
        # a page from another origin (DNS rebinding) is turned away by the SDK's loopback protection
        import httpx

        refused = httpx.post(f"http://127.0.0.1:{port}/mcp", headers={"Host": "evil.example:80"}, json={})
        assert refused.status_code in (400, 403, 421)
        assert proc.poll() is None  # the server is still up after the errors
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    log = log_path.read_text()
    assert f"QuorumSQL MCP server at http://127.0.0.1:{port}/mcp (streamable HTTP), serving concert_singer, pets_1" in log
    assert "Traceback" not in log
