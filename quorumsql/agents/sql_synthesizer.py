"""SQL synthesis from a database alone: new SQL at a complexity level, SQL variants, and questions first.

Three seeds of the synthesis subgraph that need no labelled data:

* :func:`synthesize_sql`: SQL written over the M-Schema at one of DataFlow's four complexity
  levels (DataFlow's SQL generator, paper 000, section 4.2.1; the levels are those of its
  Text-to-SQL synthesis prompts). Each call asks for one query in a ``sql`` block, because the
  small embedded model keeps to that shape far better than to "write N queries".
* :func:`vary_sql`: equivalent or closely related variants of a query, for diversity (DataFlow's
  SQL variation generator, section 4.2.2). Each call asks for one kind of change, cycling through
  :data:`VARIATION_KINDS`.
* :func:`questions_first`: ASASQL's forward path (paper 001, "Stage 1, Step 1"): questions written
  from the table and column descriptions alone, later answered by the inference generators.

Replies are parsed defensively: a reply with no SQL (or no ``QUESTION:`` line) contributes
nothing, duplicates (same :func:`~quorumsql.agents.sql_text.normalize_sql` form) are dropped, and
no reply raises. Prompts put the instructions and the schema first, the varying part last.
"""

from __future__ import annotations

import re

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from quorumsql.agents.generator import DIALECT_NAMES
from quorumsql.agents.sql_text import extract_sql, normalize_sql
from quorumsql.errors import InputError
from quorumsql.llm import Usage, invoke

COMPLEXITY_LEVELS = ("simple", "moderate", "complex", "highly complex")   # DataFlow Text2SQL

#: what each complexity level asks for (our wording of DataFlow's four levels)
COMPLEXITY_GUIDE = {
    "simple": "one table; at most one filter, one sort or one aggregate (COUNT, MAX, ...)",
    "moderate": "two tables joined on a foreign key, or one table with GROUP BY and an aggregate, "
                "with one or two filters",
    "complex": "several joined tables with filters, GROUP BY with HAVING, or ORDER BY with LIMIT; "
               "it may use one subquery",
    "highly complex": "nested subqueries, a set operation (UNION / INTERSECT / EXCEPT) or a WITH clause, "
                      "combined with joins, grouping and aggregates",
}

SYNTH_SYSTEM = """You are an expert {dialect_name} data analyst who writes realistic queries a user of this \
database would ask for.
Rules:
- Use only the tables and columns listed in the schema; join tables through the foreign keys.
- Use values shown in the examples when a filter needs a value.
- Write one read-only SELECT query of the requested complexity.
- Reply with only the SQL in a ```sql block, no explanation before or after it."""

SYNTH_USER = """【Schema】
{schema}

【Complexity】
{complexity}: {guide}"""

VARIATION_KINDS = (
    ("an equivalent query written differently (for example a JOIN instead of a subquery, or the reverse), "
     "returning the same rows"),
    "the same query with a different filter value or comparison",
    "the same query returning different but related columns, or a different aggregate",
    "the same query with one clause added or removed (ordering, a limit, grouping or a filter)",
)

VARY_SYSTEM = """You are an expert {dialect_name} data analyst. Given a database schema and a SQL query, \
write one new query that is a variant of it.
Rules:
- Use only the tables and columns listed in the schema.
- The variant must differ from the given query and stay a read-only SELECT query.
- Reply with only the SQL in a ```sql block, no explanation before or after it."""

VARY_USER = """【Schema】
{schema}

【Query】
{sql}

【Variant wanted】
{kind}"""

QUESTIONS_SYSTEM = """You are a user of a database who asks questions about its data. Given the schema, \
with its table and column descriptions, write {n} different questions that this database can answer.
Rules:
- Each question must be answerable by one SQL query over the listed tables and columns.
- Mix simple questions with questions that need joins, grouping or ranking.
- Write each question on its own line as `QUESTION: <the question>`, and nothing else."""

QUESTIONS_USER = """【Schema】
{schema}"""

_QUESTION_LINE = re.compile(r"^\s*(?:[-*]\s*|\d+[.)]\s*)?\**QUESTION\s*\d*\**\s*[:：]\s*(.+?)\s*$", re.I | re.M)
_LISTED_QUESTION = re.compile(r"^\s*(?:[-*]|\d+[.)])\s+(.+\?)\s*$", re.M)
_LOOKS_LIKE_SQL = re.compile(r"(?i)\bSELECT\b.*\bFROM\b")


def _check_n(n: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"{what} must be a positive integer, got {n!r}")


def _dialect_name(dialect: str) -> str:
    return DIALECT_NAMES.get(dialect, dialect)


def _add_unique(found: list[str], seen: set[str], sql: str | None, dialect: str) -> None:
    if not sql:
        return
    key = normalize_sql(sql, dialect)
    if key and key not in seen:
        seen.add(key)
        found.append(sql)


