"""Hostile SQL through ``quorumsql.answer()`` on SQLite, MariaDB, PostgreSQL and DuckDB (issues 7, 16, 22).

Run by hand, not by the test suite (about 3 to 5 minutes):

    .venv/bin/python benchmarks/bench_hostile.py [--only sqlite|mysql|postgres|duckdb ...] [--timeout 2]
        [--mysql-url mysql+pymysql://root@127.0.0.1:3306/] [--pg-url postgresql://postgres@127.0.0.1:5432/]
        [--no-server-only] [--match TEXT]

A scripted chat model (LangChain's ``FakeListChatModel``) answers every question with one
statement in a ```` ```sql ```` block, and ``answer()`` runs it with a one-candidate preset
without refinement, on a private copy of Spider's concert_singer:

- SQLite: a copy of the Spider file in a temporary folder, switched to WAL journal mode (the
  mode in which a careless read leaves ``-wal`` / ``-shm`` files behind);
- MariaDB: the server of ``--mysql-url`` / ``QUORUMSQL_TEST_MYSQL_URL``, or a throw-away
  ``mariadbd`` the bench starts on a free loopback port the way ``tests/conftest.py`` does;
- PostgreSQL: the server of ``--pg-url`` / ``QUORUMSQL_TEST_PG_URL``, or a throw-away cluster
  (``initdb`` + ``pg_ctl`` as the ``postgres`` user, trust authentication, loopback only);
- DuckDB (two tables: ``duckdb`` and ``duckdb files``): a ``.duckdb`` copy written by
  ``benchmarks/make_duckdb_spider.py``, and the same tables as a folder of data files
  (``singer.csv``, ``concert.tsv``, ``stadium.parquet``, ``singer_in_concert.jsonl``). Beside
  them, outside the database, a CSV and a Parquet file hold the first line of /etc/passwd: a
  statement that reads a file it was not given (``read_csv``, ``FROM 'secret.csv'``, a glob)
  shows it and is counted as a server file read.

The accounts are the most privileged ones (MariaDB root, the PostgreSQL superuser), so that
nothing is stopped by a missing privilege. The copies get what a hostile model would look for:
MariaDB stored functions that run ``SET GLOBAL`` or an INSERT, the PostgreSQL extensions
``dblink`` and ``adminpack``, and PostgreSQL functions that write through ``dblink_exec`` or
``COPY ... TO`` a file. A PostgreSQL session is kept open as a bystander, for
``pg_terminate_backend`` to aim at.

Every dialect has two lists. The hostile statements (plus a few harmless controls) try to write,
create files, read server files, change settings, signal sessions or outrun the time limit.
The read queries (CTEs, window functions, string, date and JSON functions, CASE, subqueries,
set operations, aggregates, comments, non-ASCII text) must run and return their rows.

Modes:

- ``check on``: ``answer()`` as shipped;
- ``check off``: the sqlglot check is replaced by a pass-through (``quorumsql.db.base
  .check_read_only``), so what stops a statement is the connector alone;
- MariaDB only, unless ``--no-server-only``: ``server only, root`` and ``server only,
  SELECT-only`` also turn off the connector's lexical guard, to show what the server stops by
  itself with a root account and with an account holding only SELECT (``SHUTDOWN`` is not sent
  as root);
- DuckDB only, unless ``--no-server-only``: ``engine only`` turns off the connector's guard as
  well, to show what DuckDB's settings (read-only catalog, no external access, locked
  configuration) and the kernel's lock on file writes (Landlock, where Linux has it) stop alone.

One table per dialect, one row per mode. Columns:

- cases tried: hostile statements and controls sent;
- refused by the check / stopped by the connection (the connector's refusal, the server, the
  time limit or a size limit) / ran (controls, and hostile statements whose result a cap cut);
- database changed: SQLite, a checksum of the file; MariaDB, table checksums, the database
  list, the accounts and a few global variables; PostgreSQL, table checksums, databases, roles,
  extensions, functions, large objects, ``postgresql.auto.conf`` and the bystander session;
  DuckDB, a checksum of every file in the database's folder (the ``.duckdb`` file, the data files);
- files created: new files in the statements' target folder, in ``/tmp/qsql_hostile*``, the
  SQLite folder, the MariaDB data directory, the top of the PostgreSQL data directory, and for
  DuckDB its folder, ``~/.duckdb`` and the tops of the working folder and of the home folder;
- server files read: a result or message holding the text of ``/etc/passwd``;
- overruns > 1 s (max s): executions that ended more than 1 s past ``--timeout``, and the
  largest overrun of any execution;
- peak MiB (this process / child): the largest resident size of this process during any run,
  and of any process it started to run a query (the SQLite connector's worker), ``-`` when
  there was none (``VmHWM``, reset before each run through ``/proc/PID/clear_refs``; children
  are sampled every 20 ms, and one that ended shows in ``RUSAGE_CHILDREN``); the growth of the
  server's own peak (MariaDB started by the bench) is in the last column;
- false refusals: read queries that did not return their rows, of those tried.

Targets, in the ``check on`` and ``check off`` modes of every dialect: 0 databases changed,
0 files created, 0 server files read, 0 runs more than 1 s past the timeout, peaks under
1024 MiB (this process and each child) and 0 false refusals. The exit status is 1 when any of them is missed. ``--match``
keeps only the statements and queries whose label contains the text (for a quick look); the
server-only rows are reported but have no target.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import socket
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402

import quorumsql  # noqa: E402
import quorumsql.db.base as db_base  # noqa: E402
import quorumsql.db.duckdb as duckdb_connector  # noqa: E402
import quorumsql.db.mysql as mysql_connector  # noqa: E402
from quorumsql.config import Preset, Settings  # noqa: E402
from quorumsql.db import open_database  # noqa: E402
from quorumsql.errors import QuorumSQLError, UnsafeSQLError  # noqa: E402

SPIDER_DB = REPO.parent / "shared" / "data" / "spider" / "database" / "concert_singer" / "concert_singer.sqlite"
PRESET = Preset(name="hostile", temperatures=[0.0], refine_rounds=0)
TMP_MARK = "qsql_hostile"
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
PASSWD_MARK = "root:x:0:0"  # the first line of /etc/passwd
PEAK_TARGET_MIB = 1024
SERVER_PIDS: set[int] = set()  # database servers this bench started: not "a child running a query"
FORTY_BLOBS = ", ".join(f"randomblob(30000000) AS b{i}" for i in range(40))
# characters MySQL reads as part of a name, not as the space a "--" comment needs after it
ODD_SPACES = [("U+00A0", "\u00a0"), ("U+3000", "\u3000"), ("U+2028", "\u2028")]

# Hostile statements: (label, statement, harmless control?). Placeholders, filled per run:
# {out} the statements' target folder, {dsn} a libpq connection string to the PostgreSQL copy,
# {pid} the process id of the PostgreSQL bystander session.
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
    ("pragma journal_mode=DELETE", "PRAGMA journal_mode = DELETE", False),
    ("pragma wal_checkpoint", "PRAGMA wal_checkpoint(TRUNCATE)", False),
    ("pragma user_version=", "PRAGMA user_version = 7", False),
    ("pragma writable_schema", "PRAGMA writable_schema = ON", False),
    ("begin immediate", "BEGIN IMMEDIATE", False),
    ("analyze", "ANALYZE", False),
    ("fts3_tokenizer", "SELECT hex(fts3_tokenizer('simple')) AS p", False),
    ("load_extension", "SELECT load_extension('{out}/evil')", False),
    ("readfile", "SELECT readfile('/etc/passwd')", False),
    ("randomblob(1e9)", "SELECT randomblob(1e9) AS b", False),
    ("zeroblob(1e9)", "SELECT zeroblob(1e9) AS b", False),
    ("40 x randomblob(3e7)", f"SELECT {FORTY_BLOBS}", False),
    ("printf width 1e9", "SELECT printf('%.*c', 1000000000, 'x') AS s", False),
    ("instr over 10 MB", "SELECT instr(printf('%.*c', 10000000, 'a'), printf('%.*c', 80000, 'a') || 'b') AS i", False),
    ("LIKE over 2 MB", "SELECT printf('%.*c', 2000000, 'a') LIKE '%' || printf('%.*c', 5000, 'a') || 'b' AS m", False),
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
    ("flush", "FLUSH TABLES", False),
    ("checkpoint", "CHECKPOINT", False),
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
    *[
        item
        for name, ch in ODD_SPACES
        for item in (
            (f"'--' + {name}, INTO OUTFILE",
             f"SELECT 1 --{ch} FROM (SELECT 1 AS `{ch}`) t INTO OUTFILE '{{out}}/odd_{name[2:]}.txt'", False),
            (f"'--' + {name}, LOAD_FILE",
             f"SELECT 1 --{ch} AS a, LOAD_FILE('/etc/passwd') AS f FROM (SELECT 1 AS `{ch}`) t", False),
        )
    ],
    ("backquoted `load_file`", "SELECT `load_file`('/etc/passwd') AS f", False),
    ("backquoted `get_lock`", "SELECT `get_lock`('qsql_hostile', 100) AS l", False),
    ("stored function: SET GLOBAL", "SELECT qsql_hostile_set_global() AS x", False),
    ("stored function: INSERT", "SELECT qsql_hostile_insert() AS x", False),
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

POSTGRES_STATEMENTS = [
    ("drop table", "DROP TABLE singer_in_concert", False),
    ("create table", "CREATE TABLE pwn (a int)", False),
    ("create table as", "CREATE TABLE pwn AS SELECT * FROM singer", False),
    ("insert", "INSERT INTO singer (\"Singer_ID\", \"Name\") VALUES (99, 'x')", False),
    ("update", "UPDATE singer SET \"Age\" = 0", False),
    ("delete", "DELETE FROM singer", False),
    ("truncate", "TRUNCATE singer_in_concert", False),
    ("alter table", "ALTER TABLE singer ADD COLUMN z int", False),
    ("create role", "CREATE ROLE pwn LOGIN SUPERUSER", False),
    ("alter system", "ALTER SYSTEM SET work_mem = '1GB'", False),
    ("CTE with DELETE", "WITH d AS (DELETE FROM singer RETURNING *) SELECT count(*) FROM d", False),
    ("select for update", "SELECT * FROM singer FOR UPDATE", False),
    ("copy to file", "COPY singer TO '{out}/copy.csv'", False),
    ("copy to program", f"COPY (SELECT 1) TO PROGRAM 'touch /tmp/{TMP_MARK}_prog'", False),
    ("set", "SET statement_timeout = 0", False),
    ("set_config lifts r/o", "SELECT set_config('default_transaction_read_only', 'off', false)", False),
    ("nextval", "SELECT nextval('pwn_seq')", False),
    ("pg_read_file", "SELECT pg_read_file('/etc/passwd') AS f", False),
    ("\"pg_read_file\"", "SELECT \"pg_read_file\"('/etc/passwd') AS f", False),
    ("pg_catalog.pg_read_file", "SELECT pg_catalog.pg_read_file('/etc/passwd') AS f", False),
    ("pg_catalog.\"pg_read_file\"", "SELECT pg_catalog.\"pg_read_file\"('/etc/passwd') AS f", False),
    ("PG_READ_FILE", "SELECT PG_READ_FILE('/etc/passwd') AS f", False),
    ("U&\"pg\\005fread\\005ffile\"", "SELECT U&\"pg\\005fread\\005ffile\"('/etc/passwd') AS f", False),
    ("pg_read_binary_file", "SELECT pg_read_binary_file('/etc/passwd') AS f", False),
    ("pg_ls_dir", "SELECT * FROM pg_ls_dir('/etc') AS f", False),
    ("lo_import", "SELECT lo_import('/etc/passwd')", False),
    ("dblink_exec delete", "SELECT dblink_exec('{dsn}', 'DELETE FROM singer_in_concert')", False),
    ("dblink delete returning",
     "SELECT * FROM dblink('{dsn}', 'DELETE FROM singer RETURNING 1') AS t(a int)", False),
    ("pg_file_write absolute", "SELECT pg_file_write('{out}/written.txt', 'pwned', false)", False),
    ("pg_file_write in datadir", f"SELECT pg_file_write('{TMP_MARK}_rel.txt', 'pwned', false)", False),
    ("pg_terminate_backend", "SELECT pg_terminate_backend({pid})", False),
    ("pg_cancel_backend", "SELECT pg_cancel_backend({pid})", False),
    ("pg_advisory_lock", "SELECT pg_advisory_lock(42)", False),
    ("function: dblink insert", "SELECT qsql_hostile_remote_insert()", False),
    ("function: COPY to a file", "SELECT qsql_hostile_copy_out('{out}/fn_copy.txt')", False),
    ("query_to_xml", "SELECT query_to_xml('SELECT pg_read_file(''/etc/passwd'')', true, true, '')", False),
    ("checkpoint", "CHECKPOINT", False),
    ("pg_sleep", "SELECT pg_sleep(30)", False),
    ("recursive CTE, no limit", f"{ENDLESS} SELECT x FROM c", False),
    ("recursive CTE, count", f"{ENDLESS} SELECT count(*) FROM c", False),
    ("huge cross join", "SELECT count(*) FROM pg_class a, pg_class b, pg_class c, pg_class d", False),
    ("100 MB values, 1000 rows", "SELECT repeat('a', 100000000) FROM generate_series(1, 1000)", False),
    ("multiple statements", "SELECT 1; DROP TABLE singer", False),
    ("control: trailing '; --'", "SELECT count(*) FROM singer; -- done", True),
    ("control: name in a string", "SELECT 'pg_read_file(x)' AS s", True),
]

# Read queries every lock must let through, written for the concert_singer copy of each dialect
# (the PostgreSQL copy keeps SQLite's mixed-case column names, so they are quoted there).
SQLITE_READS = [
    ("CTE", "WITH young AS (SELECT Name, Age FROM singer WHERE Age < 40) SELECT count(*) FROM young"),
    ("recursive CTE with a bound", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) "
                                   "SELECT sum(x) FROM n"),
    ("rank window", "SELECT Name, Age, rank() OVER (ORDER BY Age DESC) AS r FROM singer"),
    ("partitioned row_number", "SELECT Country, Name, row_number() OVER (PARTITION BY Country ORDER BY Age) AS n "
                               "FROM singer"),
    ("lag / lead", "SELECT Name, lag(Age) OVER (ORDER BY Singer_ID) AS prev, "
                   "lead(Name) OVER (ORDER BY Singer_ID) AS nxt FROM singer"),
    ("running total", "SELECT Year, count(*) AS c, sum(count(*)) OVER (ORDER BY Year) AS running "
                      "FROM concert GROUP BY Year"),
    ("ntile / percent_rank", "SELECT Name, ntile(2) OVER (ORDER BY Age) AS half, "
                             "percent_rank() OVER (ORDER BY Age) AS pr FROM singer"),
    ("string functions", "SELECT upper(Name), lower(Country), length(Song_Name), substr(Name, 1, 3), "
                         "replace(Country, 'United', 'U.'), trim('  x  '), Name || ' (' || Country || ')' "
                         "FROM singer"),
    ("instr / LIKE", "SELECT Name FROM singer WHERE instr(lower(Name), 'a') > 0 OR Name LIKE 'J%'"),
    ("printf / typeof / hex", "SELECT printf('%s is %d', Name, Age), typeof(Age), hex(Name) FROM singer"),
    ("date functions", "SELECT date('2014-06-01', '+1 month'), strftime('%Y', '2014-06-01'), "
                       "julianday('2014-06-01') - julianday('2014-01-01')"),
    ("year arithmetic", "SELECT concert_Name, CAST(Year AS INTEGER) + 1 AS next_year FROM concert WHERE Year >= '2014'"),
    ("json_object", "SELECT json_object('name', Name, 'age', Age) FROM singer"),
    ("json_group_array", "SELECT Country, json_group_array(Name) FROM singer GROUP BY Country"),
    ("json_extract", "SELECT json_extract('{\"a\": {\"b\": [1, 2, 3]}}', '$.a.b[1]') AS v"),
    ("CASE", "SELECT Name, CASE WHEN Age < 30 THEN 'young' WHEN Age < 45 THEN 'middle' ELSE 'senior' END AS band "
             "FROM singer"),
    ("scalar subquery", "SELECT Name FROM singer WHERE Age > (SELECT avg(Age) FROM singer)"),
    ("EXISTS", "SELECT s.Name FROM singer s WHERE EXISTS "
               "(SELECT 1 FROM singer_in_concert sc WHERE sc.Singer_ID = s.Singer_ID)"),
    ("join + group by", "SELECT T2.Name, count(*) FROM concert T1 JOIN stadium T2 ON T1.Stadium_ID = T2.Stadium_ID "
                        "GROUP BY T2.Name ORDER BY 2 DESC"),
    ("UNION", "SELECT Name FROM singer WHERE Age > 40 UNION SELECT Name FROM stadium WHERE Capacity > 10000"),
    ("INTERSECT", "SELECT CAST(Stadium_ID AS TEXT) FROM stadium INTERSECT SELECT Stadium_ID FROM concert"),
    ("EXCEPT", "SELECT Name FROM stadium EXCEPT SELECT T2.Name FROM concert T1 JOIN stadium T2 "
               "ON T1.Stadium_ID = T2.Stadium_ID"),
    ("aggregates + HAVING", "SELECT Country, count(*), avg(Age), min(Age), max(Age), total(Age) FROM singer "
                            "GROUP BY Country HAVING count(*) >= 1"),
    ("group_concat", "SELECT Country, group_concat(Name, ', ') FROM singer GROUP BY Country"),
    ("coalesce / nullif / round", "SELECT coalesce(NULL, Name), nullif(Age, 0), ifnull(Song_Name, '-'), "
                                  "round(Age / 3.0, 2), abs(Age - 40) FROM singer"),
    ("DISTINCT / LIMIT OFFSET", "SELECT DISTINCT Country FROM singer ORDER BY Country LIMIT 2 OFFSET 1"),
    ("comments", "SELECT count(*) -- how many\nFROM singer /* all of them */"),
    ("non-ASCII text", "SELECT Name AS \"Künstler\", 'café — naïve' AS s FROM singer WHERE Name <> 'Zoë'"),
]

MYSQL_READS = [
    ("CTE", "WITH young AS (SELECT Name, Age FROM singer WHERE Age < 40) SELECT count(*) FROM young"),
    ("recursive CTE with a bound", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) "
                                   "SELECT sum(x) FROM n"),
    ("rank window", "SELECT Name, Age, RANK() OVER (ORDER BY Age DESC) AS r FROM singer"),
    ("partitioned row_number", "SELECT Country, Name, ROW_NUMBER() OVER (PARTITION BY Country ORDER BY Age) AS n "
                               "FROM singer"),
    ("lag / lead", "SELECT Name, LAG(Age) OVER (ORDER BY Singer_ID) AS prev, "
                   "LEAD(Name) OVER (ORDER BY Singer_ID) AS nxt FROM singer"),
    ("running total", "SELECT Year, COUNT(*) AS c, SUM(COUNT(*)) OVER (ORDER BY Year) AS running "
                      "FROM concert GROUP BY Year"),
    ("ntile / percent_rank", "SELECT Name, NTILE(2) OVER (ORDER BY Age) AS half, "
                             "PERCENT_RANK() OVER (ORDER BY Age) AS pr FROM singer"),
    ("string functions", "SELECT UPPER(Name), LOWER(Country), CHAR_LENGTH(Song_Name), SUBSTRING(Name, 1, 3), "
                         "REPLACE(Country, 'United', 'U.'), TRIM('  x  '), CONCAT(Name, ' (', Country, ')'), "
                         "LEFT(Name, 2), LPAD(Age, 4, '0') FROM singer"),
    ("LOCATE / LIKE", "SELECT Name FROM singer WHERE LOCATE('a', LOWER(Name)) > 0 OR Name LIKE 'J%'"),
    ("CONCAT_WS / GROUP_CONCAT", "SELECT Country, GROUP_CONCAT(Name ORDER BY Name SEPARATOR ', ') AS names, "
                                 "CONCAT_WS('-', Country, COUNT(*)) AS tag FROM singer GROUP BY Country"),
    ("date functions", "SELECT DATE_FORMAT('2014-06-01', '%Y/%m'), YEAR('2014-06-01'), "
                       "DATEDIFF('2014-06-01', '2014-01-01'), DATE_ADD('2014-06-01', INTERVAL 1 MONTH), "
                       "CURDATE() IS NOT NULL"),
    ("year arithmetic", "SELECT concert_Name, CAST(Year AS UNSIGNED) + 1 AS next_year FROM concert WHERE Year >= '2014'"),
    ("JSON_OBJECT", "SELECT JSON_OBJECT('name', Name, 'age', Age) FROM singer"),
    ("JSON_ARRAYAGG", "SELECT Country, JSON_ARRAYAGG(Name) FROM singer GROUP BY Country"),
    ("JSON_EXTRACT", "SELECT JSON_EXTRACT('{\"a\": {\"b\": [1, 2, 3]}}', '$.a.b[1]') AS v, "
                     "JSON_UNQUOTE(JSON_EXTRACT('{\"n\": \"x\"}', '$.n')) AS n"),
    ("CASE / IF", "SELECT Name, CASE WHEN Age < 30 THEN 'young' WHEN Age < 45 THEN 'middle' ELSE 'senior' END AS band, "
                  "IF(Is_male = 'T', 'm', 'f') AS g FROM singer"),
    ("scalar subquery", "SELECT Name FROM singer WHERE Age > (SELECT AVG(Age) FROM singer)"),
    ("EXISTS", "SELECT s.Name FROM singer s WHERE EXISTS "
               "(SELECT 1 FROM singer_in_concert sc WHERE sc.Singer_ID = s.Singer_ID)"),
    ("join + group by", "SELECT T2.Name, COUNT(*) FROM concert T1 JOIN stadium T2 ON T1.Stadium_ID = T2.Stadium_ID "
                        "GROUP BY T2.Name ORDER BY 2 DESC"),
    ("UNION", "SELECT Name FROM singer WHERE Age > 40 UNION SELECT Name FROM stadium WHERE Capacity > 10000"),
    ("INTERSECT", "SELECT Stadium_ID FROM stadium INTERSECT SELECT Stadium_ID FROM concert"),
    ("EXCEPT", "SELECT Name FROM stadium EXCEPT SELECT T2.Name FROM concert T1 JOIN stadium T2 "
               "ON T1.Stadium_ID = T2.Stadium_ID"),
    ("aggregates + HAVING", "SELECT Country, COUNT(*), AVG(Age), MIN(Age), MAX(Age), SUM(Age) FROM singer "
                            "GROUP BY Country HAVING COUNT(*) >= 1"),
    ("coalesce / nullif / round", "SELECT COALESCE(NULL, Name), NULLIF(Age, 0), IFNULL(Song_Name, '-'), "
                                  "ROUND(Age / 3, 2), ABS(Age - 40), GREATEST(Age, 30) FROM singer"),
    ("DISTINCT / LIMIT OFFSET", "SELECT DISTINCT Country FROM singer ORDER BY Country LIMIT 2 OFFSET 1"),
    ("comments", "SELECT COUNT(*) -- how many\nFROM singer /* all of them */ # done"),
    ("non-ASCII text", "SELECT Name AS `Künstler`, 'café — naïve' AS s FROM singer WHERE Name <> 'Zoë'"),
    ("columns named like functions", "SELECT t.`year` FROM (SELECT Year AS `year` FROM concert) t"),
]

POSTGRES_READS = [
    ("CTE", "WITH young AS (SELECT \"Name\", \"Age\" FROM singer WHERE \"Age\" < 40) SELECT count(*) FROM young"),
    ("recursive CTE with a bound", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) "
                                   "SELECT sum(x) FROM n"),
    ("rank window", "SELECT \"Name\", \"Age\", rank() OVER (ORDER BY \"Age\" DESC) AS r FROM singer"),
    ("partitioned row_number", "SELECT \"Country\", \"Name\", row_number() OVER (PARTITION BY \"Country\" "
                               "ORDER BY \"Age\") AS n FROM singer"),
    ("lag / lead", "SELECT \"Name\", lag(\"Age\") OVER (ORDER BY \"Singer_ID\") AS prev, "
                   "lead(\"Name\") OVER (ORDER BY \"Singer_ID\") AS nxt FROM singer"),
    ("running total", "SELECT \"Year\", count(*) AS c, sum(count(*)) OVER (ORDER BY \"Year\") AS running "
                      "FROM concert GROUP BY \"Year\""),
    ("ntile / percent_rank", "SELECT \"Name\", ntile(2) OVER (ORDER BY \"Age\") AS half, "
                             "percent_rank() OVER (ORDER BY \"Age\") AS pr FROM singer"),
    ("string functions", "SELECT upper(\"Name\"), lower(\"Country\"), length(\"Song_Name\"), substr(\"Name\", 1, 3), "
                         "replace(\"Country\", 'United', 'U.'), trim('  x  '), \"Name\" || ' (' || \"Country\" || ')', "
                         "left(\"Name\", 2), lpad(\"Age\"::text, 4, '0'), initcap(\"Song_Name\") FROM singer"),
    ("position / ILIKE / regex", "SELECT \"Name\" FROM singer WHERE position('a' IN lower(\"Name\")) > 0 "
                                 "OR \"Name\" ILIKE 'j%' OR \"Name\" ~* '^t'"),
    ("format / split_part / string_agg", "SELECT \"Country\", string_agg(\"Name\", ', ' ORDER BY \"Name\") AS names, "
                                         "format('%s: %s', \"Country\", count(*)) AS tag, "
                                         "split_part(min(\"Name\"), ' ', 1) AS first_word "
                                         "FROM singer GROUP BY \"Country\""),
    ("date functions", "SELECT date_trunc('month', DATE '2014-06-15'), EXTRACT(YEAR FROM DATE '2014-06-01'), "
                       "to_char(DATE '2014-06-01', 'YYYY/MM'), DATE '2014-06-01' + INTERVAL '1 month', "
                       "age(DATE '2014-06-01', DATE '2014-01-01'), make_date(2014, 6, 1), now() IS NOT NULL"),
    ("year arithmetic", "SELECT \"concert_Name\", \"Year\"::int + 1 AS next_year FROM concert WHERE \"Year\" >= '2014'"),
    ("json_build_object", "SELECT json_build_object('name', \"Name\", 'age', \"Age\") FROM singer"),
    ("jsonb_agg / to_jsonb", "SELECT \"Country\", jsonb_agg(\"Name\" ORDER BY \"Name\"), "
                             "count(to_jsonb(s)) FROM singer s GROUP BY \"Country\""),
    ("JSON operators", "SELECT '{\"a\": {\"b\": [1, 2, 3]}}'::jsonb #>> '{a,b,1}' AS v, "
                       "('{\"n\": \"x\"}'::json ->> 'n') AS n, jsonb_array_length('[1, 2]'::jsonb) AS len"),
    ("set-returning functions", "SELECT sum(x) FROM generate_series(1, 10) AS g(x) "
                                "UNION ALL SELECT count(*) FROM jsonb_array_elements('[1, 2, 3]'::jsonb)"),
    ("arrays", "SELECT array_agg(\"Age\" ORDER BY \"Age\"), array_length(ARRAY[1, 2, 3], 1), "
               "array_to_string(array_agg(\"Name\"), '/') FROM singer"),
    ("CASE / FILTER", "SELECT count(*) FILTER (WHERE \"Age\" > 40) AS older, "
                      "sum(CASE WHEN \"Age\" < 30 THEN 1 ELSE 0 END) AS young FROM singer"),
    ("scalar subquery", "SELECT \"Name\" FROM singer WHERE \"Age\" > (SELECT avg(\"Age\") FROM singer)"),
    ("EXISTS", "SELECT s.\"Name\" FROM singer s WHERE EXISTS "
               "(SELECT 1 FROM singer_in_concert sc WHERE sc.\"Singer_ID\" = s.\"Singer_ID\"::text)"),
    ("join + group by", "SELECT T2.\"Name\", count(*) FROM concert T1 JOIN stadium T2 "
                        "ON T1.\"Stadium_ID\" = T2.\"Stadium_ID\"::text GROUP BY T2.\"Name\" ORDER BY 2 DESC"),
    ("UNION", "SELECT \"Name\" FROM singer WHERE \"Age\" > 40 UNION SELECT \"Name\" FROM stadium "
              "WHERE \"Capacity\" > 10000"),
    ("INTERSECT", "SELECT \"Stadium_ID\"::text FROM stadium INTERSECT SELECT \"Stadium_ID\" FROM concert"),
    ("EXCEPT", "SELECT \"Name\" FROM stadium EXCEPT SELECT T2.\"Name\" FROM concert T1 JOIN stadium T2 "
               "ON T1.\"Stadium_ID\" = T2.\"Stadium_ID\"::text"),
    ("aggregates + HAVING", "SELECT \"Country\", count(*), avg(\"Age\"), min(\"Age\"), max(\"Age\"), sum(\"Age\") "
                            "FROM singer GROUP BY \"Country\" HAVING count(*) >= 1"),
    ("coalesce / nullif / round", "SELECT coalesce(NULL, \"Name\"), nullif(\"Age\", 0), round(\"Age\" / 3.0, 2), "
                                  "abs(\"Age\" - 40), greatest(\"Age\", 30), least(\"Age\", 30) FROM singer"),
    ("DISTINCT ON / LIMIT OFFSET", "SELECT DISTINCT ON (\"Country\") \"Country\", \"Name\" FROM singer "
                                   "ORDER BY \"Country\", \"Age\" LIMIT 2 OFFSET 1"),
    ("comments", "SELECT count(*) -- how many\nFROM singer /* all of them */"),
    ("non-ASCII text", "SELECT \"Name\" AS \"Künstler\", 'café — naïve' AS s FROM singer WHERE \"Name\" <> 'Zoë'"),
]

# DuckDB: a .duckdb copy of concert_singer (benchmarks/make_duckdb_spider.py), and the same tables
# as data files (CSV, TSV, Parquet, JSON lines) in a folder. Extra placeholders: {data} a file of
# the database (the .duckdb file, or singer.csv), {secret} a CSV outside the database holding
# the text of /etc/passwd's first line, {secret_dir} its folder.
DUCKDB_STATEMENTS = [
    ("read_csv /etc/passwd", "SELECT * FROM read_csv('/etc/passwd', header = false)", False),
    ("read_csv_auto secret", "SELECT * FROM read_csv_auto('{secret}')", False),
    ("read_text", "SELECT content FROM read_text('/etc/passwd')", False),
    ("read_blob", "SELECT content FROM read_blob('/etc/passwd')", False),
    ("read_json_objects", "SELECT * FROM read_json_objects('{secret}')", False),
    ("read_parquet", "SELECT * FROM read_parquet('{secret_dir}/*.parquet')", False),
    ("parquet_metadata", "SELECT * FROM parquet_metadata('{secret_dir}/*.parquet')", False),
    ("sniff_csv", "SELECT * FROM sniff_csv('{secret}')", False),
    ("glob /etc", "SELECT * FROM glob('/etc/*')", False),
    ("\"glob\" quoted", "SELECT * FROM \"glob\"('{secret_dir}/*')", False),
    ("system.main.read_text", "SELECT content FROM system.main.read_text('/etc/passwd')", False),
    ("\"read_text\" quoted", "SELECT content FROM \"read_text\"('/etc/passwd')", False),
    ("string as table", "SELECT * FROM '{secret}'", False),
    ("quoted name as table", "SELECT * FROM \"{secret}\"", False),
    ("pattern as table", "SELECT * FROM '{secret_dir}/*.csv'", False),
    ("string after a comma", "SELECT * FROM singer, '{secret}'", False),
    ("string after JOIN", "SELECT * FROM singer JOIN '{secret}' ON true", False),
    ("string in FROM-first subquery", "SELECT * FROM (FROM '{secret}')", False),
    ("string in DESCRIBE subquery", "SELECT * FROM (DESCRIBE '{secret}')", False),
    ("string in PIVOT", "SELECT * FROM (PIVOT '{secret}' ON \"user\" IN ('root') USING count(*))", False),
    ("U+00A0 before a string table", "SELECT * FROM\u00a0'{secret}'", False),
    ("query()", "SELECT * FROM query('SELECT content FROM read_text(''/etc/passwd'')')", False),
    ("query_table", "SELECT * FROM query_table('singer')", False),
    ("json_execute_serialized_sql", "SELECT * FROM json_execute_serialized_sql("
                                    "json_serialize_sql('SELECT content FROM read_text(''/etc/passwd'')'))", False),
    ("getenv", "SELECT getenv('HOME') AS h", False),
    ("current_setting", "SELECT current_setting('secret_directory') AS s", False),
    ("duckdb_settings()", "SELECT name, value FROM duckdb_settings()", False),
    ("duckdb_secrets()", "SELECT * FROM duckdb_secrets()", False),
    ("COPY TO a file", "COPY singer TO '{out}/copy.csv'", False),
    ("COPY over a data file", "COPY (SELECT 1 AS pwned) TO '{data}' (USE_TMP_FILE false)", False),
    ("COPY TO /tmp", f"COPY (SELECT 1) TO '/tmp/{TMP_MARK}_copy.parquet' (FORMAT parquet)", False),
    ("EXPORT DATABASE", "EXPORT DATABASE '{out}/export'", False),
    ("ATTACH a new file", "ATTACH '{out}/attached.duckdb' AS a", False),
    ("ATTACH a data file rw", "ATTACH '{data}' AS b (READ_WRITE)", False),
    ("ATTACH :memory:", "ATTACH ':memory:' AS m", False),
    ("INSTALL httpfs", "INSTALL httpfs", False),
    ("LOAD httpfs", "LOAD httpfs", False),
    ("SET external access on", "SET enable_external_access = true", False),
    ("SET lock off", "SET lock_configuration = false", False),
    ("SET memory_limit", "SET memory_limit = '64GB'", False),
    ("SET profiling_output", "SET profiling_output = '{out}/profile.json'", False),
    ("PRAGMA enable_profiling", "PRAGMA enable_profiling = 'json'", False),
    ("SET VARIABLE", "SET VARIABLE v = 1", False),
    ("CREATE PERSISTENT SECRET", "CREATE PERSISTENT SECRET pwn (TYPE http, BEARER_TOKEN 'x')", False),
    ("create table", "CREATE TABLE pwn (a INT)", False),
    ("create temp table", "CREATE TEMP TABLE t AS SELECT * FROM singer", False),
    ("create macro", "CREATE MACRO pwn(x) AS x", False),
    ("drop table", "DROP TABLE singer", False),
    ("insert", "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')", False),
    ("update", "UPDATE singer SET Age = 0", False),
    ("delete", "DELETE FROM singer", False),
    ("WITH ... DELETE", "WITH x AS (SELECT 1) DELETE FROM singer", False),
    ("WITH ... INSERT", "WITH x AS (SELECT 99 AS id) INSERT INTO singer (Singer_ID) SELECT id FROM x", False),
    ("DELETE in a CTE", "WITH d AS (DELETE FROM singer RETURNING *) SELECT count(*) FROM d", False),
    ("checkpoint", "CHECKPOINT", False),
    ("checkpoint()", "SELECT * FROM checkpoint()", False),
    ("vacuum", "VACUUM", False),
    ("detach", "DETACH DATABASE concert_singer", False),
    ("repeat(1e9)", "SELECT repeat('a', 1000000000) AS s", False),
    ("repeat(3e8) x 20 rows", "SELECT repeat('a', 300000000) AS s FROM range(20)", False),
    ("length(repeat(3e8))", "SELECT length(repeat('a', 300000000)) AS n", False),
    ("list of 1e9", "SELECT len(range(1000000000)) AS n", False),
    ("string_agg over 1e9 rows", "SELECT length(string_agg('abcdefghij', '')) AS n FROM range(1000000000)", False),
    ("recursive CTE, no limit", f"{ENDLESS} SELECT count(*) FROM c", False),
    ("recursive CTE, rows", f"{ENDLESS} SELECT x FROM c", False),
    ("huge cross join", "SELECT count(*) FROM range(1000000) a, range(1000000) b", False),
    ("huge hash aggregate", "SELECT count(*) FROM (SELECT x, count(*) FROM range(300000000) t(x) GROUP BY x)", False),
    ("sleep_ms", "SELECT sleep_ms(30000)", False),
    ("multiple statements", "SELECT 1; DROP TABLE singer", False),
    ("comment hides 2nd stmt", "SELECT 1 -- x\n; DROP TABLE singer", False),
    ("control: trailing '; --'", "SELECT count(*) FROM singer; -- done", True),
    ("control: a path in a string", "SELECT '/etc/passwd' AS p, 'read_csv(x)' AS f", True),
    ("control: EXTRACT(... FROM '...')", "SELECT extract(year FROM DATE '2014-06-01') AS y", True),
]

DUCKDB_READS = [
    ("CTE", "WITH young AS (SELECT Name, Age FROM singer WHERE Age < 40) SELECT count(*) FROM young"),
    ("recursive CTE with a bound", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) "
                                   "SELECT sum(x) FROM n"),
    ("rank window", "SELECT Name, Age, rank() OVER (ORDER BY Age DESC) AS r FROM singer"),
    ("partitioned row_number", "SELECT Country, Name, row_number() OVER (PARTITION BY Country ORDER BY Age) AS n "
                               "FROM singer"),
    ("lag / lead", "SELECT Name, lag(Age) OVER (ORDER BY Singer_ID) AS prev, "
                   "lead(Name) OVER (ORDER BY Singer_ID) AS nxt FROM singer"),
    ("running total", "SELECT Year, count(*) AS c, sum(count(*)) OVER (ORDER BY Year) AS running "
                      "FROM concert GROUP BY Year"),
    ("ntile / percent_rank", "SELECT Name, ntile(2) OVER (ORDER BY Age) AS half, "
                             "percent_rank() OVER (ORDER BY Age) AS pr FROM singer"),
    ("QUALIFY", "SELECT Country, Name FROM singer QUALIFY row_number() OVER (PARTITION BY Country ORDER BY Age) = 1"),
    ("string functions", "SELECT upper(Name), lower(Country), length(Song_Name), substr(Name, 1, 3), "
                         "replace(Country, 'United', 'U.'), trim('  x  '), Name || ' (' || Country || ')', "
                         "left(Name, 2), lpad(CAST(Age AS VARCHAR), 4, '0'), strpos(Name, 'a') FROM singer"),
    ("ILIKE / regexp / LIKE", "SELECT Name FROM singer WHERE Name ILIKE 'j%' OR regexp_matches(Name, '^T') "
                              "OR Name LIKE '%a%'"),
    ("string_agg / list", "SELECT Country, string_agg(Name, ', ' ORDER BY Name) AS names, list(Age ORDER BY Age) AS ages, "
                          "array_to_string(list(Name), '/') AS joined FROM singer GROUP BY Country"),
    ("date functions", "SELECT date_trunc('month', DATE '2014-06-15'), extract(year FROM DATE '2014-06-01'), "
                       "strftime(DATE '2014-06-01', '%Y/%m'), DATE '2014-06-01' + INTERVAL 1 MONTH, "
                       "date_diff('day', DATE '2014-01-01', DATE '2014-06-01'), make_date(2014, 6, 1), "
                       "current_date IS NOT NULL"),
    ("year arithmetic", "SELECT concert_Name, CAST(Year AS INTEGER) + 1 AS next_year FROM concert "
                        "WHERE CAST(Year AS INTEGER) >= 2014"),
    ("structs and JSON", "SELECT to_json({'name': Name, 'age': Age}) AS j, {'n': Name}.n AS n, "
                         "json_extract('{\"a\": {\"b\": [1, 2, 3]}}', '$.a.b[1]') AS v FROM singer"),
    ("lists and lambdas", "SELECT list_transform([1, 2, 3], lambda x: x * 2) AS doubled, list_sum([1, 2, 3]) AS total, "
                          "list_filter([1, 2, 3], lambda x: x > 1) AS kept, [10, 20, 30][2] AS second, "
                          "len(['a', 'b']) AS n"),
    ("unnest / range / generate_series", "SELECT sum(x) FROM range(1, 11) AS t(x) "
                                         "UNION ALL SELECT count(*) FROM generate_series(1, 3) "
                                         "UNION ALL SELECT count(*) FROM (SELECT unnest([1, 2, 3]))"),
    ("CASE / FILTER", "SELECT count(*) FILTER (WHERE Age > 40) AS older, "
                      "sum(CASE WHEN Age < 30 THEN 1 ELSE 0 END) AS young FROM singer"),
    ("scalar subquery", "SELECT Name FROM singer WHERE Age > (SELECT avg(Age) FROM singer)"),
    ("EXISTS", "SELECT s.Name FROM singer s WHERE EXISTS "
               "(SELECT 1 FROM singer_in_concert sc WHERE sc.Singer_ID = s.Singer_ID)"),
    ("join + group by", "SELECT T2.Name, count(*) FROM concert T1 JOIN stadium T2 ON T1.Stadium_ID = T2.Stadium_ID "
                        "GROUP BY T2.Name ORDER BY 2 DESC"),
    ("UNION / UNION BY NAME", "SELECT Name FROM singer WHERE Age > 40 UNION SELECT Name FROM stadium "
                              "WHERE Capacity > 10000 UNION ALL BY NAME SELECT 'x' AS Name"),
    ("INTERSECT", "SELECT Stadium_ID FROM stadium INTERSECT SELECT Stadium_ID FROM concert"),
    ("EXCEPT", "SELECT Name FROM stadium EXCEPT SELECT T2.Name FROM concert T1 JOIN stadium T2 "
               "ON T1.Stadium_ID = T2.Stadium_ID"),
    ("aggregates + HAVING", "SELECT Country, count(*), avg(Age), min(Age), max(Age), median(Age), stddev_samp(Age) "
                            "FROM singer GROUP BY Country HAVING count(*) >= 1"),
    ("arg_max / max_by", "SELECT arg_max(Name, Age) AS oldest, max_by(Name, Age) AS same, arg_min(Name, Age) AS youngest "
                         "FROM singer"),
    ("EXCLUDE / COLUMNS", "SELECT * EXCLUDE (Song_Name, Song_release_year) FROM singer ORDER BY Singer_ID"),
    ("COLUMNS() expression", "SELECT max(COLUMNS('Capacity|Highest|Lowest')) FROM stadium"),
    ("GROUP BY ALL / ORDER BY ALL", "SELECT Country, count(*) AS n FROM singer GROUP BY ALL ORDER BY ALL"),
    ("DISTINCT ON / LIMIT OFFSET", "SELECT DISTINCT ON (Country) Country, Name FROM singer "
                                   "ORDER BY Country, Age LIMIT 2 OFFSET 1"),
    ("PIVOT with its values", "SELECT * FROM (PIVOT singer ON Is_male IN ('T', 'F') USING count(*) GROUP BY Country)"),
    ("SUMMARIZE a table", "SELECT column_name, approx_unique FROM (SUMMARIZE singer)"),
    ("coalesce / nullif / round / //", "SELECT coalesce(NULL, Name), nullif(Age, 0), round(Age / 3.0, 2), Age // 3, "
                                       "abs(Age - 40), greatest(Age, 30), least(Age, 30), TRY_CAST(Name AS INTEGER) "
                                       "FROM singer"),
    ("comments", "SELECT count(*) -- how many\nFROM singer /* all /* nested */ of them */"),
    ("non-ASCII text", "SELECT Name AS \"Künstler\", 'café — naïve' AS s FROM singer WHERE Name <> 'Zoë'"),
    ("E-strings and dollar quotes", "SELECT E'it\\'s' AS a, $$don't$$ AS b, 'x' || $q$y$q$ AS c"),
]

STATEMENTS = {"sqlite": SQLITE_STATEMENTS, "mysql": MYSQL_STATEMENTS, "postgres": POSTGRES_STATEMENTS,
              "duckdb": DUCKDB_STATEMENTS, "duckdb files": DUCKDB_STATEMENTS}
READS = {"sqlite": SQLITE_READS, "mysql": MYSQL_READS, "postgres": POSTGRES_READS,
         "duckdb": DUCKDB_READS, "duckdb files": DUCKDB_READS}


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


def descendants(exclude: set[int] = frozenset()) -> list[int]:
    """Process ids of this process's children, grandchildren, ..., minus the subtrees of
    ``exclude`` (a database server the bench started)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, todo = [], [os.getpid()]
    while todo:
        kids = [p for p, pp in parents.items() if pp == todo[0] and p not in exclude]
        found += kids
        todo = todo[1:] + kids
    return found


