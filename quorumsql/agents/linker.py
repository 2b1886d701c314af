"""Schema linking: from retrieval hits and a draft SQL to the tables and columns a question needs.

Combines the two linking designs this project follows:

* XiYan-SQL (paper 003, section 4): keywords of the question are looked up in a column index
  (top-k columns per keyword) and a value index (cell values, which pull in their column); the
  union of both is the retrieved schema.
* MCI-SQL (paper 004, section 3.2): the model drafts an SQL query over the schema and the
  columns it references are read off the parsed query (here with sqlglot's scope analysis, so
  aliases, subqueries, CTEs and ``*`` resolve to real columns); each chosen column brings its
  similar and duplicate columns from the metadata.

On top of the union, tables that are chosen but not adjacent in the foreign-key graph are joined
through the shortest foreign-key path, whose key columns are kept; primary keys and the join
columns between chosen tables are kept by the renderers (:func:`quorumsql.schema_repr.normalize_selection`).
Linking never returns an empty schema: when nothing is found, the whole schema (or, above the
prompt budget, the best-retrieved tables) is kept and a note says why.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

import sqlglot
from pydantic import BaseModel, Field
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from quorumsql.db.schema import DatabaseSchema
from quorumsql.sqlnames import normalize_column_name

ColumnRef = tuple[str, str]


class SqlReferences(BaseModel):
    """Tables and columns one SQL query reads.

    Attributes:
        tables: real table names, in first-seen order.
        columns: ``(table, column)`` pairs with the real names, in first-seen order
            (``SELECT *`` counts every column of its table).
        unknown: names the query uses that are not in the schema (``table.column`` or
            ``column``), e.g. a column the model invented.
    """

    tables: list[str] = Field(default_factory=list)
    columns: list[ColumnRef] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list)


def schema_mapping(schema: DatabaseSchema) -> dict[str, dict[str, str]]:
    """``{table: {column: type}}`` for sqlglot's optimizer (every type given as ``TEXT`` when unknown)."""
    return {t.name: {c.name: (c.type.split("(")[0] or "TEXT") for c in t.columns} for t in schema.tables}


def referenced_columns(sql: str, schema: DatabaseSchema, dialect: str = "sqlite") -> SqlReferences | None:
    """The tables and columns of ``schema`` that ``sql`` references.

    Columns are qualified with sqlglot's optimizer against the schema, then every scope
    (subqueries, CTEs, unions) maps each column to the real table it comes from; names are
    matched case-insensitively and returned as the database spells them.

    Args:
        sql: one query in ``dialect``.
        schema: the database's schema.
        dialect: sqlglot dialect.

    Returns:
        The references, or None when ``sql`` does not parse.
    """
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (SqlglotError, ValueError):
        return None
    if tree is None:
        return None
    real_tables = {t.name.lower(): t for t in schema.tables}
    try:
        tree = qualify(
            tree, schema=schema_mapping(schema), dialect=dialect, validate_qualify_columns=False,
            quote_identifiers=False, identify=False,
        )
    except (SqlglotError, ValueError, KeyError, AttributeError, TypeError):
        pass  # unqualified columns are still resolved below where the scope is unambiguous
    refs = SqlReferences()
    seen_cols: set[ColumnRef] = set()

    def add_table(name: str) -> None:
        if name not in refs.tables:
            refs.tables.append(name)

    def add_column(table: str, column: str) -> None:
        key = (table, column)
        if key not in seen_cols:
            seen_cols.add(key)
            refs.columns.append(key)

    try:
        scopes = traverse_scope(tree)
    except (SqlglotError, ValueError, KeyError, AttributeError, TypeError):
        return refs
    for scope in scopes:
        tables_here = {}
        for alias, source in scope.sources.items():
            if isinstance(source, exp.Table) and source.name.lower() in real_tables:
                table = real_tables[source.name.lower()]
                tables_here[alias.lower()] = table
                add_table(table.name)
        for star in scope.expression.find_all(exp.Star) if isinstance(scope.expression, exp.Select) else ():
            if star.find_ancestor(exp.Select) is scope.expression and not star.find_ancestor(exp.Func):
                for table in tables_here.values():
                    for col in table.columns:
                        add_column(table.name, col.name)
        for column in scope.columns:
            if isinstance(column.this, exp.Star):
                table = tables_here.get(column.table.lower())
                for col in table.columns if table else ():
                    add_column(table.name, col.name)
                continue
            name = column.name
            candidates = [tables_here[column.table.lower()]] if column.table.lower() in tables_here else (
                list(tables_here.values()) if not column.table else []
            )
            owner = next((t for t in candidates if t.column(name) is not None), None)
            if owner is not None:
                add_column(owner.name, owner.column(name).name)
            elif not column.table or column.table.lower() in tables_here:
                if column.table:
                    owner_name = tables_here[column.table.lower()].name
                else:  # unqualified: its table when the scope reads only one
                    owner_name = next(iter(tables_here.values())).name if len(tables_here) == 1 else ""
                label = f"{owner_name}.{name}" if owner_name else name
                if label not in refs.unknown and not _is_output_alias(scope, column):
                    refs.unknown.append(label)
    return refs


