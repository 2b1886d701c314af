"""ICL generator: the zero-shot generator's prompt plus few-shot examples.

XiYan-SQL's ICL SQL generator (paper 003, section 5.2) shows the model examples chosen by
question-skeleton similarity. Examples of the asked database itself (its example memory,
:mod:`quorumsql.agents.own_examples`) come without any schema, since the asked schema is
already in the prompt; examples of other databases (:mod:`quorumsql.agents.icl_pool`) come
each with the minimal schema its SQL needs. The system message is the zero-shot generator's, word for word
(:data:`quorumsql.agents.generator.SYSTEM_PROMPT`), and the user message starts with the same
``【Schema】`` block, so that the prompt cache (llama.cpp's slot cache, hosted prefix caches)
serves instructions and schema once for the zero-shot and the ICL candidates of a question;
the examples follow the schema, and the evidence and the question come last
(DESIGN.md: instructions, schema, examples, then the question).

With no examples the prompt *is* the zero-shot prompt (:func:`quorumsql.agents.generator.build_messages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from quorumsql.agents.generator import DIALECT_NAMES, SYSTEM_PROMPT, USER_PROMPT, Generation, build_messages, complete_sql

__all__ = ["EXAMPLES_HEADER", "OWN_EXAMPLES_HEADER", "IclExample", "build_icl_messages", "format_examples",
           "generate_icl"]

EXAMPLES_HEADER = """【Examples】
Questions about other databases, each with the tables it uses and the {dialect_name} query that \
answers it. Follow how they write queries; take tables and columns only from the schema above."""

OWN_EXAMPLES_HEADER = """【Examples】
Earlier questions about this same database, each with the {dialect_name} query that answers it. \
Reuse their tables, joins and values where they fit the question below."""

EXAMPLE_TEMPLATE = """Example {number}
{schema}Question: {question}{evidence}
```sql
{sql}
```"""


@dataclass(frozen=True)
class IclExample:
    """One example as the prompt shows it.

    Attributes:
        question: the example's question.
        sql: the SQL that answers it.
        schema: its minimal schema (the tables and columns the SQL uses), as text; "" for an
            example of the asked database (shown without a schema).
        evidence: its external knowledge ("" when none).
        same_database: the example is about the asked database (from its example memory).
    """

    question: str
    sql: str
    schema: str = ""
    evidence: str = ""
    same_database: bool = False


def format_examples(examples: Sequence[IclExample], dialect: str = "sqlite") -> str:
    """The ``【Examples】`` block: a header, then each example's schema (if any), question and SQL.

    The header says the examples are about this database when all of them are
    (:attr:`IclExample.same_database`), else that they are about other databases.
    """
    name = DIALECT_NAMES.get(dialect, dialect)
    own = bool(examples) and all(ex.same_database for ex in examples)
    blocks = [(OWN_EXAMPLES_HEADER if own else EXAMPLES_HEADER).format(dialect_name=name)]
    for i, ex in enumerate(examples, start=1):
        blocks.append(EXAMPLE_TEMPLATE.format(
            number=i, schema=f"{ex.schema.strip()}\n" if ex.schema.strip() else "", question=ex.question.strip(),
            evidence=f"\nEvidence: {ex.evidence.strip()}" if ex.evidence.strip() else "",
            sql=" ".join(ex.sql.split()),  # Spider's SQL pads operators with double spaces
        ))
    return "\n\n".join(blocks)


def build_icl_messages(question: str, schema_text: str, examples: Sequence[IclExample], *,
                       evidence: str | None = None, dialect: str = "sqlite") -> list[BaseMessage]:
    """The ICL prompt: zero-shot system message; schema, examples, evidence, question.

    Returns:
        ``[SystemMessage, HumanMessage]``; exactly :func:`~quorumsql.agents.generator.build_messages`
        when ``examples`` is empty.
    """
    if not examples:
        return build_messages(question, schema_text, evidence=evidence, dialect=dialect)
    name = DIALECT_NAMES.get(dialect, dialect)
    schema_part, rest = USER_PROMPT.split("\n\n", 1)  # "【Schema】\n{schema}" | evidence and question
    user = "\n\n".join([
        schema_part.format(schema=schema_text),
        format_examples(examples, dialect),
        rest.format(evidence=(evidence or "").strip() or "None", question=question.strip()),
    ])
    return [SystemMessage(SYSTEM_PROMPT.format(dialect_name=name)), HumanMessage(user)]


def generate_icl(
    llm: BaseChatModel,
    question: str,
    schema_text: str,
    examples: Sequence[IclExample],
    *,
    evidence: str | None = None,
    dialect: str = "sqlite",
    temperature: float = 0.0,
    max_tokens: int = 384,
    seed: int | None = None,
) -> Generation:
    """Ask ``llm`` for one SQL query answering ``question``, shown ``examples`` first.

    Args:
        llm: chat model.
        question: the user's question.
        schema_text: rendered schema of the asked database (M-Schema or DDL), possibly linked.
        examples: few-shot examples, of the asked database or of others (at most 5 is
            XiYan-SQL's cap; the caller chooses them); empty gives the zero-shot prompt.
        evidence: external knowledge, optional.
        dialect: sqlglot dialect of the target database.
        temperature: sampling temperature (0 = greedy).
        max_tokens: completion budget (tokens).
        seed: sampling seed sent to the endpoint.

    Returns:
        :class:`~quorumsql.agents.generator.Generation`: the extracted SQL (or None), the raw
        reply, the conversation (continued by the refiner) and the cost.

    Raises:
        ModelError: the model endpoint failed.
    """
    messages = build_icl_messages(question, schema_text, examples, evidence=evidence, dialect=dialect)
    return complete_sql(llm, messages, temperature=temperature, max_tokens=max_tokens, seed=seed)
