"""Issue 22: DuckDB files and data files (CSV, TSV, Parquet, JSON lines) as databases.

On real DuckDB files written from Spider's SQLite databases in ``tmp_path`` by
``benchmarks/make_duckdb_spider.py``, and on real CSV / TSV / Parquet / JSON-lines files written
here: how a path is read, the connector (schema, keys, examples, execution, caps, timeouts,
memory, change stamp, file locks, worker processes), the file-as-database path (names, types,
joins across formats, changes to the files), metadata and the value index, the guard's lexer, and
``answer()`` end to end with a scripted chat model. The hostile cases are in
``tests/test_duckdb_hostile.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
import sqlglot
from langchain_core.language_models.fake_chat_models import FakeListChatModel

import quorumsql
from quorumsql.config import Preset, Settings
from quorumsql.db import open_database
from quorumsql.db.safety import check_read_only
from quorumsql.errors import DatabaseError, QueryError, QueryTimeout, UnsafeSQLError
from tests.conftest import REPO, require_module, spider_db

duckdb = require_module("duckdb", "pip install 'quorumsql[duckdb]'")

from quorumsql.db.duckdb import (  # noqa: E402 - after the duckdb check
    DataFilesDatabase,
    DuckDBDatabase,
    _duckdb_tokens,
    _guard,
    table_names,
)

PRESET = Preset(name="duckdb-e2e", temperatures=[0.0], refine_rounds=0)


def _load_converter():
    spec = importlib.util.spec_from_file_location("make_duckdb_spider", REPO / "benchmarks" / "make_duckdb_spider.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONVERTER = _load_converter()


def convert(db_id: str, folder: Path, **kwargs) -> Path:
    """A DuckDB copy of a Spider database, alone in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{db_id}.duckdb"
    CONVERTER.convert(spider_db(db_id), path, **kwargs)
    return path