def _is_output_alias(scope, column: exp.Column) -> bool:
    """True when ``column`` (in ORDER BY, GROUP BY or HAVING) names an alias of the SELECT list."""
    select = scope.expression if isinstance(scope.expression, exp.Select) else None
    if select is None or not column.find_ancestor(exp.Order, exp.Group, exp.Having):
        return False
    return any(isinstance(e, exp.Alias) and e.alias.lower() == column.name.lower() for e in select.expressions)


def join_path(schema: DatabaseSchema, tables: Iterable[str]) -> tuple[list[str], list[ColumnRef]]:
    """Tables and key columns that connect ``tables`` through the foreign-key graph.

    Greedy Steiner-tree approximation: starting from the first table, each further table is
    joined to the tree built so far by a shortest path (breadth-first search over the
    undirected foreign-key graph). Tables with no path to the others stay unconnected.

    Args:
        schema: the database's schema (declared foreign keys).
        tables: chosen table names (any case).

    Returns:
        ``(extra tables on the paths, foreign-key columns on the paths)``; real names.
    """
    names = {t.name.lower(): t.name for t in schema.tables}
    wanted = [names[t.lower()] for t in dict.fromkeys(tables) if t.lower() in names]
    if len(wanted) < 2:
        return [], []
    graph: dict[str, list[tuple[str, ColumnRef, ColumnRef]]] = {}
    for fk in schema.foreign_keys:
        a, b = names.get(fk.table.lower()), names.get(fk.ref_table.lower())
        if a is None or b is None or a == b:
            continue
        graph.setdefault(a, []).append((b, (a, fk.column), (b, fk.ref_column)))
        graph.setdefault(b, []).append((a, (b, fk.ref_column), (a, fk.column)))
    tree = {wanted[0]}
    extra: list[str] = []
    keys: list[ColumnRef] = []
    for target in wanted[1:]:
        if target in tree:
            continue
        prev: dict[str, tuple[str, ColumnRef, ColumnRef] | None] = {target: None}
        queue = deque([target])
        hit = None
        while queue:
            node = queue.popleft()
            if node in tree:
                hit = node
                break
            for nxt, here, there in graph.get(node, ()):
                if nxt not in prev:
                    prev[nxt] = (node, there, here)
                    queue.append(nxt)
        if hit is None:
            tree.add(target)
            continue
        node = hit
        while prev[node] is not None:
            back, col_a, col_b = prev[node]
            keys += [col_a, col_b]
            if node not in tree and node not in wanted:
                extra.append(node)
            tree.add(node)
            node = back
        tree.add(target)
    return list(dict.fromkeys(extra)), list(dict.fromkeys(keys))