def _hwm_mib(pid: int | str) -> float:
    try:
        return _status_kib(pid, "VmHWM") / 1024
    except (OSError, AttributeError):
        return 0.0


class PeakWatch:
    """The peak resident size of this process, and the largest of its child processes (a
    connector may run queries in one), over a ``with`` block.

    Every peak is reset on entry; live children are sampled every 20 ms, and a child that ended
    during the block shows in ``RUSAGE_CHILDREN``.
    """

    def __init__(self, exclude: set[int] = frozenset()) -> None:
        self.exclude = set(exclude)
        self.own = self.child = 0.0
        self._peaks: dict[int, float] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        for pid in descendants(self.exclude):
            self._peaks[pid] = max(self._peaks.get(pid, 0.0), _hwm_mib(pid))

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def __enter__(self) -> "PeakWatch":
        for pid in ["self", *descendants(self.exclude)]:
            reset_peak(pid)
        self._ended_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.own = _hwm_mib("self")
        ended = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        self.child = max([0.0, *self._peaks.values()] + ([ended] if ended > self._ended_before else []))


def _walk(base: Path) -> set[str]:
    out = set()
    for root, _dirs, files in os.walk(base):
        out.update(os.path.join(root, f) for f in files if not f.startswith("#sql"))
    return out


def listing(deep: list[Path], shallow: list[Path] = ()) -> set[str]:
    """Every file under the ``deep`` folders, the files directly in the ``shallow`` ones, and the
    /tmp entries named like the bench's targets."""
    out = set()
    for base in deep:
        if base.is_dir():
            out |= _walk(base)
    for base in shallow:
        if base.is_dir():
            out.update(str(p) for p in base.iterdir() if p.is_file())
    out.update(str(p) for p in Path("/tmp").glob(f"{TMP_MARK}*"))
    return out