def sqlite_rows(db_id: str, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{spider_db(db_id)}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def concert(tmp_path) -> Path:
    return convert("concert_singer", tmp_path / "db")


@pytest.fixture
def data_folder(tmp_path) -> Path:
    """CSV, TSV, Parquet and JSON-lines files, written here, in one folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "Sales 2024.csv").write_text(
        "order_id,store_id,product,amount,sold_on\n"
        "1,1,apple,1.50,2024-01-03\n2,2,pear,2.00,2024-02-10\n3,1,\"kiwi, gold\",0.75,2024-03-01\n"
        "4,2,apple,1.25,2024-03-15\n"
    )
    (folder / "stores.tsv").write_text("store_id\tcity\tname\n1\tParis\tRivoli\n2\tLyon\tPresqu'île\n")
    (folder / "events.jsonl").write_text('{"id": 1, "kind": "open", "tags": ["a", "b"]}\n'
                                         '{"id": 2, "kind": "close", "tags": []}\n')
    conn = duckdb.connect()
    conn.execute(f"COPY (SELECT * FROM (VALUES (1, 'apple', 120), (2, 'pear', 80), (3, 'kiwi, gold', 40)) "
                 f"t(product_id, product, stock)) TO '{folder / 'products.parquet'}' (FORMAT parquet)")
    conn.close()
    (folder / "notes.txt").write_text("not a table")
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- what a path is ---------------------------------------------------------------------------------


def test_paths_and_urls_are_read_by_what_they_are(concert, data_folder, tmp_path):
    assert isinstance(open_database(concert), DuckDBDatabase)
    assert isinstance(open_database(f"duckdb:///{concert}"), DuckDBDatabase)  # duckdb:////abs/path
    rel = os.path.relpath(concert)
    assert open_database(f"duckdb:///{rel}").uri == open_database(concert).uri
    # a DuckDB file whatever its name; a SQLite file whatever its name
    disguised = tmp_path / "concert.db"
    disguised.write_bytes(concert.read_bytes())
    assert open_database(disguised).dialect == "duckdb"
    sqlite_as_csv = tmp_path / "really_sqlite.csv"
    sqlite_as_csv.write_bytes(spider_db("concert_singer").read_bytes())
    assert open_database(sqlite_as_csv).dialect == "sqlite"
    assert open_database(spider_db("concert_singer")).dialect == "sqlite"
    for spec in (data_folder, data_folder / "Sales 2024.csv", str(data_folder / "*.parquet"),
                 data_folder / "events.jsonl", f"duckdb:///{data_folder}/*.tsv"):
        db = open_database(spec)
        assert isinstance(db, DataFilesDatabase) and db.dialect == "duckdb", spec
    # the URI reopens the same database
    for db in (open_database(concert), open_database(str(data_folder / "*.csv")), open_database(data_folder)):
        again = open_database(db.uri)
        assert type(again) is type(db) and again.schema() == db.schema()


@pytest.mark.parametrize("spec,message", [
    ("missing.duckdb", "DuckDB database not found"),
    ("missing.csv", "data file not found"),
    ("empty_dir", "no CSV, TSV, Parquet or JSON file in the folder"),
    ("nomatch/*.parquet", "no CSV, TSV, Parquet or JSON file matches"),
    ("fake.duckdb", "not a DuckDB database"),
    ("broken.parquet", "cannot read"),
    ("duckdb://", "duckdb URL without a path"),
])
def test_bad_duckdb_inputs_are_one_line_errors(tmp_path, spec, message):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "fake.duckdb").write_text("hello")
    (tmp_path / "broken.parquet").write_text("not parquet")
    target = spec if spec.startswith("duckdb:") else str(tmp_path / spec)
    with pytest.raises(DatabaseError) as err:
        open_database(target)
    assert message in str(err.value) and "\n" not in str(err.value).strip(), str(err.value)


def test_a_clear_error_without_the_duckdb_package(concert, data_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb now raises ImportError
    for spec in (concert, data_folder):
        with pytest.raises(DatabaseError, match=r"pip install 'quorumsql\[duckdb\]'"):
            open_database(spec)
    assert open_database(spider_db("concert_singer")).dialect == "sqlite"  # SQLite needs nothing


# -- the connector ------------------------------------------------------------------------------------


def test_schema_keys_types_and_examples_of_a_converted_spider_database(concert):
    db = open_database(concert)
    schema = db.schema()
    assert schema.dialect == "duckdb" and schema.db_id == "concert_singer"
    assert [t.name for t in schema.tables] == ["concert", "singer", "singer_in_concert", "stadium"]
    singer = schema.table("singer")
    assert singer.primary_key == ["Singer_ID"] and singer.column("Age").type == "BIGINT"
    assert singer.column("Name").type == "VARCHAR" and not singer.column("Singer_ID").nullable
    (first,), = sqlite_rows("concert_singer", "SELECT Name FROM singer WHERE Name IS NOT NULL LIMIT 1")
    assert first in singer.column("Name").examples and len(singer.column("Name").examples) <= 3
    assert {str(fk) for fk in schema.foreign_keys} == {
        "concert.Stadium_ID=stadium.Stadium_ID", "singer_in_concert.Singer_ID=singer.Singer_ID",
        "singer_in_concert.concert_ID=concert.concert_ID",
    }
    assert schema.table("singer_in_concert").primary_key == ["concert_ID", "Singer_ID"]


def test_views_comments_and_other_schemas(tmp_path):
    path = tmp_path / "shop.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, since DATE)")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id), "
                 "total DECIMAL(10, 2), tags VARCHAR[], info STRUCT(channel VARCHAR))")
    conn.execute("INSERT INTO customers VALUES (1, 'Ada', DATE '2020-01-02'), (2, 'Linus', NULL)")
    conn.execute("INSERT INTO orders VALUES (10, 1, 12.50, ['a'], {'channel': 'web'}), (11, 2, 3.00, [], NULL)")
    conn.execute("COMMENT ON TABLE customers IS 'people who bought something'")
    conn.execute("COMMENT ON COLUMN customers.since IS 'first order date'")
    conn.execute("CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 10")
    conn.execute("CREATE SCHEMA archive")
    conn.execute("CREATE TABLE archive.old_orders (id INTEGER)")
    conn.close()
    db = open_database(path)
    schema = db.schema()
    assert [t.name for t in schema.tables] == ["big_orders", "customers", "orders", "archive.old_orders"]
    customers = schema.table("customers")
    assert customers.comment == "people who bought something"
    assert customers.column("since").comment == "first order date" and customers.column("since").type == "DATE"
    assert customers.column("since").examples == [date(2020, 1, 2)]
    assert schema.table("big_orders").kind == "view"
    assert schema.table("orders").column("total").type == "DECIMAL(10,2)"
    assert [str(fk) for fk in schema.foreign_keys] == ["orders.customer_id=customers.id"]
    res = db.execute("SELECT o.id, o.total, o.tags, o.info, c.since FROM orders o JOIN customers c "
                     "ON c.id = o.customer_id ORDER BY o.id")
    from decimal import Decimal

    assert res.rows == [(10, Decimal("12.50"), ["a"], {"channel": "web"}, date(2020, 1, 2)),
                        (11, Decimal("3.00"), [], None, None)]
    assert db.execute("SELECT count(*) FROM archive.old_orders").rows == [(0,)]


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM singer",
    "SELECT Name, Age FROM singer ORDER BY Age DESC",
    "SELECT T2.Name, count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID = T2.Stadium_ID "
    "GROUP BY T2.Name ORDER BY count(*) DESC, T2.Name",
    "SELECT Country, avg(Age) FROM singer GROUP BY Country ORDER BY Country",
])
def test_results_equal_the_sqlite_results(concert, sql):
    db = open_database(concert)
    res = db.execute(sql)
    assert res.ok and [tuple(r) for r in res.rows] == sqlite_rows("concert_singer", sql)
    assert res.columns and res.sql == sql


def test_row_and_byte_caps_cut_the_result(concert):
    db = open_database(concert, max_rows=3)
    res = db.execute("SELECT range FROM range(100)")
    assert res.rows == [(0,), (1,), (2,)] and res.truncated
    assert db.execute("SELECT range FROM range(3)").truncated is False
    small = open_database(concert, max_result_bytes=1000)
    cut = small.execute("SELECT repeat('x', 100) AS s FROM range(50)")
    assert cut.truncated and 0 < len(cut.rows) < 10
    assert sum(8 + len(r[0]) for r in cut.rows) <= 1000


def test_the_timeout_interrupts_the_query(concert):
    db = open_database(concert)
    start = time.monotonic()
    with pytest.raises(QueryTimeout):
        db.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
                   timeout=1.0)
    assert time.monotonic() - start < 2.0
    # a step DuckDB cannot interrupt ends with its worker, shortly after the deadline
    start = time.monotonic()
    res = db.try_execute("SELECT length(repeat('a', 300000000)) AS n", timeout=0.3)
    assert res.error_kind in ("timeout", "error") and time.monotonic() - start < 0.3 + 0.5 + 1.0, res
    assert db.execute("SELECT 42 AS x").rows == [(42,)]  # the next query gets a working worker


def test_a_query_over_its_memory_fails_and_the_next_one_runs(concert):
    db = open_database(concert, max_query_memory=64 * 2**20)
    start = time.monotonic()
    res = db.try_execute("SELECT repeat('a', 1000000000) AS s")
    assert res.error_kind == "error" and "max_query_memory" in res.error and time.monotonic() - start < 5, res
    res = db.try_execute("SELECT count(*) FROM (SELECT x, count(*) FROM range(50000000) t(x) GROUP BY x)", timeout=20)
    assert not res.ok and ("max_query_memory" in res.error or res.error_kind == "timeout"), res
    assert db.execute("SELECT count(*) FROM singer").rows == [(6,)]


def test_query_errors_are_duckdb_messages(concert):
    res = open_database(concert).try_execute("SELECT nosuch FROM singer")
    assert res.error_kind == "error" and "nosuch" in res.error


def test_reading_creates_no_file_leaves_the_stamp_and_never_holds_the_file(concert):
    db = open_database(concert)
    before, files = db.change_stamp(), listing(concert.parent)
    assert db.execute("SELECT count(*) FROM concert").rows == [(6,)]
    db.schema()
    assert listing(concert.parent) == files == ["concert_singer.duckdb"]
    assert db.change_stamp() == before
    # between queries nothing holds the file: a writer opens it, and the change is noticed
    writer = duckdb.connect(str(concert))
    writer.execute("CREATE TABLE extra (a INTEGER)")
    writer.execute("INSERT INTO singer (Singer_ID, Name) VALUES (100, 'New')")
    writer.close()
    assert db.change_stamp() != before
    assert db.refresh_if_changed() and db.schema().table("extra") is not None
    assert db.execute("SELECT count(*) FROM singer").rows == [(7,)]


def test_a_writer_holding_the_file_is_a_one_line_error(concert):
    db = open_database(concert)
    writer = duckdb.connect(str(concert))
    try:
        res = None
        with pytest.raises(DatabaseError) as err:
            res = db.execute("SELECT 1 AS x")
        assert res is None and "cannot open" in str(err.value)
    finally:
        writer.close()
    assert db.execute("SELECT 1 AS x").rows == [(1,)]


def test_queries_from_several_threads_run_in_parallel_workers(concert):
    db = open_database(concert)
    results, errors = [], []

    def ask(i: int) -> None:
        try:
            results.append(db.execute(f"SELECT {i} AS i, count(*) FROM singer").rows[0])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(results) == [(i, 6) for i in range(6)]
    pids = db.worker_pids()
    assert 1 <= len(pids) <= 4
    db.close()
    assert db.worker_pids() == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert db.execute("SELECT 1 AS x").rows == [(1,)]  # usable after close


def test_workers_are_sandboxed_and_bounded(concert):
    from quorumsql.db import duckdb_worker

    db = open_database(concert, max_query_memory=128 * 2**20)
    db.execute("SELECT 1 AS x")
    assert db.sandbox == duckdb_worker.landlock_abi()
    (pid,) = db.worker_pids()
    limits = Path(f"/proc/{pid}/limits").read_text()
    data = next(line for line in limits.splitlines() if line.startswith("Max data size"))
    assert str(2 * 128 * 2**20 + duckdb_worker.DATA_HEADROOM) in data.split()


# -- data files as a database ----------------------------------------------------------------------


def test_each_file_is_a_table_with_the_types_duckdb_infers(data_folder):
    db = open_database(data_folder)
    schema = db.schema()
    assert db.db_id == "data"
    assert [t.name for t in schema.tables] == ["events", "products", "sales_2024", "stores"]  # not notes.txt
    assert all(t.kind == "table" for t in schema.tables)
    sales = schema.table("sales_2024")
    assert [(c.name, c.type) for c in sales.columns] == [
        ("order_id", "BIGINT"), ("store_id", "BIGINT"), ("product", "VARCHAR"), ("amount", "DOUBLE"),
        ("sold_on", "DATE")]
    assert sales.column("product").examples[:3] == ["apple", "pear", "kiwi, gold"]
    assert schema.table("events").column("tags").type == "VARCHAR[]"
    assert schema.table("products").column("stock").type == "INTEGER"
    assert schema.table("stores").column("name").examples == ["Rivoli", "Presqu'île"]
    assert db.files == sorted(p.resolve() for p in data_folder.iterdir() if p.name != "notes.txt")


def test_queries_join_files_of_different_formats(data_folder):
    db = open_database(data_folder)
    res = db.execute(
        "SELECT st.city, sum(s.amount) AS total, max(p.stock) AS stock FROM sales_2024 s "
        "JOIN stores st ON st.store_id = s.store_id JOIN products p ON p.product = s.product "
        "GROUP BY st.city ORDER BY st.city")
    assert res.rows == [("Lyon", 3.25, 120), ("Paris", 2.25, 120)]
    assert db.execute("SELECT kind FROM events WHERE len(tags) = 2").rows == [("open",)]
    assert db.execute("SELECT count(*) FROM sales_2024 WHERE sold_on >= DATE '2024-03-01'").rows == [(2,)]


def test_a_file_a_glob_and_names_from_files(data_folder, tmp_path):
    one = open_database(data_folder / "Sales 2024.csv")
    assert one.db_id == "sales_2024" and [t.name for t in one.schema().tables] == ["sales_2024"]
    assert one.execute("SELECT count(*) FROM sales_2024").rows == [(4,)]
    both = open_database(str(data_folder / "*.*s*"))  # .tsv, .jsonl, .csv: the glob's files only
    assert [t.name for t in both.schema().tables] == ["events", "sales_2024", "stores"]
    names = table_names([Path("a/Sales-2024.CSV"), Path("b/sales_2024.parquet"), Path("2019.csv.gz"),
                         Path("x/---.jsonl"), Path("ventes_été.tsv"), Path("SELECT.csv")])
    assert list(names.values()) == ["sales_2024", "sales_2024_2", "t_2019", "table", "ventes_été", "select"]
    nested = tmp_path / "nested" / "deep"
    nested.mkdir(parents=True)
    (nested / "x.csv").write_text("a\n1\n")
    assert [t.name for t in open_database(str(tmp_path / "nested" / "**" / "*.csv")).schema().tables] == ["x"]


def test_names_that_need_quotes_and_reserved_words(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "select.csv").write_text("from,group\n1,2\n")
    db = open_database(folder)
    assert [t.name for t in db.schema().tables] == ["select"]
    assert db.execute('SELECT "from" + "group" AS s FROM "select"').rows == [(3,)]


def test_changed_files_are_noticed_and_read_again(data_folder):
    db = open_database(data_folder)
    db.schema()
    stamp = db.change_stamp()
    assert not db.refresh_if_changed()
    (data_folder / "returns.csv").write_text("order_id,reason\n2,damaged\n")
    assert db.change_stamp() != stamp and db.refresh_if_changed()
    assert db.schema().table("returns") is not None
    assert db.execute("SELECT reason FROM returns").rows == [("damaged",)]
    # a rewritten file with another column
    time.sleep(0.01)
    (data_folder / "stores.tsv").write_text("store_id\tcity\tname\tsize\n1\tParis\tRivoli\t40\n")
    assert db.refresh_if_changed()
    assert db.schema().table("stores").column("size").type == "BIGINT"
    assert db.execute("SELECT size FROM stores").rows == [(40,)]
    (data_folder / "returns.csv").unlink()
    assert db.refresh_if_changed() and db.schema().table("returns") is None


def test_the_catalog_lives_in_a_private_temporary_folder(data_folder):
    db = open_database(data_folder)
    before = listing(data_folder)
    db.execute("SELECT count(*) FROM sales_2024")
    assert listing(data_folder) == before  # nothing written beside the data
    catalog = db.path
    assert catalog.exists() and data_folder not in catalog.parents
    folder = db._folder
    del db
    import gc

    gc.collect()
    assert not folder.exists()


# -- metadata and the value index ---------------------------------------------------------------------


def test_metadata_and_the_value_index_on_duckdb_equal_the_sqlite_build(concert, tmp_path):
    from quorumsql.metadata import load_or_build

    settings = Settings(cache_dir=tmp_path / "cache")
    base = load_or_build(open_database(spider_db("concert_singer")), settings)
    meta = load_or_build(open_database(concert), settings)
    assert [n for n in meta.record.skipped if "failed" in n] == []
    assert {t.name: t.row_count for t in meta.tables} == {t.name: t.row_count for t in base.tables}
    for col in base.columns:
        other = meta.column(col.table, col.name)
        assert (other.null_count, other.distinct_count, other.unique) == (
            col.null_count, col.distinct_count, col.unique), col.qualified
        assert other.indexed == col.indexed, col.qualified
        if col.affinity == "number" and other.affinity == "number":
            assert (other.min_value, other.max_value) == (col.min_value, col.max_value), col.qualified
    (country, _), = sqlite_rows("concert_singer", "SELECT Country, count(*) AS n FROM singer GROUP BY Country "
                                                  "ORDER BY n DESC LIMIT 1")
    assert meta.value_index.lookup(country, k=3)[0] == ("singer", "Country", country, 1.0)
    assert "concert.Stadium_ID=stadium.Stadium_ID" in {str(j) for j in meta.record.join_candidates}
    again = load_or_build(open_database(concert), settings)
    assert not again.built and again.queries == 0  # reused while the file is unchanged


def test_metadata_of_data_files(data_folder, tmp_path):
    from quorumsql.metadata import load_or_build
    from quorumsql.schema_repr import render_metadata_schema

    meta = load_or_build(open_database(data_folder), Settings(cache_dir=tmp_path / "cache"))
    sold = meta.column("sales_2024", "sold_on")
    assert sold.affinity == "date" and (sold.min_value, sold.max_value) == ("2024-01-03", "2024-03-15")
    amount = meta.column("sales_2024", "amount")
    assert (amount.min_value, amount.max_value, amount.distinct_count) == (0.75, 2.0, 4)
    hits = [h[:3] for h in meta.value_index.lookup("kiwi gold", k=3)]
    assert ("sales_2024", "product", "kiwi, gold") in hits and ("products", "product", "kiwi, gold") in hits
    text = render_metadata_schema(meta.record, {"sales_2024": ["sold_on", "amount"]}, granularity="complete")
    assert "sales_2024" in text and "Range: [2024-01-03, 2024-03-15]" in text


# -- M-Schema and answer() ----------------------------------------------------------------------------


def test_the_model_sees_files_through_m_schema(data_folder):
    from quorumsql.schema_repr import to_mschema

    text = to_mschema(open_database(data_folder).schema())
    assert "# Table: sales_2024" in text and "(amount:DOUBLE, Examples: [1.5, 2.0, 0.75])" in text
    assert "(tags:VARCHAR[]" in text


def _ask(db, reply: str, tmp_path: Path, question: str = "question"):
    llm = FakeListChatModel(responses=[f"```sql\n{reply}\n```"])
    return quorumsql.answer(question, db, preset=PRESET, llm=llm, settings=Settings(cache_dir=tmp_path / "cache"))


def test_answer_end_to_end_on_a_duckdb_file(concert, tmp_path):
    ans = _ask(concert, "SELECT Name FROM stadium ORDER BY Capacity DESC LIMIT 1", tmp_path,
               "Which stadium has the largest capacity?")
    assert ans.error is None and ans.rows == sqlite_rows(
        "concert_singer", "SELECT Name FROM stadium ORDER BY Capacity DESC LIMIT 1")
    assert [c.status for c in ans.candidates] == ["ok"]
    # through a duckdb:/// URL and the Database object too
    assert _ask(f"duckdb:///{concert}", "SELECT count(*) FROM singer", tmp_path).rows == [(6,)]
    assert _ask(open_database(concert), "SELECT count(*) FROM concert", tmp_path).rows == [(6,)]


def test_answer_end_to_end_on_data_files(data_folder, tmp_path):
    ans = _ask(str(data_folder / "*.csv"), "SELECT product, amount FROM sales_2024 WHERE amount > 1 ORDER BY amount",
               tmp_path, "Which sales were over 1?")
    assert ans.error is None and ans.rows == [("apple", 1.25), ("apple", 1.5), ("pear", 2.0)]
    refused = _ask(data_folder, "SELECT * FROM read_csv('/etc/passwd')", tmp_path)
    assert refused.candidates[0].status == "refused" and "read_csv" in refused.candidates[0].error


def test_the_cli_asks_a_csv_file(data_folder, tmp_path, monkeypatch, capsys):
    from quorumsql import cli

    llm = FakeListChatModel(responses=["```sql\nSELECT count(*) AS n FROM sales_2024\n```"] * 4)
    monkeypatch.setattr("quorumsql.llm.chat.get_chat_model", lambda settings=None, role="generator", **kw: llm)
    monkeypatch.setenv("QUORUMSQL_CACHE_DIR", str(tmp_path / "cache"))
    code = cli.main(["ask", str(data_folder / "Sales 2024.csv"), "How many sales?", "--preset", "fast"])
    out = capsys.readouterr().out
    assert code == 0 and "SELECT count(*) AS n FROM sales_2024" in out and "4" in out


# -- the read-only check and the guard on DuckDB SQL ------------------------------------------------


def test_spider_dev_gold_in_duckdb_spelling_passes_the_check_and_the_guard(spider_data):
    queries = [line.split("\t")[0] for line in (spider_data / "dev_gold.sql").read_text().splitlines() if line.strip()]
    refused = []
    for sql in queries:
        text = sqlglot.transpile(sql, read="sqlite", write="duckdb")[0]
        for read in (lambda t: check_read_only(t, "duckdb"), _guard):
            try:
                read(text)
            except UnsafeSQLError as exc:
                refused.append((text, str(exc)))
    assert refused == []


def test_the_lexer_reads_duckdb_strings_names_and_comments():
    assert _duckdb_tokens("SELECT 'a\\' AS x, E'it\\'s' AS y, $$x'y$$, $t$a$$b$t$ AS z") == [
        ("word", "SELECT"), ("string", "a\\"), ("word", "AS"), ("word", "x"), ("symbol", ","),
        ("string", "it\\'s"), ("word", "AS"), ("word", "y"), ("symbol", ","), ("string", "x'y"), ("symbol", ","),
        ("string", "a$$b"), ("word", "AS"), ("word", "z")]
    assert _duckdb_tokens('SELECT 1 /* a /* nested */ read_text(1) */ AS "it""s" -- read_csv(1)\n') == [
        ("word", "SELECT"), ("number", "1"), ("word", "AS"), ("quoted", 'it"s')]
    assert _duckdb_tokens('SELECT U&"x"') == [("word", "SELECT"), ("word", "U"), ("symbol", "&"), ("quoted", "x")]
    assert _duckdb_tokens("SELECT 'caf\u00e9\u00a0x' AS \"k\u00fcnstler\"")[1] == ("string", "caf\u00e9\u00a0x")


@pytest.mark.parametrize("space", ["\u00a0", "\u2003", "\u200b", "\u3000", "\ufeff", "\u202f"])
def test_spaces_duckdb_may_read_either_way_are_refused_outside_strings(space):
    with pytest.raises(UnsafeSQLError, match=f"U\\+{ord(space):04X}"):
        _guard(f"SELECT 1 AS a,{space}2 AS b")
    with pytest.raises(UnsafeSQLError):
        check_read_only(f"SELECT 1 AS a,{space}2 AS b", "duckdb")
    _guard(f"SELECT 'x{space}y' AS s")  # inside a string: data
    check_read_only(f"SELECT 'x{space}y' AS s", "duckdb")


def test_duckdb_reads_those_spaces_as_spaces_or_name_characters():
    """Why they are refused: DuckDB itself turns U+00A0 into a space outside what it takes for a
    quote, and an E'...' string with an escaped quote misleads it, so the same character is
    then part of a name."""
    conn = duckdb.connect()
    assert conn.execute("SELECT 1\u00a0AS x").fetchall() == [(1,)]  # a space here
    with pytest.raises(duckdb.Error):
        conn.execute("SELECT E'\\'' AS a, 1\u00a0AS x").fetchall()  # not there
    conn.close()


@pytest.mark.parametrize("sql,word", [
    ("SELECT * FROM 'x.csv'", "string 'x.csv'"),
    ('SELECT * FROM "data/x.parquet"', 'quoted name "data/x.parquet"'),
    ("SELECT * FROM sales.csv", "sales.csv"),
    ("SELECT * FROM t JOIN 'x.csv' USING (id)", "x.csv"),
    ("SELECT * FROM t, s AS u(a), '/etc/*.json'", "/etc/*.json"),
    ("SELECT * FROM t WHERE a IN (SELECT b FROM (FROM 'x.csv'))", "x.csv"),
    ("SELECT * FROM (DESCRIBE 'x.csv')", "x.csv"),
    ("SELECT * FROM glob('/etc/*')", "glob"),
    ("FROM singer", "start with SELECT"),
])
def test_file_names_as_tables_are_refused_by_the_check_and_the_guard(sql, word):
    with pytest.raises(UnsafeSQLError, match=re_escape(word)):
        check_read_only(sql, "duckdb")
    with pytest.raises(UnsafeSQLError, match="refused by the connection"):
        _guard(sql)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("sql", [
    "SELECT extract(year FROM DATE '2014-06-01'), trim(BOTH FROM ' x '), substring('abc' FROM 2 FOR 1)",
    "SELECT * FROM main.singer AS 'alias'",
    "SELECT 'x.csv' AS name FROM singer WHERE Name <> '/etc/passwd'",
    "SELECT * FROM singer WHERE Name GLOB 'J*'",
    "SELECT * FROM \"singer\" JOIN \"concert\" ON true",
    "SELECT * FROM range(3) r(x), generate_series(1, 2) g(y)",
])
def test_names_that_only_look_like_files_elsewhere_pass(sql):
    check_read_only(sql, "duckdb")
    _guard(sql)


def test_the_spaces_refused_are_exactly_those_duckdb_reads_as_spaces():
    import unicodedata

    from quorumsql.db.functions import DUCKDB_UNICODE_SPACES

    candidates = {chr(cp) for cp in range(0x80, 0x10000)
                  if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) in ("Zs", "Zl", "Zp", "Cf", "Cc")}
    conn = duckdb.connect()
    conn.execute("CREATE TABLE t AS SELECT 1 AS a")
    spaces = set()
    for c in candidates | DUCKDB_UNICODE_SPACES:
        try:
            conn.execute(f"SELECT a{c}FROM t").fetchall()
            spaces.add(c)
        except duckdb.Error:
            pass
    conn.close()
    assert spaces == DUCKDB_UNICODE_SPACES


def test_values_cross_from_the_worker_with_their_types(concert):
    from decimal import Decimal
    from uuid import UUID

    db = open_database(concert)
    (row,) = db.execute(
        "SELECT TIMESTAMPTZ '2024-01-02 03:04:05+02' AS a, TIME '01:02:03' AS b, INTERVAL 3 DAY AS c, "
        "1.5::DECIMAL(4, 2) AS d, '8f5a9c62-3f0e-4c1e-9d62-5f7f3d3b2a10'::UUID AS e, [1, 2] AS f, {'k': [1]} AS g, "
        "MAP {1: 'x'} AS h, 'x'::BLOB AS i, 170141183460469231731687303715884105727::HUGEINT AS j, true AS k").rows
    import datetime as dt

    assert row == (dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.timezone.utc), dt.time(1, 2, 3), dt.timedelta(days=3),
                   Decimal("1.50"), UUID("8f5a9c62-3f0e-4c1e-9d62-5f7f3d3b2a10"), [1, 2], {"k": [1]}, {1: "x"}, b"x",
                   2**127 - 1, True)


def test_the_caller_unpickles_plain_values_only():
    import pickle

    from quorumsql.db.duckdb import _plain_loads

    assert _plain_loads(pickle.dumps([(1, "a", b"b", None)])) == [(1, "a", b"b", None)]
    with pytest.raises(pickle.UnpicklingError, match="not a plain value"):
        _plain_loads(pickle.dumps(Path("/etc/passwd")))
