"""Rule-based alignment of column names with the schema (no model call).

Small models often write a column name that is almost right (``pet_type`` for ``PetType``)
or put a right column under the wrong table alias (``T2.Name`` where ``Name`` belongs to the
table aliased ``T1``). Told the error, a 1.5B model mostly repeats the same query; these
rewrites fix it deterministically. This follows the rule-generated alignment of MCI-SQL
(paper 004, section 3.4): mechanical fixes by rules, the model kept for what needs reasoning.

Rules, for each column reference that does not resolve:

1. ``alias.col`` where the alias's table has a column equal to ``col`` up to case, ``_``,
   spaces and punctuation (:func:`quorumsql.sqlnames.normalize_column_name`): use that column.
2. ``alias.col`` where exactly one other table of the query has ``col`` (or a normalized
   match): move the reference to that table's alias.
3. unqualified ``col`` matching exactly one column of the query's tables after normalization:
   use that column.

Queries that read tables unknown to the schema (CTEs, derived tables) are left alone, and a
rewrite that would compare a column with itself (``T2.id = T2.id``) is refused.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from quorumsql.db.schema import DatabaseSchema, Table
from quorumsql.sqlnames import identifier, normalize_column_name


def _find(table: Table, name: str) -> str | None:
    """The column of ``table`` called ``name``, exactly (any case) or after normalization."""
    col = table.column(name)
    if col is not None:
        return col.name
    wanted = normalize_column_name(name)
    matches = [c.name for c in table.columns if normalize_column_name(c.name) == wanted]
    return matches[0] if len(matches) == 1 else None


def align_column_names(sql: str, schema: DatabaseSchema) -> str | None:
    """Rewrite unresolved column references of ``sql`` to real columns, when unambiguous.

    Args:
        sql: a query in ``schema.dialect``.
        schema: the database schema.

    Returns:
        The rewritten SQL, or None when nothing could be fixed (or the query does not parse).
    """
    dialect = schema.dialect
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return None
    if tree.find(exp.CTE) is not None:
        return None
    aliases: dict[str, Table] = {}
    refs: dict[str, str] = {}  # table name (lower) -> how the query refers to it
    for t in tree.find_all(exp.Table):
        table = schema.table(t.name)
        if table is None:
            return None
        ref = t.alias or t.name
        aliases[ref.lower()] = table
        aliases.setdefault(t.name.lower(), table)
        refs.setdefault(table.name.lower(), ref)
    if not aliases:
        return None
    output_aliases = {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}
    tables = {t.name.lower(): t for t in aliases.values()}
    changed = False
    for col in list(tree.find_all(exp.Column)):
        name = col.name
        if not name or isinstance(col.this, exp.Star):
            continue
        qualifier = col.table
        if qualifier:
            table = aliases.get(qualifier.lower())
            if table is None or table.column(name) is not None:
                continue
            fixed = _find(table, name)
            if fixed is not None:
                col.set("this", identifier(fixed, dialect))
                changed = True
                continue
            owners = [(t, _find(t, name)) for t in tables.values() if t is not table]
            owners = [(t, c) for t, c in owners if c is not None]
            if len(owners) == 1:
                owner, fixed = owners[0]
                col.set("table", identifier(refs[owner.name.lower()], dialect))
                col.set("this", identifier(fixed, dialect))
                changed = True
        else:
            if name.lower() in output_aliases or any(t.column(name) for t in tables.values()):
                continue
            found = [(t, _find(t, name)) for t in tables.values()]
            found = [(t, c) for t, c in found if c is not None]
            if len(found) == 1:
                col.set("this", identifier(found[0][1], dialect))
                changed = True
    if not changed:
        return None
    for cmp in tree.find_all(exp.EQ, exp.NEQ):
        # moving a reference must not turn a join condition into "x = x"
        if isinstance(cmp.left, exp.Column) and cmp.left == cmp.right:
            return None
    return tree.sql(dialect=dialect)
