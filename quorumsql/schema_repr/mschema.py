"""M-Schema, the semi-structured schema format of XiYan-SQL (paper 003, section 2.1).

Layout (one line per column)::

    【DB_ID】 movie_platform
    【Schema】
    # Table: movies
    [
    (movie_id:INTEGER, Primary Key, Examples: [1, 2, 3]),
    (movie_title:TEXT, Name of the movie, Examples: [La Antena, Elementary Particles])
    ]
    【Foreign keys】
    ratings.movie_id=movies.movie_id

Per column: ``name:TYPE`` (type upper-cased and cut at the first ``(``), the description,
``Primary Key``, and ``Examples: [...]``: at most 3 values; only 1 for date/time columns or when
a value is longer than 20 characters; none when a value is longer than 50 characters or when the
values are e-mail addresses or URLs.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from quorumsql.db.schema import Column, DatabaseSchema, Table
from quorumsql.schema_repr.selection import Selection, normalize_selection

_DATE_TYPES = ("DATE", "TIME", "DATETIME", "TIMESTAMP", "YEAR")
_URL_OR_EMAIL = re.compile(r"^(https?://|ftp://|www\.)|^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", re.I)
_DATE_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def mschema_type(declared: str) -> str:
    """``varchar(20)`` -> ``VARCHAR``; an undeclared SQLite type renders as ``ANY``."""
    base = (declared or "").split("(", 1)[0].strip().upper()
    return base or "ANY"


def _value_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(value)
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat(sep=" ") if isinstance(value, _dt.datetime) else value.isoformat()
    return str(value).replace("\n", " ").strip()


def format_examples(values: Sequence[Any], type_name: str, limit: int = 3) -> list[str]:
    """Apply M-Schema's example rules to ``values``; return the strings to show (maybe none).

    Args:
        values: candidate example values (NULLs and bytes are dropped).
        type_name: the column's M-Schema type (see :func:`mschema_type`).
        limit: maximum number of examples (3 in XiYan-SQL).
    """
    texts: list[str] = []
    for v in values:
        if v is None or isinstance(v, (bytes, bytearray, memoryview)):
            continue
        t = _value_text(v)
        if t and t not in texts:
            texts.append(t)
    if not texts or limit <= 0:
        return []
    if any(_URL_OR_EMAIL.search(t) for t in texts):
        return []
    texts = texts[:limit]
    longest = max(len(t) for t in texts)
    if longest > 50:
        return []
    if type_name in _DATE_TYPES or longest > 20 or all(_DATE_VALUE.match(t) for t in texts):
        return texts[:1]
    return texts


def to_mschema(
    schema: DatabaseSchema,
    selection: Selection | None = None,
    *,
    descriptions: Mapping[tuple[str, str], str] | None = None,
    examples: Mapping[tuple[str, str], Sequence[Any]] | None = None,
    table_descriptions: Mapping[str, str] | None = None,
    max_examples: int = 3,
    column_extras: Callable[[Table, Column], list[str]] | None = None,
    table_extras: Callable[[Table], str] | None = None,
    include_foreign_keys: bool = True,
) -> str:
    """Render ``schema`` (or the ``selection`` of it) as M-Schema.

    Args:
        schema: introspected schema.
        selection: linked schema ``{table: [columns] | None}``; None renders everything.
        descriptions: ``{(table, column): text}`` overriding the database's column comments
            (e.g. BIRD description files); keys are matched case-insensitively.
        examples: ``{(table, column): values}`` overriding the introspected examples (e.g.
            question-relevant values from the value index).
        table_descriptions: ``{table: text}`` overriding table comments.
        max_examples: examples per column before M-Schema's rules (0 hides examples).
        column_extras: extra fields appended to a column's line (richer renderings such as
            the metadata-complete one build on this).
        table_extras: text appended to a table's header line.
        include_foreign_keys: add the 【Foreign keys】 section.

    Returns:
        The M-Schema text; foreign keys are listed when both ends are rendered.
    """
    desc = {(t.lower(), c.lower()): v for (t, c), v in (descriptions or {}).items()}
    exm = {(t.lower(), c.lower()): v for (t, c), v in (examples or {}).items()}
    tdesc = {t.lower(): v for t, v in (table_descriptions or {}).items()}
    lines = [f"【DB_ID】 {schema.db_id}", "【Schema】"]
    rendered: dict[str, set[str]] = {}
    for table, kept in normalize_selection(schema, selection):
        tkey = table.name.lower()
        header = f"# Table: {table.name}"
        tcomment = tdesc.get(tkey, table.comment)
        if tcomment:
            header += f", {tcomment.strip()}"
        if table_extras is not None:
            header += table_extras(table)
        lines += [header, "["]
        col_lines = []
        for name in kept:
            col = table.column(name)
            assert col is not None
            key = (tkey, col.name.lower())
            typ = mschema_type(col.type)
            parts = [f"{col.name}:{typ}"]
            comment = desc.get(key, col.comment)
            if comment:
                parts.append(" ".join(str(comment).split()))
            if col.primary_key:
                parts.append("Primary Key")
            shown = format_examples(exm.get(key, col.examples), typ, max_examples)
            if shown:
                parts.append(f"Examples: [{', '.join(shown)}]")
            if column_extras is not None:
                parts.extend(column_extras(table, col))
            col_lines.append("(" + ", ".join(parts) + ")")
        lines.append(",\n".join(col_lines))
        lines.append("]")
        rendered[tkey] = {c.lower() for c in kept}
    fks = [
        str(fk)
        for fk in schema.foreign_keys
        if fk.column.lower() in rendered.get(fk.table.lower(), ())
        and fk.ref_column.lower() in rendered.get(fk.ref_table.lower(), ())
    ]
    if fks and include_foreign_keys:
        lines.append("【Foreign keys】")
        lines.extend(fks)
    return "\n".join(lines)
