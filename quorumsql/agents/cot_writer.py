"""Chain-of-thought writing: step-by-step reasoning from a question to its SQL.

DataFlow's chain-of-thought generator (paper 000, section 4.2.5) gives each training pair a
reasoning text that walks from the question and schema to the query and ends with the query in a
``sql`` block. The model sees the reference SQL, so the reasoning explains a known answer; the
caller checks that the SQL the text ends with is the record's SQL (same result, or same
:func:`~quorumsql.agents.sql_text.normalize_sql` form) and asks again or drops the CoT when it is
not, as DataFlow's retries do.
"""

from __future__ import annotations

import re

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from quorumsql.agents.generator import DIALECT_NAMES
from quorumsql.agents.sql_text import extract_sql
from quorumsql.errors import InputError
from quorumsql.llm import Usage, invoke

COT_SYSTEM = """You teach how to turn a question into a {dialect_name} query. Given a database schema, a \
question and the correct query, explain step by step how to reach that query: which tables and columns \
the question refers to, how the tables are joined, which filters, grouping, ordering and limits it needs, \
and what the query returns.
Rules:
- Keep it short: a few numbered steps.
- End with the final query, exactly as given, in a ```sql block, and write nothing after it."""

COT_USER = """【Schema】
{schema}

【Correct query】
{sql}

【Evidence】
{evidence}

【Question】
{question}"""

#: completion budget of one chain of thought
COT_MAX_TOKENS = 640

_FENCED = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|$)", re.S)
_SQL_TAGS = {"", "sql", "sqlite", "mysql", "postgresql", "postgres", "psql", "duckdb"}


class ChainOfThought(BaseModel):
    """A reasoning text for one (question, SQL) pair.

    Attributes:
        text: the model's reply, stripped.
        sql: the SQL of the last ``sql`` block, which the text ends with; None when the reply
            had no SQL block.
        usage: cost of the call.
    """

    text: str
    sql: str | None
    usage: Usage = Field(default_factory=Usage)


def split_final_sql(text: str) -> tuple[str, str | None]:
    """The chain of thought cut to end at its last SQL block, and that block's SQL.

    The last fenced block tagged ``sql`` (or a SQL dialect), or untagged, is the final query; any
    text after it (a closing remark, which small models like to add) is dropped so that the
    reasoning ends in the SQL. An unterminated block (the model ran out of tokens) still counts.

    Returns:
        ``(text, sql)``; without such a block, ``(text stripped, None)``.
    """
    text = (text or "").strip()
    last, sql = None, None
    for m in reversed(list(_FENCED.finditer(text))):
        if m.group(1).lower() in _SQL_TAGS and m.group(2).strip():
            sql = extract_sql(m.group(0))
            if sql is not None:
                last = m
                break
    if last is None:
        return text, None
    kept = text[: last.end()]
    if not kept.rstrip().endswith("```"):
        kept = kept.rstrip() + "\n```"
    return kept, sql


def write_cot(
    llm: BaseChatModel,
    question: str,
    sql: str,
    schema_text: str,
    *,
    evidence: str = "",
    dialect: str = "sqlite",
    temperature: float = 0.3,
) -> ChainOfThought:
    """Write step-by-step reasoning from ``question`` to ``sql``, ending in the SQL.

    DataFlow's chain-of-thought generator (paper 000, section 4.2.5), prompt :data:`COT_SYSTEM`.

    Args:
        llm: chat model (DataFlow suggests the strongest one available for this step).
        question: the question.
        sql: the record's SQL, which the reasoning must arrive at.
        schema_text: M-Schema rendering of the database.
        evidence: outside knowledge that goes with the question.
        dialect: sqlglot dialect of the database (named in the instructions).
        temperature: sampling temperature.

    Returns:
        A :class:`ChainOfThought` whose text ends with its final SQL block (anything the model
        wrote after that block is cut); ``sql`` is None when the reply had no SQL block (the
        caller then retries or drops it). Never raises on a malformed reply.

    Raises:
        InputError: ``question`` or ``sql`` is blank.
        ModelError: the model endpoint failed.
    """
    if not (question or "").strip():
        raise InputError("write_cot needs a question, got an empty string")
    if not (sql or "").strip():
        raise InputError("write_cot needs a SQL query, got an empty string")
    messages = [
        SystemMessage(COT_SYSTEM.format(dialect_name=DIALECT_NAMES.get(dialect, dialect))),
        HumanMessage(COT_USER.format(schema=schema_text, sql=sql.strip(),
                                     evidence=(evidence or "").strip() or "None", question=question.strip())),
    ]
    text, usage = invoke(llm, messages, temperature=temperature, max_tokens=COT_MAX_TOKENS)
    kept, final = split_final_sql(text)
    return ChainOfThought(text=kept, sql=final, usage=usage)
