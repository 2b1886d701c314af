"""Rule-based function alignment of refined candidates (no model call).

MCI-SQL's SQL alignment phase (paper 004, section 3.4) rewrites SQL that is logically right but
written with the wrong function or operator into a standard form, and keeps the phase pluggable:
each rule can be switched on or off. The rules here are mechanical, decided with sqlglot and the
schema, and every rewrite is executed before it is kept:

``integer_division``
    A ratio or percentage written as integer / integer (``count(x) * 100 / count(*)``,
    ``sum(a) / count(*)``) truncates to a whole number in SQLite and PostgreSQL. Division nodes
    whose two operands are integer-valued and hold a ``COUNT`` or ``SUM`` get their left operand
    cast to a floating type (``CAST(... AS REAL)`` on SQLite, ``CAST(... AS DOUBLE PRECISION)``
    on PostgreSQL). MySQL's ``/`` already divides exactly, so the rule does nothing there.
    Integer-valued means: ``COUNT``; ``SUM`` of an integer-valued argument; an integer literal;
    a column declared with an integer type (inside an aggregate); ``+ - * %`` of integer-valued
    operands; a scalar subquery selecting one integer-valued expression. On SQLite, columns
    declared ``NUMERIC``/``NUMBER``/``DECIMAL``/``BOOLEAN`` count as integer-valued too: they store
    whole numbers as integers, and casting a value that is already real changes nothing.
``dialect_functions``
    For a candidate that failed with an error, or was refused for calling a function that is
    not one of the database's built-ins (``YEAR()`` on SQLite): the SQL is read as each other dialect
    (MySQL, PostgreSQL, T-SQL, Oracle, SQLite) and written in the database's own with sqlglot,
    e.g. ``YEAR(d)`` or ``DATE_FORMAT(d, '%Y')`` become ``STRFTIME`` on SQLite, ``NVL`` becomes
    ``COALESCE``, ``SELECT TOP 3`` becomes ``LIMIT 3``. The first rewrite that runs is kept.
    Readings that change the meaning of an operator are skipped (MySQL reads ``||`` as OR).

``ranking_columns`` (output alignment)
    A top-level ``ORDER BY ... LIMIT`` query that also selects its ranking expression
    (``SELECT country, COUNT(*) ... ORDER BY COUNT(*) DESC LIMIT 1`` for "which country has the
    most singers?") loses that select item when the question names none of its words; the
    question asked for the ranked thing, not for the measure it was ranked by. At least one
    select item always stays.
``output_order`` (output alignment)
    The select items are put in the order the question names them (``SELECT age, name`` for
    "the name and age of ..." becomes ``SELECT name, age``), when every item is named in the
    question at a distinct place and no ``GROUP BY`` / ``ORDER BY`` refers to a position.
    Set-based scoring (BIRD) compares rows column by column, so the order is part of the answer.

An item is *named* when a word of its alias or of a column it reads (singular, ``_`` and
camelCase split) is a word of the question, and is placed where the last word of such a name
first occurs; a bare ``COUNT(*)`` is named by "number" or "count" (not "how many", which Spider's
questions put first whatever the order of the answer). Of the 485 Spider dev gold queries,
which should need neither rule, ``ranking_columns`` rewrites none and ``output_order`` 3 (the
question lists the columns in another order than its gold SQL). Spider's EX ignores column
order, so only order-sensitive scoring (BIRD) can show what ``output_order`` is worth. A rewrite replaces the candidate's SQL only when it executes (state ``ok``,
``empty`` or ``none``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlglot
from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import ErrorLevel, SqlglotError

from quorumsql.agents.candidates import PREVIEW_ROWS
from quorumsql.agents.linker import name_words
from quorumsql.agents.refiner import classify
from quorumsql.agents.sql_text import normalize_sql, result_key
from quorumsql.db import Database, ExecutionResult
from quorumsql.db.schema import DatabaseSchema, Table
from quorumsql.records import Candidate

AlignRule = Literal["integer_division", "dialect_functions", "ranking_columns", "output_order"]
ALIGN_RULES: tuple[AlignRule, ...] = ("integer_division", "dialect_functions", "ranking_columns", "output_order")

_RAN = ("ok", "empty", "none")

# -- integer division ---------------------------------------------------------------------
# Floating type the left operand is cast to, per dialect whose "/" truncates integers
# (sqlglot writes DOUBLE as REAL on SQLite and DOUBLE PRECISION on PostgreSQL).
_TRUNCATING_DIVISION = {"sqlite": "DOUBLE", "postgres": "DOUBLE"}
_INTEGER_TYPES = {
    "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT", "INT2", "INT4", "INT8",
    "SERIAL", "BIGSERIAL", "SMALLSERIAL", "UNSIGNED BIG INT",
}
# Declared types whose whole numbers SQLite stores as integers (NUMERIC affinity).
_SQLITE_WHOLE_TYPES = {"NUMERIC", "NUMBER", "DECIMAL", "BOOL", "BOOLEAN"}


def _integer_type(declared: str, dialect: str) -> bool:
    base = (declared or "").upper().split("(")[0].strip()
    return base in _INTEGER_TYPES or (dialect == "sqlite" and base in _SQLITE_WHOLE_TYPES)


class _Columns:
    """Declared integer-ness of the columns a query can see (tables by name and alias)."""

    def __init__(self, tree: exp.Expression, schema: DatabaseSchema) -> None:
        self.dialect = schema.dialect
        self.tables: dict[str, Table] = {}
        for t in tree.find_all(exp.Table):
            table = schema.table(t.name)
            if table is not None:
                self.tables[(t.alias or t.name).lower()] = table
                self.tables.setdefault(t.name.lower(), table)

    def integer(self, col: exp.Column) -> bool:
        if col.table:
            table = self.tables.get(col.table.lower())
            holders = [table] if table is not None else []
        else:
            holders = list({id(t): t for t in self.tables.values()}.values())
        found = [c for t in holders if (c := t.column(col.name)) is not None]
        return bool(found) and all(_integer_type(c.type, self.dialect) for c in found)


def _integer_valued(node: exp.Expression, cols: _Columns, in_aggregate: bool = False) -> bool:
    if isinstance(node, exp.Count):
        return True
    if isinstance(node, exp.Sum):
        return _integer_valued(node.this, cols, True)
    if isinstance(node, exp.Literal):
        return not node.is_string and node.is_int
    if isinstance(node, exp.Column):
        return in_aggregate and cols.integer(node)
    if isinstance(node, exp.Distinct):
        return len(node.expressions) == 1 and _integer_valued(node.expressions[0], cols, in_aggregate)
    if isinstance(node, (exp.Paren, exp.Neg)):
        return _integer_valued(node.this, cols, in_aggregate)
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Mod)):
        return _integer_valued(node.left, cols, in_aggregate) and _integer_valued(node.right, cols, in_aggregate)
    if isinstance(node, exp.Subquery):
        return _integer_valued(node.this, cols, in_aggregate)
    if isinstance(node, exp.Select):
        return len(node.expressions) == 1 and _integer_valued(node.expressions[0].unalias(), cols, in_aggregate)
    return False


def _has_aggregate(node: exp.Expression) -> bool:
    return node.find(exp.Count, exp.Sum) is not None


def cast_integer_division(sql: str, schema: DatabaseSchema) -> str | None:
    """``sql`` with every integer / integer ratio cast to a floating division, or None.

    Args:
        sql: a query in ``schema.dialect``.
        schema: the database schema (declared column types decide what is integer-valued).

    Returns:
        The rewritten SQL, or None when the dialect divides exactly (MySQL), the query does not
        parse, or no division qualifies (see the module docstring).
    """
    dialect = schema.dialect
    target = _TRUNCATING_DIVISION.get(dialect)
    if target is None:
        return None
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError:
        return None
    if tree is None:
        return None
    cols = _Columns(tree, schema)
    changed = False
    for div in list(tree.find_all(exp.Div)):
        left, right = div.this, div.expression
        if not (_has_aggregate(left) or _has_aggregate(right)):
            continue
        if _integer_valued(left, cols) and _integer_valued(right, cols):
            div.set("this", exp.cast(left.copy(), exp.DataType.build(target)))
            changed = True
    return tree.sql(dialect=dialect) if changed else None


# -- dialect functions --------------------------------------------------------------------
_DATE_PARTS = {exp.Year: "%Y", exp.Month: "%m", exp.Day: "%d", exp.DayOfMonth: "%d",
               exp.Hour: "%H", exp.Minute: "%M", exp.Second: "%S"}


def _date_part(fmt: str):
    def render(self, e: exp.Expression) -> str:
        return f"CAST(STRFTIME('{fmt}', {self.sql(e, 'this')}) AS INTEGER)"

    return render


class SQLiteDateParts(SQLite):
    """SQLite as sqlglot writes it, plus date parts: ``YEAR(d)`` -> ``CAST(STRFTIME('%Y', d) AS INTEGER)``.

    SQLite has no ``YEAR``/``MONTH``/``DAY``/``HOUR``/``MINUTE``/``SECOND`` functions and sqlglot
    writes them unchanged; this dialect's generator renders each through ``STRFTIME``.
    """

    class Generator(SQLite.Generator):  # type: ignore[name-defined,misc]
        TRANSFORMS = {**SQLite.Generator.TRANSFORMS, **{k: _date_part(v) for k, v in _DATE_PARTS.items()}}


# The dialect each database's SQL is written in, and the dialects a failing query is read as.
_WRITE_AS = {"sqlite": SQLiteDateParts}
_READ_AS = ("mysql", "postgres", "tsql", "oracle", "sqlite")
# Text that a reading would give another meaning than the model's (MySQL: "||" is OR).
_MISREAD = {"mysql": ("||",)}


def _text_key(sql: str) -> str:
    return " ".join(sql.split()).lower()


def transpile_functions(sql: str, dialect: str) -> list[tuple[str, str]]:
    """Readings of ``sql`` as other dialects, written in ``dialect``: ``[(source, rewritten)]``.

    Only rewrites whose text differs from ``sql`` and from each other (whitespace and case
    aside; not :func:`~quorumsql.agents.sql_text.normalize_sql`, which would read ``NVL`` as
    ``COALESCE`` itself) are returned, in the order of the source dialects tried (MySQL,
    PostgreSQL, T-SQL, Oracle, SQLite, skipping ``dialect`` itself). A reading sqlglot cannot
    parse or cannot write in ``dialect`` without losing something is skipped.

    Args:
        sql: the failing query.
        dialect: sqlglot dialect of the database (``sqlite``, ``mysql``, ``postgres``).
    """
    write = _WRITE_AS.get(dialect, dialect)
    seen = {_text_key(sql)}
    out: list[tuple[str, str]] = []
    for source in _READ_AS:
        if source == dialect or any(tok in sql for tok in _MISREAD.get(source, ())):
            continue
        try:
            trees = [t for t in sqlglot.parse(sql, read=source) if t is not None]
            if len(trees) != 1:
                continue
            rewritten = trees[0].sql(dialect=write, unsupported_level=ErrorLevel.RAISE)
        except (SqlglotError, ValueError):
            continue
        key = _text_key(rewritten)
        if key not in seen:
            seen.add(key)
            out.append((source, rewritten))
    return out


# -- the stage ----------------------------------------------------------------------------
# -- output alignment ----------------------------------------------------------------------
_COUNT_WORDS = {"number", "count"}


def _item_words(item: exp.Expression, *, head: bool = False) -> set[str]:
    """Words a select item goes by: its alias and the columns it reads; COUNT(*) by counting words.

    With ``head``, only the last word of each name (``document_id`` -> ``id``), which places an
    item in the question more precisely than its table-like first words.
    """
    pick = (lambda ws: set(ws[-1:])) if head else set
    words: set[str] = set()
    if isinstance(item, exp.Alias):
        words |= pick(name_words(item.alias))
        item = item.this
    for col in item.find_all(exp.Column):
        words |= pick(name_words(col.name))
    if not words and item.find(exp.Count):
        words |= _COUNT_WORDS
    return words


def _top_select(sql: str, dialect: str) -> exp.Select | None:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (SqlglotError, ValueError):
        return None
    return tree if isinstance(tree, exp.Select) and not tree.args.get("with") else None


def _positional(select: exp.Select) -> bool:
    keys = [*(select.args.get("group") or exp.Group()).expressions]
    if select.args.get("order"):
        keys += [o.this for o in select.args["order"].expressions]
    return any(isinstance(k, exp.Literal) and not k.is_string for k in keys)


def drop_ranking_columns(sql: str, question: str, dialect: str) -> str | None:
    """``sql`` without the select items that only carry its ranking (see ``ranking_columns``).

    Returns:
        The rewritten SQL, or None when the rule does not apply.
    """
    select = _top_select(sql, dialect)
    if select is None or not select.args.get("limit") or not select.args.get("order") or _positional(select):
        return None
    asked = set(name_words(question))
    order = {o.this.sql(dialect=dialect).lower() for o in select.args["order"].expressions}
    keep = []
    for item in select.expressions:
        bare = item.this if isinstance(item, exp.Alias) else item
        ranks = bare.sql(dialect=dialect).lower() in order or (
            isinstance(item, exp.Alias) and item.alias.lower() in order)
        if ranks and not (_item_words(item) & asked):
            continue
        keep.append(item)
    if not keep or len(keep) == len(select.expressions):
        return None
    return select.copy().select(*keep, append=False).sql(dialect=dialect)


def order_output_columns(sql: str, question: str, dialect: str) -> str | None:
    """``sql`` with its select items in the order the question names them (see ``output_order``).

    Returns:
        The rewritten SQL, or None when the rule does not apply or the order is already right.
    """
    select = _top_select(sql, dialect)
    if select is None or len(select.expressions) < 2 or _positional(select):
        return None
    asked = name_words(question)
    places = []
    for item in select.expressions:
        words = _item_words(item, head=True)
        hits = [i for i, w in enumerate(asked) if w in words or w.rstrip("s") in words]
        if not hits:
            return None
        places.append(hits[0])
    if len(set(places)) != len(places) or places == sorted(places):
        return None
    items = [item for _, item in sorted(zip(places, select.expressions), key=lambda pair: pair[0])]
    return select.copy().select(*items, append=False).sql(dialect=dialect)


class AlignStep(BaseModel):
    """One rewrite a rule tried.

    Attributes:
        rule: the rule (``integer_division`` | ``dialect_functions``).
        sql: the rewritten SQL.
        state: its execution state (``ok``, ``empty``, ``none``, ``error``, ...).
        error: the database's message when it failed.
        kept: the rewrite ran and replaced the SQL.
        note: where it came from (e.g. ``read as mysql``).
    """

    rule: str
    sql: str
    state: str
    error: str | None = None
    kept: bool = False
    note: str = ""


class Alignment(BaseModel):
    """Outcome of aligning one SQL.

    Attributes:
        sql: the final SQL (the input when no rewrite was kept).
        state: its execution state (the input state when no rewrite was kept).
        result: the execution result of ``sql`` when a rewrite was kept, else None.
        steps: every rewrite tried, in order.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    sql: str
    state: str
    result: ExecutionResult | None = None
    steps: list[AlignStep] = Field(default_factory=list)

    @property
    def applied(self) -> list[str]:
        """The rules whose rewrite was kept, in order."""
        return [s.rule for s in self.steps if s.kept]


