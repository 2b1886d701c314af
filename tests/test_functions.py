"""The function allowlist (issue 16): read-only built-ins pass, anything else is refused by name.

The check reads sqlglot's tokens; the MySQL and PostgreSQL guards read the text with their own
lexers. Every spelling below goes through all readers that apply to its dialect.
"""

from __future__ import annotations

import json

import pytest
import sqlglot

from quorumsql.db.functions import allowed_functions, function_calls, function_refusal
from quorumsql.db.mysql import _guard as mysql_guard
from quorumsql.db.mysql import _server_words
from quorumsql.db.postgres import _guard as pg_guard
from quorumsql.db.postgres import _server_tokens
from quorumsql.db.safety import check_read_only
from quorumsql.errors import UnsafeSQLError

GUARDS = {"mysql": mysql_guard, "postgres": pg_guard}


def _readers(dialect):
    """(name, callable(sql, allowed)) for every lock that reads SQL on ``dialect``."""
    out = [("check", lambda sql, allowed=(): check_read_only(sql, dialect, allowed))]
    if dialect in GUARDS:
        out.append(("guard", GUARDS[dialect]))
    return out


REFUSED = [
    # (dialect, sql, name the reason must contain)
    ("mysql", "SELECT LOAD_FILE('/etc/passwd')", "LOAD_FILE"),
    ("mysql", "SELECT `load_file`('/etc/passwd')", "load_file"),
    ("mysql", "SELECT `get_lock`('q', 100)", "get_lock"),
    ("mysql", "SELECT concert_singer.f_write()", "concert_singer.f_write"),
    ("mysql", "SELECT `concert_singer`.`f_write`()", "f_write"),
    ("mysql", "SELECT f_write() AS x FROM singer", "f_write"),
    ("mysql", "SELECT DISTINCT load_file('/etc/passwd')", "load_file"),
    ("postgres", "SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("postgres", "SELECT PG_READ_FILE('/etc/passwd')", "PG_READ_FILE"),
    ("postgres", 'SELECT "pg_read_file"(\'/etc/passwd\')', "pg_read_file"),
    ("postgres", "SELECT pg_catalog.pg_read_file('/etc/passwd')", "pg_catalog.pg_read_file"),
    ("postgres", 'SELECT pg_catalog."pg_read_file"(\'/etc/passwd\')', "pg_read_file"),
    ("postgres", "SELECT * FROM singer, dblink('dbname=x', 'DELETE FROM singer') AS (n int)", "dblink"),
    ("postgres", "SELECT dblink_exec('dbname=x', 'DELETE FROM singer')", "dblink_exec"),
    ("postgres", "SELECT pg_file_write('/tmp/x', 'y', false)", "pg_file_write"),
    ("postgres", "SELECT pg_terminate_backend(1)", "pg_terminate_backend"),
    ("postgres", "SELECT public.write_row()", "public.write_row"),
    ("postgres", "SELECT query_to_xml('SELECT 1', true, true, '')", "query_to_xml"),
    ("postgres", "SELECT set_config('default_transaction_read_only', 'off', false)", "set_config"),
    ("sqlite", "SELECT load_extension('/tmp/evil')", "load_extension"),
    ("sqlite", 'SELECT "readfile"(\'/etc/passwd\')', "readfile"),
    ("sqlite", "SELECT my_udf(1)", "my_udf"),
]


@pytest.mark.parametrize("dialect,sql,name", REFUSED)
def test_every_reader_refuses_calls_outside_the_allowlist(dialect, sql, name):
    for reader, read in _readers(dialect):
        with pytest.raises(UnsafeSQLError) as info:
            read(sql)
        assert f"{name}()" in str(info.value), (reader, str(info.value))


ACCEPTED = [
    ("sqlite", "SELECT count(*), max(Age), strftime('%Y', 'now'), iif(Age > 30, 'a', 'b') FROM singer"),
    ("sqlite", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT x FROM c"),
    ("sqlite", "SELECT key, value FROM json_each('[1, 2]')"),
    ("sqlite", "SELECT Name FROM singer WHERE Age IN (SELECT max(Age) FROM singer) AND EXISTS (SELECT 1)"),
    ("mysql", "SELECT CAST(Age AS DECIMAL(10, 2)), IF(Age > 30, 'a', 'b'), LEFT(Name, 1), REPLACE(Name, 'a', 'b') FROM singer"),
    ("mysql", "SELECT DATE_FORMAT(NOW(), '%Y'), GROUP_CONCAT(Name SEPARATOR ', '), JSON_EXTRACT('{\"a\": 1}', '$.a') FROM singer"),
    ("mysql", "SELECT Name, ROW_NUMBER() OVER (PARTITION BY Country ORDER BY Age) FROM singer"),
    ("mysql", "SELECT 'load_file(1)' AS s, `load_file` FROM t -- load_file('/etc/passwd')"),
    ("postgres", "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY Age) FROM singer"),
    ("postgres", "SELECT x::numeric(10, 2), CAST(y AS character varying(10)), to_char(now(), 'YYYY') FROM t"),
    ("postgres", "SELECT pg_catalog.lower('A'), string_agg(Name, ', '), jsonb_build_object('a', 1)"),
    ("postgres", "WITH s AS NOT MATERIALIZED (SELECT 1 AS a) SELECT a FROM s"),
    ("postgres", "SELECT $$ pg_read_file('/etc/passwd') $$, E'\\' pg_read_file(1) '"),
    ("postgres", "SELECT * FROM (VALUES (1, 2)) AS v(a, b)"),
]


@pytest.mark.parametrize("dialect,sql", ACCEPTED)
def test_read_queries_with_built_ins_pass_every_reader(dialect, sql):
    for reader, read in _readers(dialect):
        # the check returns the statement it accepted; a guard returns None when it lets it through
        assert read(sql) == (sql if reader == "check" else None), reader


def test_allowed_functions_permit_the_users_own_but_never_a_dangerous_built_in():
    for dialect in ("mysql", "postgres", "sqlite"):
        for _, read in _readers(dialect):
            with pytest.raises(UnsafeSQLError, match="my_ro_func"):
                read("SELECT my_ro_func(1)")
            read("SELECT my_ro_func(1)", ["My_Ro_Func"])
    for _, read in _readers("postgres"):
        read("SELECT reports.month_total(1)", ["reports.month_total"])
        with pytest.raises(UnsafeSQLError, match="month_total"):
            read("SELECT reports.month_total(1)", ["month_total"])  # qualified needs the qualified name
        with pytest.raises(UnsafeSQLError, match="pg_read_file"):
            read("SELECT pg_read_file('/etc/passwd')", ["pg_read_file"])
    assert "load_file" not in allowed_functions("mariadb", ["load_file"])
    assert function_refusal("lower", "postgresql") is None


def test_what_counts_as_a_call():
    tokens = _server_tokens(
        "WITH c(x) AS (SELECT 1) SELECT f(a), g.h(b), CAST(x AS varchar(3)), y::numeric(4) "
        "FROM c AS t(k) WHERE a IN (1) AND EXISTS (SELECT 1)"
    )
    assert function_calls(tokens) == [(None, "f"), ("g", "h"), (None, "CAST")]


@pytest.mark.parametrize(
    "sql,dialect,match",
    [
        ("SELECT 1 --\u00a0 FROM (SELECT 1 AS `\u00a0`) t INTO OUTFILE '/tmp/x.txt'", "mysql", "U\\+00A0"),
        ("SELECT 1 --\u3000, LOAD_FILE('/etc/passwd') AS f", "mysql", "U\\+3000"),
        ("SELECT 1 --\u2028, LOAD_FILE('/etc/passwd') AS f", "mysql", "U\\+2028"),
        ("SELECT Name\u00a0FROM singer", "sqlite", "U\\+00A0"),
        ("SELECT Name\u3000FROM singer", "postgres", "U\\+3000"),
        ('SELECT U&"pg\\005fread\\005ffile"(\'/etc/passwd\')', "postgres", "U&"),
        ("SELECT 1\x00", "sqlite", "NUL"),
    ],
)
def test_spellings_the_server_reads_differently_are_refused(sql, dialect, match):
    with pytest.raises(UnsafeSQLError, match=match):
        check_read_only(sql, dialect)


def test_the_mysql_guard_reads_non_ascii_spaces_as_the_server_does():
    for space in ("\u00a0", "\u3000", "\u2028"):
        with pytest.raises(UnsafeSQLError, match="ambiguous"):
            mysql_guard(f"SELECT 1 --{space} AS a, LOAD_FILE('/etc/passwd') AS f FROM (SELECT 1 AS `{space}`) t")
    # a name character to the server, so the "FROM" here is part of a name
    assert _server_words("SELECT a\u00a0FROM t")[1] == ("word", "a\u00a0FROM")


def test_the_postgres_lexer_reads_strings_and_comments_as_the_server_does():
    assert _server_tokens("SELECT E'\\'', 'a''b', $q$ x $q$ /* a /* nested */ f(1) */ -- g(2)\n, 1") == [
        ("word", "SELECT"), ("string", "\\'"), ("symbol", ","), ("string", "a'b"), ("symbol", ","),
        ("string", " x "), ("symbol", ","), ("number", "1"),
    ]


def test_no_gold_query_of_spider_or_bird_is_refused(spider_data, bird_data):
    """Every gold query of the shared Spider (dev and train) and BIRD mini-dev sets passes the
    check on SQLite: the allowlist holds what Text-to-SQL answers call."""
    spider = spider_data
    bird = bird_data.parent / "mini_dev_sqlite.json"
    queries = [line.split("\t")[0] for name in ("dev_gold.sql", "train_gold.sql")
               for line in (spider / name).read_text().splitlines() if line.strip()]
    queries += [item["SQL"] for item in json.loads(bird.read_text())]
    assert len(queries) > 9000
    refused = []
    for sql in queries:
        try:
            check_read_only(sql, "sqlite")
        except UnsafeSQLError as exc:
            refused.append((sql, str(exc)))
    assert refused == []


def test_spider_dev_gold_in_mysql_and_postgres_spelling_passes_the_check_and_the_guards(spider_data):
    """The dev gold queries transpiled by sqlglot: none refused, except calls of SQLite's own
    date functions, which do not exist on the servers."""
    spider = spider_data
    queries = [line.split("\t")[0] for line in (spider / "dev_gold.sql").read_text().splitlines() if line.strip()]
    for dialect in ("mysql", "postgres"):
        refused = []
        for sql in queries:
            text = sqlglot.transpile(sql, read="sqlite", write=dialect)[0]
            for _, read in _readers(dialect):
                try:
                    read(text)
                except UnsafeSQLError as exc:
                    refused.append(str(exc))
        assert all("JULIANDAY()" in r or "DATETIME()" in r for r in refused), refused[:3]
