"""Difficulty grading of synthesized SQL: component difficulty and execution difficulty.

Both follow DataFlow's Text-to-SQL pipeline (paper 000, section 4.3):

* **Component difficulty** (DataFlow's ``SQLComponentClassifier``, section 4.3.1): a points score
  over the query's components, cut by DataFlow's thresholds ``[2, 4, 6]`` into
  easy (<= 2) / medium (<= 4) / hard (<= 6) / extra. DataFlow scores the SQL text with substring
  tests (so ``"in"`` matches inside ``singer`` and ``" join "`` inside a literal); here every
  component is read off the sqlglot tree, so ``JOIN`` is never ``IN`` and ``BETWEEN 1 AND 2`` is
  not a connective. The rules, in our words (``component_points`` gives each one's points):

  ========================  ======  ==========================================================
  rule                      points  counted on the tree
  ========================  ======  ==========================================================
  ``nested``                2       any query nested in another (subquery, derived table, CTE)
  ``set_operation``         2       any UNION / INTERSECT / EXCEPT
  ``joins``                 1 each  every JOIN, including comma-separated FROM lists
  ``connectives``           1       two or more AND / OR connectives in conditions
  ``membership``            1       any IN, EXISTS or LIKE predicate
  ``group_by``              1       a GROUP BY anywhere
  ``having``                1       a HAVING anywhere
  ``functions``             1       any scalar function (CAST, ROUND, SUBSTR, dates, COALESCE...)
  ``order_by``              1       an ORDER BY anywhere
  ``limit``                 1       a LIMIT anywhere
  ``columns``               1       more than one selected column in the outermost query
  ``aggregates``            1       two or more aggregate calls (Spider's "more than one
                                    aggregation" criterion; DataFlow's list has no aggregate rule)
  ========================  ======  ==========================================================

* **Execution difficulty** (DataFlow's ``SQLExecutionClassifier``, section 4.3.2): the inference
  generator answers the synthesized question N times (DataFlow: 10) and each answer whose result
  matches the record's SQL result is a success. DataFlow's thresholds ``[2, 5, 9]`` on 10
  attempts (labels extra / hard / medium / easy) are applied as fractions, so they hold for any N:
  at most 20 % successes is extra, at most 50 % hard, at most 90 % medium, above that easy.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from quorumsql.errors import InputError

COMPONENT_LEVELS = ("easy", "medium", "hard", "extra")
#: DataFlow's component thresholds: a score <= 2 is easy, <= 4 medium, <= 6 hard, above extra
COMPONENT_THRESHOLDS = (2, 4, 6)

EXECUTION_LEVELS = ("easy", "medium", "hard", "extra")
#: DataFlow's execution thresholds out of its 10 generations, as (successes, label): a success
#: count <= 2 of 10 is extra, <= 5 hard, <= 9 medium, 10 easy
EXECUTION_THRESHOLDS = ((2, "extra"), (5, "hard"), (9, "medium"))
_EXECUTION_OUT_OF = 10

_SETOPS = (exp.Union, exp.Intersect, exp.Except)


def _parse_query(sql: str, dialect: str) -> exp.Expression:
    if not isinstance(sql, str) or not sql.strip():
        raise InputError("component difficulty needs a SQL query, got an empty string")
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except (SqlglotError, ValueError) as exc:
        raise InputError(f"SQL does not parse ({dialect}): {str(exc).splitlines()[0][:200]}") from None
    if len(trees) != 1:
        raise InputError(f"expected one SQL statement, got {len(trees)}")
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        raise InputError(f"not a query: {tree.key.upper()} statement")
    return tree


def _spine(tree: exp.Expression) -> set[int]:
    """ids of the outermost query's own blocks: the root and, through a top-level set operation
    or parentheses, its operands. Every other query block in the tree is nested."""
    spine: set[int] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        spine.add(id(node))
        if isinstance(node, _SETOPS):
            stack.extend(n for n in (node.left, node.right) if n is not None)
        elif isinstance(node, exp.Subquery):
            stack.append(node.this)
    return spine


def _is_scalar_function(node: exp.Expression) -> bool:
    # sqlglot models AND / OR as functions too; they are the connectives rule, not this one
    return isinstance(node, exp.Func) and not isinstance(node, (exp.AggFunc, exp.Connector))


def _first_select(tree: exp.Expression) -> exp.Select | None:
    while isinstance(tree, (exp.Subquery, *_SETOPS)):
        tree = tree.left if isinstance(tree, _SETOPS) else tree.this
    return tree if isinstance(tree, exp.Select) else None


def component_points(sql: str, dialect: str = "sqlite") -> dict[str, int]:
    """Points of each component rule for ``sql`` (see the module docstring for the table).

    Args:
        sql: one query.
        dialect: sqlglot dialect to parse it with.

    Returns:
        ``{rule: points}`` for every rule, zeros included; ``joins`` is the number of JOINs.

    Raises:
        InputError: ``sql`` is empty, does not parse, holds several statements or is not a query.
    """
    tree = _parse_query(sql, dialect)
    spine = _spine(tree)
    nodes = list(tree.walk())
    nested = any(isinstance(n, (exp.Select, exp.Subquery, *_SETOPS)) and id(n) not in spine for n in nodes)
    select = _first_select(tree)
    aggregates = sum(1 for n in nodes if isinstance(n, exp.AggFunc))
    return {
        "nested": 2 * int(nested),
        "set_operation": 2 * int(any(isinstance(n, _SETOPS) for n in nodes)),
        "joins": sum(1 for n in nodes if isinstance(n, exp.Join)),
        "connectives": int(sum(1 for n in nodes if isinstance(n, (exp.And, exp.Or))) >= 2),
        "membership": int(any(isinstance(n, (exp.In, exp.Exists, exp.Like, exp.ILike)) for n in nodes)),
        "group_by": int(any(isinstance(n, exp.Group) for n in nodes)),
        "having": int(any(isinstance(n, exp.Having) for n in nodes)),
        "functions": int(any(_is_scalar_function(n) for n in nodes)),
        "order_by": int(any(isinstance(n, exp.Order) for n in nodes)),
        "limit": int(any(isinstance(n, (exp.Limit, exp.Fetch)) for n in nodes)),
        "columns": int(select is not None and len(select.expressions) > 1),
        "aggregates": int(aggregates >= 2),
    }


def component_score(sql: str, dialect: str = "sqlite") -> int:
    """Sum of :func:`component_points` (0 for ``SELECT x FROM t``).

    Raises:
        InputError: as :func:`component_points`.
    """
    return sum(component_points(sql, dialect).values())


def component_difficulty(sql: str, dialect: str = "sqlite") -> str:
    """DataFlow's component difficulty of ``sql``: one of :data:`COMPONENT_LEVELS`.

    The :func:`component_score` is cut by :data:`COMPONENT_THRESHOLDS` ``(2, 4, 6)``: <= 2 easy,
    <= 4 medium, <= 6 hard, else extra (DataFlow, paper 000, section 4.3.1).

    Args:
        sql: one query.
        dialect: sqlglot dialect to parse it with.

    Raises:
        InputError: ``sql`` is empty, does not parse, holds several statements or is not a query.
    """
    score = component_score(sql, dialect)
    for threshold, level in zip(COMPONENT_THRESHOLDS, COMPONENT_LEVELS):
        if score <= threshold:
            return level
    return COMPONENT_LEVELS[-1]


def execution_difficulty(successes: int, attempts: int) -> str:
    """DataFlow's execution difficulty from how often the generators reproduced the SQL's result.

    DataFlow's success-count thresholds ``[2, 5, 9]`` out of 10 generations (paper 000, section
    4.3.2) are scaled to ``attempts``: ``successes / attempts`` <= 0.2 is extra, <= 0.5 hard,
    <= 0.9 medium, above easy. With 10 attempts this is exactly DataFlow's table. The comparison
    is done in integers (``successes * 10 <= threshold * attempts``), so no rounding creeps in.

    Args:
        successes: runs whose result matched the record's SQL result (0..attempts).
        attempts: runs made (>= 1).

    Returns:
        One of :data:`EXECUTION_LEVELS`.

    Raises:
        InputError: ``attempts`` < 1 or ``successes`` outside ``0..attempts`` (or not integers).
    """
    if isinstance(successes, bool) or isinstance(attempts, bool) or not (
        isinstance(successes, int) and isinstance(attempts, int)
    ):
        raise InputError(f"successes and attempts must be integers, got {successes!r} and {attempts!r}")
    if attempts < 1:
        raise InputError(f"execution difficulty needs at least one attempt, got {attempts}")
    if not 0 <= successes <= attempts:
        raise InputError(f"successes must be between 0 and {attempts}, got {successes}")
    for threshold, level in EXECUTION_THRESHOLDS:
        if successes * _EXECUTION_OUT_OF <= threshold * attempts:
            return level
    return "easy"
