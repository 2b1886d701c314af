"""Convert Spider's SQLite databases to DuckDB files, for measuring QuorumSQL on DuckDB. Run by hand:

    .venv/bin/python benchmarks/make_duckdb_spider.py OUT [--data ../shared/data/spider]
        [--split dev|all] [--db-ids concert_singer,pets_1] [--text-dates] [--force]

OUT (outside the repository, or under its ignored ``runs/``) gets Spider's layout with DuckDB files:
``OUT/database/<db_id>/<db_id>.duckdb``, plus copies of ``dev.json``, ``dev_gold.sql`` and
``tables.json`` and ``OUT/conversion.json``, which says per database what was kept, retyped and
dropped.
``--split dev`` (the default) converts the databases that ``dev.json`` asks about; ``all`` every
folder under ``database/``.

Each table keeps its name, its columns in order (names unchanged) and its rows. The types are
DuckDB's nearest to what the values are, decided per column from the declared type and every
stored value (SQLite lets a column hold anything):

- a declared integer type (INT, INTEGER, BIGINT, ...) or a NUMERIC / DECIMAL / NUMBER / REAL /
  FLOAT / DOUBLE type whose values are all whole numbers: ``BIGINT``;
- a numeric type with fractions: ``DOUBLE``;
- ``DATE`` whose values are all ISO dates: ``DATE``; ``DATETIME`` / ``TIMESTAMP`` whose values
  all parse: ``TIMESTAMP`` (``--text-dates`` keeps them ``VARCHAR``, as SQLite compares them);
- ``BLOB`` holding bytes: ``BLOB``; anything else, or a column whose values do not fit its
  declared type: ``VARCHAR`` (numbers written as SQLite prints them).

A foreign key between a text column holding only whole numbers and an integer column (which
SQLite joins by affinity, and DuckDB would not without a cast) makes the text side ``BIGINT``.
Primary keys are kept when their values are unique and not NULL. Foreign keys are kept when
DuckDB can enforce them on this data: the referenced columns are the referenced table's
primary key, the types match, every non-NULL value is found there, and the reference is not
part of a cycle (tables are created referenced-first); the others are listed in
``conversion.json`` with the reason. ``NOT NULL`` is kept where the data has no NULL.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
from datetime import date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "spider"

_INT_TYPES = {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT", "INT2", "INT4", "INT8",
              "UNSIGNED BIG INT", "BOOLEAN", "BOOL", "YEAR"}
_NUMERIC_TYPES = {"NUMERIC", "DECIMAL", "NUMBER", "REAL", "FLOAT", "DOUBLE", "DOUBLE PRECISION", "MONEY"}
_TIMESTAMP_TYPES = {"DATETIME", "TIMESTAMP"}


def _base_type(declared: str) -> str:
    return (declared or "").split("(")[0].strip().upper()


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63


def _parses(kind: str, v) -> bool:
    if not isinstance(v, str):
        return False
    try:
        if kind == "DATE":
            return len(v) == 10 and date.fromisoformat(v) is not None
        datetime.fromisoformat(v)
        return True
    except ValueError:
        return False


def column_type(declared: str, values: list, *, text_dates: bool = False) -> str:
    """The DuckDB type of a SQLite column with this declared type holding ``values`` (see the module)."""
    base = _base_type(declared)
    present = [v for v in values if v is not None]
    if base in _INT_TYPES | _NUMERIC_TYPES:
        if all(_whole(v) for v in present):
            return "BIGINT"
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            return "DOUBLE"
        return "VARCHAR"
    if not text_dates and base == "DATE" and present and all(_parses("DATE", v) for v in present):
        return "DATE"
    if not text_dates and base in _TIMESTAMP_TYPES and present and all(_parses("TIMESTAMP", v) for v in present):
        return "TIMESTAMP"
    if base == "BLOB" and all(isinstance(v, bytes) for v in present):
        return "BLOB"
    return "VARCHAR"


def _value(kind: str, v):
    if v is None:
        return None
    if kind == "VARCHAR":
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        return v if isinstance(v, str) else str(v)
    if kind == "BIGINT" and isinstance(v, str):
        return int(v.strip())  # a key column stored as text (see _retype_keys)
    if kind == "DOUBLE":
        return float(v)
    if kind == "DATE":
        return date.fromisoformat(v)
    if kind == "TIMESTAMP":
        return datetime.fromisoformat(v)
    return v


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read_sqlite(path: Path) -> tuple[list[dict], list[dict]]:
    """``(tables, foreign keys)`` of a SQLite file: each table with its columns, declared primary
    key and rows; each foreign key (grouped by SQLite's id) with its column pairs."""
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    src.text_factory = lambda b: b.decode("utf-8", "replace")
    try:
        names = [r[0] for r in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        tables, fks = [], []
        for name in names:
            info = src.execute(f"PRAGMA table_info({_quote(name)})").fetchall()
            rows = src.execute(f"SELECT * FROM {_quote(name)}").fetchall()
            tables.append({
                "name": name,
                "columns": [{"name": c[1], "declared": c[2] or "", "notnull": bool(c[3])} for c in info],
                "pk": [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]],
                "rows": rows,
            })
            groups: dict[int, dict] = {}
            for fk in src.execute(f"PRAGMA foreign_key_list({_quote(name)})").fetchall():
                g = groups.setdefault(fk[0], {"table": name, "ref_table": fk[2], "columns": [], "ref_columns": []})
                g["columns"].append(fk[3])
                g["ref_columns"].append(fk[4])
            fks.extend(groups.values())
        return tables, fks
    finally:
        src.close()


def _int_text(v) -> bool:
    if not isinstance(v, str):
        return False
    try:
        return str(int(v.strip())) == v.strip() and -2**63 <= int(v) < 2**63
    except ValueError:
        return False


def _retype_keys(by_name: dict[str, dict], fks: list[dict], notes: list[dict]) -> None:
    """A foreign key between a text column of whole numbers and an integer column (SQLite
    compares them by affinity; DuckDB would not join them without a cast): the text side
    becomes BIGINT too."""
    for fk in fks:
        src, ref = by_name.get(fk["table"].lower()), by_name.get(fk["ref_table"].lower())
        if ref is None:
            continue
        ref_cols = [c or (ref["pk"][0] if len(ref["pk"]) == 1 else "") for c in fk["ref_columns"]]
        for a, b in zip(fk["columns"], ref_cols):
            ca = next((c for c in src["columns"] if c["name"].lower() == a.lower()), None)
            cb = next((c for c in ref["columns"] if c["name"].lower() == str(b).lower()), None)
            if ca is None or cb is None or {ca["type"], cb["type"]} != {"VARCHAR", "BIGINT"}:
                continue
            text, table = (ca, src) if ca["type"] == "VARCHAR" else (cb, ref)
            i = table["columns"].index(text)
            if all(r[i] is None or _int_text(r[i]) for r in table["rows"]):
                text["type"] = "BIGINT"
                notes.append({"table": table["name"], "retyped": f"{text['name']} VARCHAR -> BIGINT",
                              "reason": "whole numbers stored as text in a foreign key to an integer column"})


def _plan(tables: list[dict], fks: list[dict], text_dates: bool) -> tuple[list[dict], list[dict], list[dict]]:
    """Types, kept keys and the creation order: ``(ordered tables, kept fks, notes)``."""
    by_name = {t["name"].lower(): t for t in tables}
    notes: list[dict] = []
    for t in tables:
        for i, col in enumerate(t["columns"]):
            values = [r[i] for r in t["rows"]]
            col["type"] = column_type(col["declared"], values, text_dates=text_dates)
            col["notnull"] = col["notnull"] and all(v is not None for v in values)
    _retype_keys(by_name, fks, notes)
    for t in tables:
        idx = [next(i for i, c in enumerate(t["columns"]) if c["name"] == p) for p in t["pk"]]
        keys = [tuple(_value(t["columns"][i]["type"], r[i]) for i in idx) for r in t["rows"]]
        if t["pk"] and (any(v is None for k in keys for v in k) or len(set(keys)) != len(keys)):
            notes.append({"table": t["name"], "dropped": f"primary key ({', '.join(t['pk'])})",
                          "reason": "NULL or repeated values"})
            t["pk"] = []
    kept: list[dict] = []
    for fk in fks:
        src, ref = by_name.get(fk["table"].lower()), by_name.get(fk["ref_table"].lower())
        label = f"{fk['table']}({', '.join(fk['columns'])}) -> {fk['ref_table']}({', '.join(map(str, fk['ref_columns']))})"
        reason = None
        if ref is None:
            reason = "the referenced table does not exist"
        else:
            ref_cols = [c or (ref["pk"][0] if len(ref["pk"]) == 1 else "") for c in fk["ref_columns"]]
            src_cols = {c["name"].lower(): c for c in src["columns"]}
            dst_cols = {c["name"].lower(): c for c in ref["columns"]}
            if any(c.lower() not in src_cols for c in fk["columns"]) or any(c.lower() not in dst_cols for c in ref_cols):
                reason = "a column does not exist"
            elif [c.lower() for c in ref_cols] != [p.lower() for p in ref["pk"]]:
                reason = "the referenced columns are not the referenced table's primary key"
            elif any(src_cols[a.lower()]["type"] != dst_cols[b.lower()]["type"] for a, b in zip(fk["columns"], ref_cols)):
                reason = "the column types differ"
            elif src is ref:
                reason = "a table referencing itself"
            else:
                si = [next(i for i, c in enumerate(src["columns"]) if c["name"].lower() == a.lower()) for a in fk["columns"]]
                ri = [next(i for i, c in enumerate(ref["columns"]) if c["name"].lower() == b.lower()) for b in ref_cols]
                have = {tuple(_value(ref["columns"][i]["type"], r[i]) for i in ri) for r in ref["rows"]}
                for r in src["rows"]:
                    key = tuple(_value(src["columns"][i]["type"], r[i]) for i in si)
                    if None not in key and key not in have:
                        reason = f"the value {key if len(key) > 1 else key[0]!r} is not in the referenced table"
                        break
            if reason is None:
                kept.append({**fk, "table": src["name"], "ref_table": ref["name"],
                             "columns": [src_cols[c.lower()]["name"] for c in fk["columns"]],
                             "ref_columns": [dst_cols[c.lower()]["name"] for c in ref_cols]})
        if reason:
            notes.append({"table": fk["table"], "dropped": f"foreign key {label}", "reason": reason})
    # creation order: referenced tables first; a reference that would close a cycle is dropped
    order: list[dict] = []
    state: dict[str, str] = {}

    def visit(t: dict) -> None:
        state[t["name"]] = "open"
        for fk in [f for f in kept if f["table"] == t["name"]]:
            ref = by_name[fk["ref_table"].lower()]
            if state.get(ref["name"]) == "open":
                kept.remove(fk)
                notes.append({"table": fk["table"], "dropped": f"foreign key to {fk['ref_table']}",
                              "reason": "part of a cycle of references"})
            elif ref["name"] not in state:
                visit(ref)
        state[t["name"]] = "done"
        order.append(t)

    for t in tables:
        if t["name"] not in state:
            visit(t)
    return order, kept, notes


def convert(sqlite_path: Path, duckdb_path: Path, *, text_dates: bool = False) -> dict:
    """Write ``duckdb_path`` (replaced if it exists) from the SQLite file ``sqlite_path``.

    Returns:
        A report: ``tables`` (rows per table), ``types`` (``table.column`` -> DuckDB type),
        ``primary_keys``, ``foreign_keys`` kept (``a.x=b.y``) and ``notes`` (each key not kept and
        each column retyped, with the reason).

    Raises:
        sqlite3.Error, duckdb.Error: a file cannot be read or written.
    """
    import duckdb

    tables, fks = _read_sqlite(sqlite_path)
    order, kept, notes = _plan(tables, fks, text_dates)
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (duckdb_path, duckdb_path.with_name(duckdb_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    conn = duckdb.connect(str(duckdb_path))
    try:
        for t in order:
            defs = [f"{_quote(c['name'])} {c['type']}" + (" NOT NULL" if c["notnull"] else "") for c in t["columns"]]
            if t["pk"]:
                defs.append(f"PRIMARY KEY ({', '.join(map(_quote, t['pk']))})")
            for fk in [f for f in kept if f["table"] == t["name"]]:
                defs.append(f"FOREIGN KEY ({', '.join(map(_quote, fk['columns']))}) REFERENCES "
                            f"{_quote(fk['ref_table'])} ({', '.join(map(_quote, fk['ref_columns']))})")
            conn.execute(f"CREATE TABLE {_quote(t['name'])} ({', '.join(defs)})")
            if t["rows"]:
                kinds = [c["type"] for c in t["columns"]]
                rows = [tuple(_value(k, v) for k, v in zip(kinds, r)) for r in t["rows"]]
                conn.executemany(f"INSERT INTO {_quote(t['name'])} VALUES ({', '.join('?' * len(kinds))})", rows)
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    return {
        "tables": {t["name"]: len(t["rows"]) for t in tables},
        "types": {f"{t['name']}.{c['name']}": c["type"] for t in tables for c in t["columns"]},
        "primary_keys": {t["name"]: t["pk"] for t in tables if t["pk"]},
        "foreign_keys": [f"{f['table']}.{c}={f['ref_table']}.{r}" for f in kept
                         for c, r in zip(f["columns"], f["ref_columns"])],
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    """Convert; return the exit status (1 when the data folder or a database cannot be read)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder (Spider's layout, .duckdb files)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"Spider folder (default {DEFAULT_DATA})")
    parser.add_argument("--split", choices=["dev", "all"], default="dev",
                        help="dev: the databases dev.json asks about (default); all: every database")
    parser.add_argument("--db-ids", default="", help="comma-separated db_ids (instead of --split)")
    parser.add_argument("--text-dates", action="store_true", help="keep DATE / DATETIME columns as VARCHAR")
    parser.add_argument("--force", action="store_true", help="convert again the databases already in OUT")
    args = parser.parse_args(argv)
    root = args.data / "database"
    if not root.is_dir():
        print(f"no Spider databases under {root}", file=sys.stderr)
        return 1
    if args.db_ids:
        ids = [d.strip() for d in args.db_ids.split(",") if d.strip()]
    elif args.split == "dev":
        try:
            ids = sorted({q["db_id"] for q in json.loads((args.data / "dev.json").read_text(encoding="utf-8"))})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"cannot read {args.data / 'dev.json'}: {exc}", file=sys.stderr)
            return 1
    else:
        ids = sorted(p.name for p in root.iterdir() if (p / f"{p.name}.sqlite").is_file())
    out = args.out.resolve()
    if out.is_relative_to(REPO) and not out.is_relative_to(REPO / "runs"):
        print(f"write the DuckDB files outside the repository (or under its ignored runs/), not in {out}",
              file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("dev.json", "dev_gold.sql", "tables.json"):
        if (args.data / name).is_file():
            shutil.copy(args.data / name, args.out / name)
    report_path = args.out / "conversion.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    status = 0
    for db_id in ids:
        src = root / db_id / f"{db_id}.sqlite"
        dst = args.out / "database" / db_id / f"{db_id}.duckdb"
        if dst.is_file() and not args.force and db_id in report:
            print(f"{db_id}: already converted (--force to redo)")
            continue
        try:
            report[db_id] = convert(src, dst, text_dates=args.text_dates)
        except Exception as exc:  # noqa: BLE001 - one database's failure is reported, the rest go on
            print(f"{db_id}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            continue
        r = report[db_id]
        dropped = sum("dropped" in n for n in r["notes"])
        print(f"{db_id}: {len(r['tables'])} tables, {sum(r['tables'].values())} rows, "
              f"{len(r['foreign_keys'])} foreign keys kept, {dropped} keys dropped, "
              f"{len(r['notes']) - dropped} key columns retyped -> {dst}")
    report_path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