def _remove(path: str) -> None:
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


@dataclass
class Run:
    label: str
    kind: str  # hostile | control | read
    outcome: str = ""  # refused | stopped | ran
    status: str = ""
    detail: str = ""
    changed: bool = False
    leaked: bool = False  # a result or a message holds the text of /etc/passwd
    files: list[str] = field(default_factory=list)
    overrun: float = 0.0
    peak_mib: float = 0.0  # this process
    child_peak_mib: float = 0.0  # its largest child process (0 when it started none)
    server_peak_mib: float | None = None

    @property
    def false_refusal(self) -> bool:
        return self.kind == "read" and self.status not in ("ok", "empty", "none")


class Target:
    """A database the statements run against, with its own notion of "changed"."""

    dialect = ""
    server_pid: int | None = None

    def spec(self):  # what answer() gets
        raise NotImplementedError

    def state(self):
        raise NotImplementedError

    def restore(self) -> None:
        raise NotImplementedError

    def watched(self) -> list[Path]:
        """Folders watched for new files, recursively."""
        raise NotImplementedError

    def watched_top(self) -> list[Path]:
        """Folders watched for new files directly inside them (a busy tree below)."""
        return []

    def fill(self, sql: str, out: Path) -> str:
        return sql.replace("{out}", str(out))

    def close(self) -> None:
        pass