def synthesize_sql(
    llm: BaseChatModel,
    schema_text: str,
    *,
    complexity: str,
    n: int = 1,
    dialect: str = "sqlite",
    temperature: float = 0.8,
    max_tokens: int = 512,
    seed: int | None = None,
) -> tuple[list[str], Usage]:
    """Write up to ``n`` new SQL queries over ``schema_text`` at one complexity level.

    DataFlow's SQL generator (paper 000, section 4.2.1) with its four complexity levels
    (:data:`COMPLEXITY_LEVELS`, described in :data:`COMPLEXITY_GUIDE`). One model call per query;
    call ``i`` is sampled with seed ``seed + i`` when ``seed`` is given, so a run is repeatable.
    Nothing is executed here: the execution filter downstream drops queries that fail, write or
    run too long (write statements are returned as written so that it can refuse them visibly).

    Args:
        llm: chat model.
        schema_text: M-Schema rendering of the database.
        complexity: one of :data:`COMPLEXITY_LEVELS`.
        n: number of model calls (queries asked for), >= 1.
        dialect: sqlglot dialect of the database.
        temperature: sampling temperature (diversity between calls).
        max_tokens: completion budget per call.
        seed: base sampling seed sent to the endpoint (None: unseeded).

    Returns:
        ``(queries, usage)``: the distinct queries found (replies without SQL and repeats of an
        earlier query give no entry, so there may be fewer than ``n``), and the cost of all calls.

    Raises:
        InputError: ``complexity`` is not a level, or ``n`` is not a positive integer.
        ModelError: the model endpoint failed.
    """
    if complexity not in COMPLEXITY_LEVELS:
        raise InputError(f"unknown complexity {complexity!r}; choose one of {', '.join(COMPLEXITY_LEVELS)}")
    _check_n(n, "n")
    messages = [
        SystemMessage(SYNTH_SYSTEM.format(dialect_name=_dialect_name(dialect))),
        HumanMessage(SYNTH_USER.format(schema=schema_text, complexity=complexity, guide=COMPLEXITY_GUIDE[complexity])),
    ]
    found: list[str] = []
    seen: set[str] = set()
    usage = Usage()
    for i in range(n):
        options = {"seed": seed + i} if seed is not None else {}
        text, u = invoke(llm, messages, temperature=temperature, max_tokens=max_tokens, **options)
        usage = usage + u
        _add_unique(found, seen, extract_sql(text), dialect)
    return found, usage


def vary_sql(
    llm: BaseChatModel,
    sql: str,
    schema_text: str,
    *,
    n: int = 2,
    dialect: str = "sqlite",
    temperature: float = 0.8,
    max_tokens: int = 512,
    seed: int | None = None,
) -> tuple[list[str], Usage]:
    """Write up to ``n`` variants of ``sql``: equivalent rewrites or closely related queries.

    DataFlow's SQL variation generator (paper 000, section 4.2.2). Call ``i`` asks for the kind
    ``VARIATION_KINDS[i % 4]`` (an equivalent rewrite, another filter value, other columns or
    aggregate, one clause added or removed), so that ``n`` variants differ in kind as well.

    Args:
        llm: chat model.
        sql: the query to vary.
        schema_text: M-Schema rendering of the database.
        n: number of model calls (variants asked for), >= 1.
        dialect: sqlglot dialect of the database.
        temperature: sampling temperature.
        max_tokens: completion budget per call.
        seed: base sampling seed; call ``i`` sends ``seed + i`` (None: unseeded).

    Returns:
        ``(variants, usage)``. The input itself (same :func:`normalize_sql` form), repeats and
        replies without SQL are left out, so there may be fewer than ``n`` variants.

    Raises:
        InputError: ``sql`` is blank, or ``n`` is not a positive integer.
        ModelError: the model endpoint failed.
    """
    if not (sql or "").strip():
        raise InputError("vary_sql needs a SQL query, got an empty string")
    _check_n(n, "n")
    system = SystemMessage(VARY_SYSTEM.format(dialect_name=_dialect_name(dialect)))
    found: list[str] = []
    seen = {normalize_sql(sql, dialect)}
    usage = Usage()
    for i in range(n):
        user = HumanMessage(VARY_USER.format(schema=schema_text, sql=sql.strip(), kind=VARIATION_KINDS[i % len(VARIATION_KINDS)]))
        options = {"seed": seed + i} if seed is not None else {}
        text, u = invoke(llm, [system, user], temperature=temperature, max_tokens=max_tokens, **options)
        usage = usage + u
        _add_unique(found, seen, extract_sql(text), dialect)
    return found, usage


def parse_questions(text: str) -> list[str]:
    """Questions in a reply: ``QUESTION: ...`` lines; without any, numbered or bulleted lines ending in ``?``.

    Lines that look like SQL are skipped; repeats (case and spacing ignored) are dropped.
    """
    found = [m.strip().strip("*").strip() for m in _QUESTION_LINE.findall(text or "")]
    if not found:
        found = [m.strip() for m in _LISTED_QUESTION.findall(text or "")]
    out: list[str] = []
    seen: set[str] = set()
    for q in found:
        key = " ".join(q.lower().split())
        if q and key not in seen and not _LOOKS_LIKE_SQL.search(q):
            seen.add(key)
            out.append(q)
    return out


def questions_first(
    llm: BaseChatModel,
    schema_text: str,
    *,
    n: int = 3,
    temperature: float = 0.8,
) -> tuple[list[str], Usage]:
    """Write up to ``n`` questions from the schema's table and column descriptions.

    ASASQL's forward path (paper 001, Stage 1 "Natural Query Generation"): questions come first,
    from the descriptions alone, and the inference generators then answer them. One model call
    asks for ``n`` questions, one ``QUESTION:`` line each (a short list is cheap to write; the
    schema is read once).

    Args:
        llm: chat model.
        schema_text: M-Schema rendering (its descriptions and examples are what the model sees).
        n: number of questions asked for, >= 1.
        temperature: sampling temperature.

    Returns:
        ``(questions, usage)``: at most ``n`` distinct questions (an empty list when the reply has
        none in the expected shape), and the cost of the call.

    Raises:
        InputError: ``n`` is not a positive integer.
        ModelError: the model endpoint failed.
    """
    _check_n(n, "n")
    messages = [SystemMessage(QUESTIONS_SYSTEM.format(n=n)), HumanMessage(QUESTIONS_USER.format(schema=schema_text))]
    text, usage = invoke(llm, messages, temperature=temperature, max_tokens=64 + 48 * n)
    return parse_questions(text)[:n], usage