def align_sql(
    db: Database, sql: str, *, state: str, rules: Sequence[str], error: str | None = None,
    question: str | None = None,
) -> Alignment:
    """Apply the switched-on alignment rules to one refined SQL (MCI-SQL section 3.4).

    ``dialect_functions`` runs first and only when ``state`` is ``error`` or ``refused`` (a
    function outside the dialect's built-ins is refused before it runs); ``integer_division``
    then runs on a query that executes. Each rewrite is executed read-only through
    :meth:`Database.try_execute` and kept only when it runs.

    Args:
        db: the database (its schema and dialect decide the rewrites).
        sql: the candidate's SQL after refinement.
        state: its execution state.
        rules: the preset's ``align_rules`` (unknown names are ignored).
        error: the database's error message for a failing ``sql`` (for the record only).
        question: the user's question (the output rules need it; without it they do nothing).

    Returns:
        The alignment: final SQL, state, result (when changed) and the steps tried.
    """
    current, current_state, result = sql, state, None
    steps: list[AlignStep] = []

    def attempt(rule: str, rewritten: str, note: str = "") -> bool:
        nonlocal current, current_state, result
        res = db.try_execute(rewritten)
        new_state = classify(res)
        kept = new_state in _RAN
        steps.append(AlignStep(rule=rule, sql=rewritten, state=new_state, error=res.error, kept=kept, note=note))
        if kept:
            current, current_state, result = rewritten, new_state, res
        return kept

    if "dialect_functions" in rules and current_state in ("error", "refused"):
        for source, rewritten in transpile_functions(current, db.dialect):
            if attempt("dialect_functions", rewritten, f"read as {source}"):
                break
    if "integer_division" in rules and current_state in _RAN:
        rewritten = cast_integer_division(current, db.schema())
        if rewritten is not None and normalize_sql(rewritten, db.dialect) != normalize_sql(current, db.dialect):
            attempt("integer_division", rewritten)
    output_rules = (("ranking_columns", drop_ranking_columns), ("output_order", order_output_columns))
    for rule, rewrite in output_rules:
        if rule in rules and question and current_state in _RAN:
            rewritten = rewrite(current, question, db.dialect)
            if rewritten is not None:
                attempt(rule, rewritten)
    return Alignment(sql=current, state=current_state, result=result, steps=steps)


def with_alignment(cand: Candidate, alignment: Alignment) -> Candidate:
    """The candidate with an aligned SQL and its result (unchanged when no rewrite was kept).

    ``result_key`` is recomputed so that the vote groups the candidate by its new result;
    ``attempts`` stays the refiner's history (the align trace event records the rewrite) and
    ``aligned_from`` keeps the SQL as refinement left it.
    """
    res = alignment.result
    if res is None:
        return cand
    return cand.model_copy(
        update={
            "sql": alignment.sql,
            "aligned_from": cand.aligned_from or cand.sql,
            "status": alignment.state,
            "error": None,
            "columns": res.columns,
            "rows": res.rows,
            "row_count": len(res.rows),
            "truncated": bool(res.truncated),
            "preview": res.rows[:PREVIEW_ROWS],
            "result_key": result_key(res.rows),
        }
    )
