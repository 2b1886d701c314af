"""``CREATE TABLE`` rendering of a (possibly linked) schema, optionally with example rows.

The DDL-with-rows form (three rows per table in a comment after each table) is the strongest
single-call zero-shot prompt format on Spider in our measurements and in the literature
(Rajkumar et al. 2022; also used by DIN-SQL and CHESS as baseline). Column descriptions (given,
or the database's own comments) follow their column as ``-- text`` line comments, which every
dialect accepts, so the statements stay valid SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quorumsql.db.schema import DatabaseSchema
from quorumsql.schema_repr.selection import Selection, normalize_selection
from quorumsql.sqlnames import quote_identifier


def _ident(name: str, dialect: str) -> str:
    # quoted only when needed, so the prompt reads like hand-written DDL
    return quote_identifier(name, dialect, always=False)


def to_ddl(
    schema: DatabaseSchema,
    selection: Selection | None = None,
    *,
    sample_rows: Mapping[str, tuple[Sequence[str], Sequence[Sequence[Any]]]] | None = None,
    descriptions: Mapping[tuple[str, str], str] | None = None,
) -> str:
    """Render ``schema`` as ``CREATE TABLE`` statements in the database's dialect.

    Args:
        schema: introspected schema.
        selection: linked schema ``{table: [columns] | None}``; None renders everything.
        sample_rows: ``{table: (columns, rows)}``; each table's rows are appended after its
            statement as ``/* N example rows ... */`` (tab-separated, as in Rajkumar et al.).
        descriptions: ``{(table, column): text}`` overriding the database's column comments
            (keys match case-insensitively); each column's text follows it as ``-- text``
            (whitespace collapsed to one line).

    Returns:
        One statement per table, separated by blank lines; valid SQL of the dialect.
    """
    dialect = schema.dialect
    desc = {(t.lower(), c.lower()): v for (t, c), v in (descriptions or {}).items()}
    samples = {k.lower(): v for k, v in (sample_rows or {}).items()}
    chosen = normalize_selection(schema, selection)
    kept_by_table = {t.name.lower(): {c.lower() for c in cols} for t, cols in chosen}
    blocks = []
    for table, kept in chosen:
        body = []
        notes: list[str] = []  # the comment of each element of ``body`` ("" for none)
        for name in kept:
            col = table.column(name)
            assert col is not None
            line = f"  {_ident(col.name, dialect)}"
            if col.type:
                line += f" {col.type}"
            if col.primary_key and len(table.primary_key) == 1:
                line += " PRIMARY KEY"
            body.append(line)
            notes.append(" ".join(str(desc.get((table.name.lower(), col.name.lower()), col.comment) or "").split()))
        pk = [c for c in table.primary_key if c.lower() in kept_by_table[table.name.lower()]]
        if len(pk) > 1:
            body.append(f"  PRIMARY KEY ({', '.join(_ident(c, dialect) for c in pk)})")
        for fk in schema.foreign_keys:
            if (
                fk.table.lower() == table.name.lower()
                and fk.column.lower() in kept_by_table[table.name.lower()]
                and fk.ref_column.lower() in kept_by_table.get(fk.ref_table.lower(), ())
            ):
                body.append(
                    f"  FOREIGN KEY ({_ident(fk.column, dialect)}) REFERENCES "
                    f"{_ident(fk.ref_table, dialect)}({_ident(fk.ref_column, dialect)})"
                )
        keyword = "VIEW" if table.kind == "view" else "TABLE"
        notes += [""] * (len(body) - len(notes))
        rows = [
            line + ("," if i < len(body) - 1 else "") + (f" -- {note}" if note else "")
            for i, (line, note) in enumerate(zip(body, notes))
        ]
        block = f"CREATE {keyword} {_ident(table.name, dialect)} (\n" + "\n".join(rows) + "\n);"
        sample = samples.get(table.name.lower())
        if sample and sample[1]:
            cols, rows = sample
            block += (
                f"\n/*\n{len(rows)} example rows:\nSELECT * FROM {_ident(table.name, dialect)} "
                f"LIMIT {len(rows)};\n" + "\t".join(cols) + "\n"
                + "\n".join("\t".join(_cell(v) for v in row) for row in rows)
                + "\n*/"
            )
        blocks.append(block)
    return "\n\n".join(blocks)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    text = " ".join(str(value).split())
    return text if len(text) <= 80 else text[:77] + "..."
