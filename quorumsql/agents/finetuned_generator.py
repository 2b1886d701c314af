"""Fine-tuned-format generator: the prompt layout the XiYanSQL-QwenCoder models were trained on.

XiYan-SQL's fine-tuned generators (paper 003, section 5.1) are served as XiYanSQL-QwenCoder
models (e.g. a vLLM server with XiYanSQL-QwenCoder-7B); their model card documents the prompt
they expect, reproduced here as a layout: a single user message that names the SQL dialect, then
the question (【用户问题】), the schema in M-Schema (【数据库schema】), the evidence
(【参考信息】) and the question again, ending with an opened ```` ```sql ```` block that the model
completes. The instruction sentence is our own.

Calls go to the ``finetuned`` model role, which falls back to the generator's endpoint (see
:class:`quorumsql.llm.ChatModels`). With the same general model as the other generators it is
simply a second prompt style, one more source of diverse candidates.
"""

from __future__ import annotations

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from quorumsql.agents.generator import DIALECT_NAMES, Generation, complete_sql
from quorumsql.agents.sql_text import extract_sql

INSTRUCTION = (
    "You are a {dialect_name} expert. Read the database schema (【数据库schema】) and any reference "
    "information (【参考信息】) below, then write one {dialect_name} query that answers the user "
    "question (【用户问题】)."
)

TEMPLATE = """{instruction}
【用户问题】
{question}

【数据库schema】
{schema}

【参考信息】
{evidence}

【用户问题】
{question}

```sql"""


def build_messages(question: str, schema_text: str, *, evidence: str | None = None,
                   dialect: str = "sqlite") -> list[BaseMessage]:
    """The fine-tuned-format prompt: one user message ending with an opened ``sql`` block."""
    name = DIALECT_NAMES.get(dialect, dialect)
    return [HumanMessage(TEMPLATE.format(
        instruction=INSTRUCTION.format(dialect_name=name), question=question.strip(),
        schema=schema_text, evidence=(evidence or "").strip(),
    ))]


def sql_of_completion(text: str) -> str | None:
    """The SQL of a reply that continues an opened ``sql`` block (it may close it, or not).

    A model that starts a fence of its own, or answers in prose, is read like any reply.
    """
    body = text or ""
    if not body.lstrip().startswith("```"):
        body = "```sql\n" + body
        if "```" not in body[7:]:
            body += "\n```"
    return extract_sql(body)


def generate_finetuned(
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
    """Ask a (XiYanSQL-QwenCoder-style) model for one SQL query in its trained prompt format.

    Args:
        llm: chat model of the ``finetuned`` role.
        question: the user's question.
        schema_text: M-Schema (the format the models were trained on), possibly linked.
        evidence: external knowledge, optional.
        dialect: sqlglot dialect, named in the prompt (SQLite, MySQL, PostgreSQL).
        temperature: sampling temperature.
        max_tokens: completion budget.
        seed: sampling seed (reproducible sampled candidates).

    Returns:
        The extracted SQL (or None), the raw reply, the conversation (the reply recorded as a
        complete ``sql`` block, so a refiner can continue it) and the cost.

    Raises:
        ModelError: the model endpoint failed.
    """
    messages = build_messages(question, schema_text, evidence=evidence, dialect=dialect)
    gen = complete_sql(llm, messages, temperature=temperature, max_tokens=max_tokens, seed=seed,
                       parse=sql_of_completion)
    if gen.sql:  # record the reply as a whole sql block, so a refiner can continue the conversation
        gen.messages[-1] = AIMessage(f"```sql\n{gen.sql}\n```")
    return gen