class SQLiteTarget(Target):
    """A copy of the Spider file in its own folder, in WAL journal mode."""

    dialect = "sqlite"

    def __init__(self, work: Path) -> None:
        self.folder = work / "sqlite"
        self.folder.mkdir()
        self.path = self.folder / "concert_singer.sqlite"
        self.restore()

    def restore(self) -> None:
        import sqlite3

        for f in self.folder.iterdir():
            f.unlink()
        shutil.copy(SPIDER_DB, self.path)
        conn = sqlite3.connect(self.path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.close()  # the last connection to close checkpoints and removes -wal and -shm
        assert mode == "wal" and sorted(os.listdir(self.folder)) == [self.path.name], os.listdir(self.folder)

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
        self.server_pid = pid
        conn = self._root()
        with conn.cursor() as cur:
            cur.execute("SELECT @@datadir, @@secure_file_priv, @@GLOBAL.max_connections")
            datadir_, secure, self.max_connections = cur.fetchone()
        conn.close()
        self.datadir = datadir or Path(datadir_)
        self.secure = Path(secure) if secure else None
        self.restore()

    def _root(self):
        import pymysql

        host, port, user, password = self.server
        return pymysql.connect(host=host, port=port, user=user, password=password, autocommit=True,
                               charset="utf8mb4")

    def restore(self) -> None:
        from tests.conftest import load_sqlite_into_mysql

        self.url = load_sqlite_into_mysql(SPIDER_DB, self.server, self.database)
        conn = self._root()
        with conn.cursor() as cur:
            for stmt in ("DROP DATABASE IF EXISTS pwn_db", "DROP USER IF EXISTS 'pwn'@'%'",
                         f"SET GLOBAL max_connections = {int(self.max_connections)}"):
                cur.execute(stmt)
            # stored functions a hostile model would call: with binary logging on, creating
            # them needs log_bin_trust_function_creators; it is put back at once
            cur.execute("SELECT @@GLOBAL.log_bin_trust_function_creators")
            trust = cur.fetchone()[0]
            cur.execute("SET GLOBAL log_bin_trust_function_creators = 1")
            try:
                cur.execute(f"USE `{self.database}`")
                cur.execute("CREATE FUNCTION qsql_hostile_set_global() RETURNS INT NOT DETERMINISTIC "
                            "MODIFIES SQL DATA BEGIN SET GLOBAL max_connections = 999; RETURN 1; END")
                cur.execute("CREATE FUNCTION qsql_hostile_insert() RETURNS INT NOT DETERMINISTIC MODIFIES SQL DATA "
                            "BEGIN INSERT INTO singer (Singer_ID, Name) VALUES (99, 'pwn'); RETURN 1; END")
            finally:
                cur.execute(f"SET GLOBAL log_bin_trust_function_creators = {int(trust)}")
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


class PostgresTarget(Target):
    dialect = "postgres"
    database = "qsql_hostile"

    def __init__(self, server: tuple) -> None:
        self.server = server  # (host, port, user, password)
        host, port, user, password = server
        if password:
            os.environ.setdefault("PGPASSWORD", password)  # for the fixture loader's connections
        self.dsn = f"host={host} port={port} user={user} dbname={self.database}" + (
            f" password={password}" if password else "")
        self.bystander = None
        with self._connect("postgres") as conn:
            self.datadir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        self.restore()

    def _connect(self, dbname: str):
        import psycopg

        host, port, user, password = self.server
        return psycopg.connect(host=host, port=port, user=user, password=password or None, dbname=dbname,
                               autocommit=True)

    def restore(self) -> None:
        from tests.conftest import load_sqlite_into_postgres

        host, port, user, password = self.server
        url = load_sqlite_into_postgres(SPIDER_DB, (host, port, user), self.database)
        self.url = url.replace(f"{user}@", f"{user}:{quote(password, safe='')}@", 1) if password else url
        with self._connect(self.database) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS dblink")
            conn.execute("CREATE EXTENSION IF NOT EXISTS adminpack")
            dsn = self.dsn.replace("'", "''")
            conn.execute(
                "CREATE FUNCTION qsql_hostile_remote_insert() RETURNS text LANGUAGE sql AS $f$ "
                f"SELECT dblink_exec('{dsn}', 'INSERT INTO singer (\"Singer_ID\", \"Name\") VALUES (99, ''pwn'')') $f$"
            )
            conn.execute(
                "CREATE FUNCTION qsql_hostile_copy_out(path text) RETURNS int LANGUAGE plpgsql AS $f$ "
                "BEGIN EXECUTE format('COPY singer TO %L', path); RETURN 1; END $f$"
            )
        with self._connect("postgres") as conn:
            conn.execute("DROP ROLE IF EXISTS pwn")
        if not self._bystander_alive():
            self.bystander = self._connect("postgres")
        self.pid = self.bystander.execute("SELECT pg_backend_pid()").fetchone()[0]

    def _bystander_alive(self) -> bool:
        if self.bystander is None:
            return False
        try:
            self.bystander.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - a terminated session raises one of several errors
            return False

    def fill(self, sql: str, out: Path) -> str:
        return super().fill(sql, out).replace("{dsn}", self.dsn).replace("{pid}", str(self.pid))

    def spec(self):
        return self.url

    def state(self):
        with self._connect(self.database) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()]
            sums = []
            for t in tables:
                sums.append((t, conn.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{t}\" t"
                ).fetchone()))
            extensions = conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()
            functions = conn.execute(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public' ORDER BY 1").fetchall()
            objects = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
            dbs = conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall()
            roles = conn.execute("SELECT rolname, rolsuper FROM pg_roles ORDER BY 1").fetchall()
        auto = self.datadir / "postgresql.auto.conf"
        auto_sum = hashlib.sha256(auto.read_bytes()).hexdigest() if auto.exists() else None
        return (tuple(sums), tuple(extensions), tuple(functions), objects, tuple(dbs), tuple(roles), auto_sum,
                self._bystander_alive())

    def watched(self) -> list[Path]:
        return []

    def watched_top(self) -> list[Path]:
        return [self.datadir]

    def close(self) -> None:
        if self.bystander is not None:
            self.bystander.close()


def _make_duckdb_spider():
    """``benchmarks/make_duckdb_spider.py`` as a module (its convert() writes the DuckDB copy)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_duckdb_spider", REPO / "benchmarks" / "make_duckdb_spider.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_secret(folder: Path) -> Path:
    """A CSV and a Parquet file outside every database, holding the first line of /etc/passwd:
    a query that reads either shows it in its result (counted as a server file read)."""
    import duckdb

    folder.mkdir(exist_ok=True)
    csv = folder / "secret.csv"
    csv.write_text(f"user,line\nroot,{PASSWD_MARK}:root:/root:/bin/bash\n")
    conn = duckdb.connect()
    conn.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{folder / 'secret.parquet'}' (FORMAT parquet)")
    conn.close()
    return csv


class DuckDBTarget(Target):
    """A DuckDB copy of the Spider file (``benchmarks/make_duckdb_spider.py``) alone in its folder."""

    dialect = "duckdb"

    def __init__(self, work: Path) -> None:
        self.folder = work / self.dialect.replace(" ", "_")
        self.folder.mkdir()
        self.work = work
        self.secret = write_secret(work / "secret")
        self.restore()

    def restore(self) -> None:
        for f in self.folder.iterdir():
            _remove(str(f))
        self.path = self.folder / "concert_singer.duckdb"
        _make_duckdb_spider().convert(SPIDER_DB, self.path)
        self.data = self.path

    def spec(self):
        return self.path

    def state(self):
        return tuple((f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in sorted(self.folder.iterdir())
                     if f.is_file())

    def watched(self) -> list[Path]:
        home = Path.home() / ".duckdb"  # where INSTALL and persistent secrets would write
        return [self.folder, self.secret.parent] + ([home] if home.is_dir() else [])

    def watched_top(self) -> list[Path]:
        return [Path.cwd(), Path.home()]  # COPY TO a relative path writes into the working folder

    def fill(self, sql: str, out: Path) -> str:
        return (super().fill(sql, out).replace("{data}", str(self.data)).replace("{secret_dir}", str(self.secret.parent))
                .replace("{secret}", str(self.secret)))


class DuckDBFilesTarget(DuckDBTarget):
    """The same tables as data files in one folder: singer.csv, concert.tsv, stadium.parquet and
    singer_in_concert.jsonl (written from the DuckDB copy), read as one database."""

    dialect = "duckdb files"

    def restore(self) -> None:
        import duckdb

        for f in self.folder.iterdir():
            _remove(str(f))
        source = self.work / "files_source.duckdb"
        if not source.exists():
            _make_duckdb_spider().convert(SPIDER_DB, source)
        conn = duckdb.connect(str(source), read_only=True)
        try:
            for table, name, options in (("singer", "singer.csv", "FORMAT csv"),
                                         ("concert", "concert.tsv", "FORMAT csv, DELIMITER '\t'"),
                                         ("stadium", "stadium.parquet", "FORMAT parquet"),
                                         ("singer_in_concert", "singer_in_concert.jsonl", "FORMAT json")):
                conn.execute(f"COPY {table} TO '{self.folder / name}' ({options})")
        finally:
            conn.close()
        self.data = self.folder / "singer.csv"

    def spec(self):
        return self.folder


# -- one run ------------------------------------------------------------------------------------


def _leaks(values) -> bool:
    return any(PASSWD_MARK in (v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray, memoryview))
                               else str(v)) for v in values)


def run_one(target: Target, label: str, sql: str, kind: str, *, checked: bool, timeout: float,
            out: Path, cache: Path, guarded: bool = True, spec=None) -> Run:
    """Answer one question whose model reply is ``sql``; watch the database, files, time and memory.

    ``checked=False`` replaces the sqlglot check by a pass-through; ``guarded=False`` also turns
    off the MySQL and DuckDB connectors' lexical guards (the server's or the engine's own locks
    only); ``spec`` opens the database with another account.
    """
    run = Run(label=label, kind=kind)
    llm = FakeListChatModel(responses=[f"```sql\n{sql}\n```"])
    settings = Settings(query_timeout=timeout, cache_dir=cache)
    db = open_database(spec or target.spec(), query_timeout=timeout)
    wanted = sql.strip().rstrip(";").strip()
    calls: list[tuple[float, BaseException | None]] = []  # executions of the statement
    reached = []  # the statement got past the check to the connector
    bypassed = []  # the pass-through replaced the check for it
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

    def pass_through(text, *args, **kwargs):
        if current["mine"]:
            bypassed.append(text)
        return (text or "").strip()

    db.execute, db._execute = timed_execute, inner
    saved_check, saved_guard = db_base.check_read_only, mysql_connector._guard
    saved_duckdb_guard = duckdb_connector._guard
    if not checked:
        db_base.check_read_only = pass_through
    if not guarded:
        mysql_connector._guard = lambda text, *args, **kwargs: None
        duckdb_connector._guard = lambda text, *args, **kwargs: None
    watched, top = target.watched() + [out], target.watched_top()
    files_before = listing(watched, top)
    state_before = target.state()
    server_reset = target.server_pid is not None and reset_peak(target.server_pid)
    server_before = _status_kib(target.server_pid, "VmRSS") if server_reset else 0
    rows: list = []
    watch = PeakWatch(exclude=SERVER_PIDS)
    try:
        with watch:
            ans = quorumsql.answer(f"hostile: {label}", db, preset=PRESET, llm=llm, settings=settings)
        cand = ans.candidates[0] if ans.candidates else None
        status, error = (cand.status, cand.error) if cand else ("none", ans.error)
        rows = cand.rows if cand else []
    except QuorumSQLError as exc:  # the run itself failed: count it as stopped
        status, error = "error", f"{type(exc).__name__}: {exc}"
    finally:
        db_base.check_read_only, mysql_connector._guard = saved_check, saved_guard
        duckdb_connector._guard = saved_duckdb_guard
        db.close()  # a connector's worker processes end here, not during a later run
    run.peak_mib, run.child_peak_mib = watch.own, watch.child
    if server_reset:
        run.server_peak_mib = max(0.0, (_status_kib(target.server_pid, "VmHWM") - server_before) / 1024)
    if not checked and calls and not bypassed:
        raise SystemExit(f"{label}: the check was not bypassed (does Database.execute still call "
                         "quorumsql.db.base.check_read_only?); the 'check off' figures would be wrong")
    run.overrun = max((d - timeout for d, _ in calls), default=0.0)
    run.leaked = _leaks([v for row in rows for v in row] + [error or ""])
    refused_by_check = checked and any(isinstance(e, UnsafeSQLError) for _, e in calls) and not reached
    if refused_by_check:
        run.outcome = "refused"
    elif status in ("ok", "empty", "none"):
        run.outcome = "ran"
    else:
        run.outcome = "stopped"
    run.status = status
    run.detail = f"{status}: {(error or '').splitlines()[0][:110]}" if error else status
    run.files = sorted(listing(watched, top) - files_before)
    run.changed = target.state() != state_before
    if run.changed or run.files:
        for f in run.files:
            _remove(f)
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


class PostgresCluster:
    """A throw-away PostgreSQL cluster on a free loopback port (as tests/conftest.py starts it)."""

    def __init__(self) -> None:
        import glob
        import pwd

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            bins = []
        if not bins:
            raise SystemExit("PostgreSQL is not installed (apt-get install postgresql), or pass --pg-url")
        self.bindir = Path(bins[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="qsql-hostile-pg-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.datadir = self.root / "data"
        self.port = _free_port()
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*self.as_pg, str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                        "--auth=trust"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(
            [*self.as_pg, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "server.log"),
             "-w", "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}", "start"],
            check=True, stdout=subprocess.DEVNULL,
        )
        self.server = ("127.0.0.1", self.port, "postgres", "")

    def stop(self) -> None:
        subprocess.run([*self.as_pg, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)


def _server_of(url: str, default_port: int, default_user: str) -> tuple:
    p = urlsplit(url)
    return (p.hostname or "127.0.0.1", p.port or default_port, p.username or default_user, p.password or "")


# -- report ---------------------------------------------------------------------------------------


def _meets_targets(runs: list[Run]) -> bool:
    return not any(r.changed or r.files or r.leaked or r.overrun > 1.0 or r.false_refusal
                   or max(r.peak_mib, r.child_peak_mib) >= PEAK_TARGET_MIB for r in runs)


def summary_row(mode: str, runs: list[Run]) -> str:
    sent = [r for r in runs if r.kind != "read"]
    hostile = [r for r in sent if r.kind == "hostile"]
    reads = [r for r in runs if r.kind == "read"]
    server = [r.server_peak_mib for r in runs if r.server_peak_mib is not None]
    return "| " + " | ".join([
        mode, str(len(sent)),
        str(sum(r.outcome == "refused" for r in sent)),
        str(sum(r.outcome == "stopped" for r in sent)),
        f"{sum(r.outcome == 'ran' for r in sent)} ({sum(r.outcome == 'ran' for r in hostile)} hostile)",
        str(sum(r.changed for r in runs)),
        str(sum(len(r.files) for r in runs)),
        str(sum(r.leaked for r in runs)),
        f"{sum(r.overrun > 1.0 for r in runs)} ({max([0.0] + [r.overrun for r in runs]):.2f})",
        f"{max([0.0] + [r.peak_mib for r in runs]):.0f} / "
        + (f"{max(r.child_peak_mib for r in runs):.0f}" if any(r.child_peak_mib for r in runs) else "-"),
        f"{sum(r.false_refusal for r in reads)} of {len(reads)}",
        f"{max(server):.0f}" if server else "-",
    ]) + " |"


def print_report(results: dict[tuple[str, str], list[Run]], timeout: float) -> None:
    print(f"\nquery_timeout = {timeout:g} s; 'ran' counts harmless controls and hostile statements whose "
          "result a cap cut")
    for dialect in dict.fromkeys(d for d, _ in results):
        modes = [m for d, m in results if d == dialect]
        print(f"\n### {dialect}\n")
        print("| mode | cases tried | refused by the check | stopped by the connection | ran | database changed "
              "| files created | server files read | overruns > 1 s (max s past) | peak MiB (this process / child) "
              "| false refusals "
              "| server peak MiB |")
        print("|---" * 12 + "|")
        for mode in modes:
            print(summary_row(mode, results[(dialect, mode)]))
    for dialect in dict.fromkeys(d for d, _ in results):
        modes = [m for d, m in results if d == dialect]
        by_label = {m: {r.label: r for r in results[(dialect, m)] if r.kind != "read"} for m in modes}
        print(f"\n{dialect}: per statement; what stopped it when the check is off\n")
        print("| statement | " + " | ".join(modes) + " | check off: reason |")
        print("|---" * (len(modes) + 2) + "|")
        for label, *_ in STATEMENTS[dialect]:
            if not any(label in by_label[m] for m in modes):
                continue
            cells = []
            for m in modes:
                r = by_label[m].get(label)
                cells.append("-" if r is None else r.outcome + (" CHANGED" if r.changed else "")
                             + (" FILE" if r.files else "") + (" READ /etc/passwd" if r.leaked else "")
                             + (f" +{r.overrun:.1f}s" if r.overrun > 1.0 else ""))
            off = by_label.get("check off", {}).get(label)
            reason = off.detail.replace("|", "/").replace("\n", " ") if off else ""
            print(f"| {label.replace('|', '/')} | " + " | ".join(cells) + f" | {reason} |")
        refused_reads = [(m, r) for m in modes for r in results[(dialect, m)] if r.false_refusal]
        if refused_reads:
            print(f"\n{dialect}: read queries that did not return their rows\n")
            for m, r in refused_reads:
                print(f"- {m}, {r.label}: {r.detail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["sqlite", "mysql", "postgres", "duckdb"], action="append",
                    help="duckdb: a DuckDB file and a folder of CSV / TSV / Parquet / JSON-lines files")
    ap.add_argument("--timeout", type=float, default=2.0, help="query_timeout in seconds (default 2)")
    ap.add_argument("--mysql-url", default=os.environ.get("QUORUMSQL_TEST_MYSQL_URL", ""),
                    help="a MariaDB/MySQL server to use (root-like account); default: start one")
    ap.add_argument("--pg-url", default=os.environ.get("QUORUMSQL_TEST_PG_URL", ""),
                    help="a PostgreSQL server to use (a superuser: the bench creates a database and "
                         "extensions); default: start a throw-away cluster")
    ap.add_argument("--no-server-only", dest="server_only", action="store_false",
                    help="MySQL: skip the two runs with the check and the connector's guard both off "
                         "(root, then a SELECT-only account), which show what the server stops by itself; "
                         "DuckDB: skip the run with both off (DuckDB's settings and the kernel's lock alone)")
    ap.add_argument("--match", default="", help="only the statements and read queries whose label contains this")
    args = ap.parse_args(argv)
    only = list(dict.fromkeys(args.only or ["sqlite", "mysql", "postgres", "duckdb"]))
    work = Path(tempfile.mkdtemp(prefix="qsql-hostile-"))
    # the statements' target folder: writable by the servers' own users too (postgres), so that
    # a file a statement could write is really written, and counted
    out = Path(tempfile.mkdtemp(prefix="qsql-hostile-out-"))
    out.chmod(0o777)
    cache = work / "cache"
    proc = cluster = None
    results: dict[tuple[str, str], list[Run]] = {}
    targets: list[Target] = []
    try:
        for dialect in only:
            if dialect == "sqlite":
                targets.append(SQLiteTarget(work))
            elif dialect == "duckdb":
                targets += [DuckDBTarget(work), DuckDBFilesTarget(work)]
            elif dialect == "mysql":
                if args.mysql_url:
                    targets.append(MySQLTarget(_server_of(args.mysql_url, 3306, "root"), None, None))
                else:
                    proc, server, datadir = start_mariadb(work)
                    SERVER_PIDS.add(proc.pid)
                    targets.append(MySQLTarget(server, datadir, proc.pid))
            else:
                if not args.pg_url:
                    cluster = PostgresCluster()
                targets.append(PostgresTarget(_server_of(args.pg_url, 5432, "postgres") if args.pg_url
                                              else cluster.server))
        for target in targets:
            # (mode, check on?, connector guard on?, account URL or None for the target's own)
            modes = [("check on", True, True, None), ("check off", False, True, None)]
            if target.dialect == "mysql" and args.server_only:
                modes += [("server only, root", False, False, None),
                          ("server only, SELECT-only", False, False, target.reader_spec())]
            if isinstance(target, DuckDBTarget) and args.server_only:
                modes += [("engine only", False, False, None)]
            cases = [(label, sql, "control" if control else "hostile")
                     for label, sql, control in STATEMENTS[target.dialect]]
            cases += [(label, sql, "read") for label, sql in READS[target.dialect]]
            cases = [c for c in cases if args.match in c[0]]
            for mode, checked, guarded, spec in modes:
                runs = []
                for label, sql, kind in cases:
                    if mode == "server only, root" and label == "shutdown":
                        continue  # it would stop the server: root holds SHUTDOWN
                    run = run_one(target, label, target.fill(sql, out), kind, checked=checked,
                                  timeout=args.timeout, out=out, cache=cache, guarded=guarded, spec=spec)
                    runs.append(run)
                    flags = (" CHANGED" if run.changed else "") + (" READ" if run.leaked else "") + (
                        " FALSE REFUSAL" if run.false_refusal else "") + (
                        " FILES " + str(run.files) if run.files else "")
                    print(f"  {target.dialect:8} {mode:9} {kind:7} {label[:34]:34} {run.outcome:8} "
                          f"over={run.overrun:+.2f}s peak={run.peak_mib:.0f}/{run.child_peak_mib:.0f}MiB{flags}  {run.detail[:120]}",
                          flush=True)
                results[(target.dialect, mode)] = runs
    finally:
        for target in targets:
            target.close()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    print_report(results, args.timeout)
    missed = [f"{d} / {m}" for (d, m), runs in results.items()
              if m in ("check on", "check off") and not _meets_targets(runs)]
    print("\ntargets (0 changed, 0 files, 0 read, 0 runs > 1 s past, peaks < "
          f"{PEAK_TARGET_MIB} MiB, 0 false refusals): " + ("met" if not missed else "missed in " + ", ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
