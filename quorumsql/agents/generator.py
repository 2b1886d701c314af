"""Candidate generator: one model call from (schema, evidence, question) to SQL.

The prompt follows the layout of XiYan-SQL's ICL generator (paper 003, section 2.3) with the
stable parts first so that prompt caches are reused across questions on the same database:
instructions (system), then the schema, then the evidence and the question. Small models are
asked for the SQL alone in a ``sql`` block (see DESIGN.md: allowing explanations made the 1.5B
model ramble until its token limit on 29 of 100 questions).
"""

from __future__ import annotations

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from quorumsql.agents.sql_text import extract_sql
from quorumsql.llm import Usage, invoke

DIALECT_NAMES = {"sqlite": "SQLite", "mysql": "MySQL", "postgres": "PostgreSQL", "duckdb": "DuckDB"}

SYSTEM_PROMPT = """You are an expert {dialect_name} data analyst. Given a database schema and a question, \
write one {dialect_name} query that answers the question.
Rules:
- Use only the tables and columns listed in the schema; join tables through the foreign keys.
- Select only the columns the question asks for, in the order it asks for them.
- Use the evidence, when given, to map words of the question to columns and values.
- Reply with only the SQL in a ```sql block, no explanation before or after it."""

USER_PROMPT = """【Schema】
{schema}

【Evidence】
{evidence}

【Question】
{question}"""


class Generation(BaseModel):
    """Output of one generator call.

    Attributes:
        sql: extracted SQL, None if the reply had none.
        raw: the model's reply.
        messages: the conversation so far (prompt + reply), reused by the refiner.
        usage: cost of the call.
    """

    model_config = {"arbitrary_types_allowed": True}

    sql: str | None
    raw: str
    messages: list[BaseMessage]
    usage: Usage


def build_messages(question: str, schema_text: str, *, evidence: str | None = None, dialect: str = "sqlite") -> list[BaseMessage]:
    """The generator prompt: system instructions, then schema, evidence and question."""
    name = DIALECT_NAMES.get(dialect, dialect)
    return [
        SystemMessage(SYSTEM_PROMPT.format(dialect_name=name)),
        HumanMessage(
            USER_PROMPT.format(
                schema=schema_text, evidence=(evidence or "").strip() or "None", question=question.strip()
            )
        ),
    ]


def generate_sql(
    llm: BaseChatModel,
    question: str,
    schema_text: str,
    *,
    evidence: str | None = None,
    dialect: str = "sqlite",
    temperature: float = 0.0,
    max_tokens: int = 384,
    seed: int | None = None,
) -> Generation:
    """Ask ``llm`` for one SQL query answering ``question`` over ``schema_text``.

    Args:
        llm: chat model.
        question: the user's question.
        schema_text: rendered schema (M-Schema or DDL), possibly linked.
        evidence: external knowledge (BIRD's evidence), optional.
        dialect: sqlglot dialect of the target database.
        temperature: sampling temperature (0 = greedy).
        max_tokens: completion budget.
        seed: sampling seed sent to the endpoint (reproducible sampled candidates).

    Returns:
        The extracted SQL (or None), the raw reply, the conversation and the cost.

    Raises:
        ModelError: the model endpoint failed.
    """
    messages = build_messages(question, schema_text, evidence=evidence, dialect=dialect)
    return complete_sql(llm, messages, temperature=temperature, max_tokens=max_tokens, seed=seed)


def complete_sql(
    llm: BaseChatModel,
    messages: list[BaseMessage],
    *,
    temperature: float = 0.0,
    max_tokens: int = 384,
    seed: int | None = None,
    parse=extract_sql,
) -> Generation:
    """One model call on a generator prompt, and the SQL read off its reply.

    The shared last step of every generator kind (zero-shot, ICL, fine-tuned format).

    Args:
        llm: chat model.
        messages: the prompt.
        temperature: sampling temperature (0 = greedy).
        max_tokens: completion budget.
        seed: sampling seed sent to the endpoint (None for greedy calls).
        parse: ``reply -> SQL | None`` (default :func:`~quorumsql.agents.sql_text.extract_sql`).

    Returns:
        A :class:`Generation` whose conversation ends with the reply as the model wrote it.

    Raises:
        ModelError: the model endpoint failed.
    """
    options = {"seed": seed} if seed is not None else {}
    text, usage = invoke(llm, messages, temperature=temperature, max_tokens=max_tokens, **options)
    return Generation(sql=parse(text), raw=text, messages=[*messages, AIMessage(text)], usage=usage)