def _stem(word: str) -> str:
    """A crude singular: ``countries`` -> ``country``, ``makers`` -> ``maker``, ``class`` kept;
    numbers lose their zero padding (``0042`` -> ``42``)."""
    w = word.lower()
    if w.isdigit():
        return str(int(w))
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def name_words(name: str) -> list[str]:
    """Words of an identifier or phrase, singular and lower-cased: split on ``_``, spaces,
    punctuation and camelCase (``carMakers`` -> ``["car", "maker"]``)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [_stem(w) for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def tables_named(phrases: Iterable[str], schema: DatabaseSchema) -> list[str]:
    """Tables a keyword names: every word of the table name appears (singular) in the keyword.

    ``"car makers"`` names ``car_makers``, ``"documents"`` names ``Documents``; a table called
    ``model_list`` needs both words. Lexical on purpose: it is precise, and the column index
    covers the looser semantic matches.

    Returns:
        Real table names, in schema order.
    """
    keyword_words = [set(name_words(p)) for p in phrases]
    out = []
    for table in schema.tables:
        words = set(name_words(table.name))
        if words and any(words <= kw for kw in keyword_words):
            out.append(table.name)
    return out


def columns_named(names: Iterable[str], schema: DatabaseSchema) -> list[ColumnRef]:
    """Columns the draft meant by names the schema does not have.

    Two lexical rules, case, ``_`` and spaces ignored. For a name qualified with a real table
    (``pets.age``), that table's columns whose name contains it or is contained in it
    (``pet_age``; ``Maker`` -> ``Make``), for names of three characters or more. When the table
    has none, the columns of any table spelled exactly like the name (``T1.MakeId`` written
    against the wrong table points at the table that has a ``MakeId``).
    """
    out: list[ColumnRef] = []
    for name in names:
        qualifier, _, bare = name.rpartition(".")
        key = normalize_column_name(bare)
        if not key:
            continue
        table = schema.table(qualifier) if qualifier else None
        own = []
        if table is not None and len(key) >= 3:
            own = [(table.name, c.name) for c in table.columns
                   if len(other := normalize_column_name(c.name)) >= 3 and (key in other or other in key)]
        out += own or [(t.name, c.name) for t in schema.tables for c in t.columns if normalize_column_name(c.name) == key]
    return list(dict.fromkeys(out))


def columns_named_by(phrases: Iterable[str], schema: DatabaseSchema, tables: Iterable[str]) -> list[ColumnRef]:
    """Columns of ``tables`` that a keyword names: every word of the column name is in it.

    ``"weight"`` names ``Pets.weight``, ``"release year"`` names ``release_year``; like
    :func:`tables_named`, lexical and limited to tables already linked, to stay precise.
    """
    keyword_words = [set(name_words(p)) for p in phrases]
    out = []
    for tname in tables:
        table = schema.table(tname)
        for c in table.columns if table else ():
            words = set(name_words(c.name))
            if words and any(words <= kw for kw in keyword_words):
                out.append((table.name, c.name))
    return out


class LinkedSchema(BaseModel):
    """The outcome of schema linking.

    Attributes:
        selection: ``{table: [columns]}`` with real names, in schema order; what the
            renderers keep (they add primary keys and join columns between kept tables).
        sources: ``{"table.column": [why]}``; why is ``value``, ``column``, ``draft``,
            ``path`` (a foreign-key path), ``similar``, ``duplicate``, ``selector`` or ``all``.
        value_examples: ``[(table, column, [cell values matched to the question])]``, shown
            first among the column's examples (a list, so the state stays serialisable).
        notes: degradations and decisions, one line each (for the trace).
    """

    selection: dict[str, list[str]] = Field(default_factory=dict)
    sources: dict[str, list[str]] = Field(default_factory=dict)
    value_examples: list[tuple[str, str, list]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def examples(self) -> dict[ColumnRef, list]:
        """``{(table, column): [matched values]}`` for the renderers."""
        return {(t, c): list(v) for t, c, v in self.value_examples}

    @property
    def column_count(self) -> int:
        """Number of columns selected (before the renderers add keys)."""
        return sum(len(v) for v in self.selection.values())

    def contains(self, table: str, column: str | None = None) -> bool:
        """True when ``table`` (and ``column``, if given) is in the selection (case-insensitive)."""
        for t, cols in self.selection.items():
            if t.lower() == table.lower():
                return column is None or any(c.lower() == column.lower() for c in cols)
        return False


def assemble_linked_schema(
    schema: DatabaseSchema,
    *,
    value_hits: Mapping[ColumnRef, Sequence] | None = None,
    column_hits: Iterable[ColumnRef] = (),
    draft: SqlReferences | None = None,
    table_hits: Iterable[str] = (),
    keywords: Iterable[str] = (),
    related: Mapping[ColumnRef, Iterable[tuple[str, ColumnRef]]] | None = None,
    notes: Iterable[str] = (),
) -> LinkedSchema:
    """The union of every linking source, closed under foreign-key paths.

    Args:
        schema: the full schema.
        value_hits: ``{(table, column): [matched values]}`` from the value index.
        column_hits: columns from the column index.
        draft: references of the draft SQL; its unknown column names link the columns of
            that spelling in other tables.
        table_hits: tables the question names (:func:`tables_named`); they join the schema
            with their keys (the renderers add primary keys and join columns).
        keywords: keywords of the question; columns of the chosen tables they name
            (:func:`columns_named_by`) are linked too.
        related: ``{(table, column): [(kind, (table, column))]}`` similar / duplicate columns
            (MCI-SQL's inter-column metadata); added for every chosen column.
        notes: notes gathered by earlier steps.

    Returns:
        The linked schema; when no source chose anything, the whole schema with a note.
    """
    tables = {t.name.lower(): t for t in schema.tables}
    chosen: dict[ColumnRef, list[str]] = {}

    def choose(ref: ColumnRef, why: str) -> None:
        table = tables.get(ref[0].lower())
        col = table.column(ref[1]) if table else None
        if col is None:
            return
        reasons = chosen.setdefault((table.name, col.name), [])
        if why not in reasons:
            reasons.append(why)

    for ref in (value_hits or {}):
        choose(ref, "value")
    for ref in column_hits:
        choose(ref, "column")
    if draft is not None:
        for ref in draft.columns:
            choose(ref, "draft")
        for ref in columns_named(draft.unknown, schema):
            choose(ref, "draft")
    for ref in list(chosen):
        for kind, other in (related or {}).get(ref, ()):
            choose(other, kind)
    out_notes = list(notes)
    draft_tables = [t for t in (draft.tables if draft else []) if t.lower() in tables]
    named = [tables[t.lower()].name for t in table_hits if t.lower() in tables]
    picked_tables = list(dict.fromkeys([t for t, _ in chosen] + draft_tables + named))
    for ref in columns_named_by(keywords, schema, picked_tables):
        choose(ref, "keyword")
    if not picked_tables:
        out_notes.append("linking found nothing in the schema: keeping every table")
        return LinkedSchema(
            selection={t.name: [c.name for c in t.columns] for t in schema.tables},
            sources={f"{t.name}.{c.name}": ["all"] for t in schema.tables for c in t.columns},
            notes=out_notes,
        )
    extra, keys = join_path(schema, picked_tables)
    for ref in keys:
        choose(ref, "path")
    if extra:
        out_notes.append("joined through " + ", ".join(extra))
    selected_tables = set(t.lower() for t in picked_tables + extra)
    selection: dict[str, list[str]] = {}
    for table in schema.tables:
        if table.name.lower() not in selected_tables:
            continue
        selection[table.name] = [c.name for c in table.columns if (table.name, c.name) in chosen]
    values = [
        (t.name, c.name, list(vals))
        for (tn, cn), vals in (value_hits or {}).items()
        if (t := tables.get(tn.lower())) is not None and (c := t.column(cn)) is not None
    ]
    return LinkedSchema(
        selection=selection,
        sources={f"{t}.{c}": why for (t, c), why in chosen.items()},
        value_examples=values,
        notes=out_notes,
    )


def link_sources(
    schema: DatabaseSchema,
    *,
    keywords: Sequence[str],
    values: Iterable[tuple[str, str, Sequence]],
    columns: Iterable[tuple[str, str, float]],
    draft: SqlReferences | None,
    related: Mapping[ColumnRef, Iterable[tuple[str, ColumnRef]]] | None = None,
    column_min_score: float = 0.9,
    notes: Iterable[str] = (),
) -> LinkedSchema:
    """The linking policy: which sources join the union, given what the stages found.

    Args:
        schema: the full schema.
        keywords: the question's keywords (tables and columns they name are linked).
        values: value-retrieval hits ``(table, column, [values])``.
        columns: column-retrieval hits ``(table, column, cosine)``; those at or above
            ``column_min_score`` are linked.
        draft: references of the draft SQL (None when there is no usable draft).
        related: duplicate (and, if wanted, similar) columns per column.
        column_min_score: cut-off for column-retrieval hits.
        notes: notes so far.

    Returns:
        :func:`assemble_linked_schema` over those sources. The stage's model outputs are inputs
        here, so a recorded run can be scored again under a changed policy without the model
        (``quorumsql bench --task linking --rescore``).
    """
    return assemble_linked_schema(
        schema,
        value_hits={(t, c): list(v) for t, c, v in values},
        column_hits=[(t, c) for t, c, score in columns if score >= column_min_score],
        draft=draft,
        table_hits=tables_named(keywords, schema),
        keywords=keywords,
        related=related,
        notes=notes,
    )
