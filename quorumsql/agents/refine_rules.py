"""Rules the refiner learns in its loop, read off the SQL it tried and what each returned.

MCI-SQL (paper 004, section 3.3) lets the correction loop carry what it learned about the data
forward, so that later steps do not repeat a mistake. QuorumSQL derives these rules without a
model call, by comparing consecutive attempts of one candidate with sqlglot:

* ``empty_condition``: an attempt returned no rows (or only NULLs) and the next one, without one
  of its WHERE/HAVING conditions, returned rows: that condition matches nothing in the data.
* ``required_table``: an attempt failed and the next one, which ran, reads a table the failed
  one did not: the question needs that table.
* ``dropped_condition``: the final SQL no longer holds a condition of the generator's first SQL:
  the refiner loosened the query, and selection should know it answers a broader question.

Rules travel with the candidate (``Candidate.rules``) to selection: the LLM selector sees each
representative's rules next to its result, and the trace records them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from pydantic import BaseModel
from sqlglot import exp
from sqlglot.errors import SqlglotError

from quorumsql.records import Attempt

_RAN = ("ok", "empty", "none")
_FAILED = ("error", "refused", "timeout")


class RefineRule(BaseModel):
    """One rule learned while refining a candidate.

    Attributes:
        kind: ``empty_condition`` | ``required_table`` | ``dropped_condition``.
        subject: the condition's SQL text or the table's name.
        text: one sentence for people and for the selector's prompt.
    """

    kind: str
    subject: str
    text: str


def _tree(sql: str | None, dialect: str | None) -> exp.Expression | None:
    if not sql:
        return None
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except (SqlglotError, ValueError):
        return None
    return trees[0] if len(trees) == 1 else None


def conditions(sql: str | None, dialect: str | None = None) -> list[str]:
    """The conjuncts of every WHERE and HAVING clause of ``sql``, as normalised SQL text.

    ``a = 1 AND (b > 2 OR c < 3)`` gives ``["a = 1", "(b > 2 OR c < 3)"]``; subqueries'
    clauses are included. Unparseable SQL gives ``[]``.
    """
    tree = _tree(sql, dialect)
    if tree is None:
        return []
    found: list[str] = []
    for clause in tree.find_all(exp.Where, exp.Having):
        for part in clause.this.flatten() if isinstance(clause.this, exp.And) else [clause.this]:
            text = part.sql(dialect=dialect)
            if text not in found:
                found.append(text)
    return found


def tables(sql: str | None, dialect: str | None = None) -> set[str]:
    """Lower-cased names of the tables ``sql`` reads (CTE names excluded)."""
    tree = _tree(sql, dialect)
    if tree is None:
        return set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}


def learn_rules(attempts: Sequence[Attempt], dialect: str | None = None) -> list[RefineRule]:
    """Rules learned from one candidate's attempts, first to last (see the module docstring).

    Args:
        attempts: the SQL the refiner tried, in order, with their execution states.
        dialect: sqlglot dialect of the SQL.

    Returns:
        The rules, each subject once, in the order they were learned.
    """
    rules: list[RefineRule] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, subject: str, text: str) -> None:
        if (kind, subject) not in seen:
            seen.add((kind, subject))
            rules.append(RefineRule(kind=kind, subject=subject, text=text))

    for before, after in zip(attempts, attempts[1:]):
        if before.state in ("empty", "none") and after.state == "ok":
            kept = set(conditions(after.sql, dialect))
            for cond in conditions(before.sql, dialect):
                if cond not in kept:
                    add("empty_condition", cond, f"the condition {cond} matched no rows")
        if before.state in _FAILED and after.state in _RAN:
            for table in sorted(tables(after.sql, dialect) - tables(before.sql, dialect)):
                add("required_table", table, f"the query needed the table {table}")
    ran = [a for a in attempts if a.state in _RAN]
    if attempts and ran and ran[-1] is not attempts[0]:
        final = set(conditions(ran[-1].sql, dialect))
        for cond in conditions(attempts[0].sql, dialect):
            if cond not in final and ("empty_condition", cond) not in seen:
                add("dropped_condition", cond, f"the final SQL dropped the condition {cond} of the first one")
    return rules
