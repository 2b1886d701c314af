"""A linked schema: which tables and columns of a database a rendering keeps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from quorumsql.db.schema import DatabaseSchema, Table

# table name -> column names to keep (None: all columns of that table)
Selection = Mapping[str, "Iterable[str] | None"]


def normalize_selection(
    schema: DatabaseSchema, selection: Selection | None
) -> list[tuple[Table, list[str]]]:
    """Resolve a selection against ``schema`` (names are matched case-insensitively).

    Args:
        schema: the full schema.
        selection: ``{table: [columns] | None}``; None keeps everything. Primary-key columns
            of a selected table are always kept, as are columns that take part in a foreign key
            between two selected tables, so joins stay expressible.

    Returns:
        ``[(table, [column names in declaration order])]`` in schema order; unknown names are
        ignored.
    """
    if selection is None:
        return [(t, [c.name for c in t.columns]) for t in schema.tables]
    wanted: dict[str, set[str] | None] = {}
    for tname, cols in selection.items():
        key = tname.lower()
        if cols is None:
            wanted[key] = None
        elif wanted.get(key, set()) is not None:
            wanted.setdefault(key, set()).update(c.lower() for c in cols)
    keep_fk: dict[str, set[str]] = {}
    for fk in schema.foreign_keys:
        if fk.table.lower() in wanted and fk.ref_table.lower() in wanted:
            keep_fk.setdefault(fk.table.lower(), set()).add(fk.column.lower())
            keep_fk.setdefault(fk.ref_table.lower(), set()).add(fk.ref_column.lower())
    out = []
    for table in schema.tables:
        key = table.name.lower()
        if key not in wanted:
            continue
        cols = wanted[key]
        kept = [
            c.name
            for c in table.columns
            if cols is None or c.name.lower() in cols or c.primary_key or c.name.lower() in keep_fk.get(key, ())
        ]
        out.append((table, kept))
    return out
