"""Column selector: the model keeps the columns of a linked schema that the question needs.

XiYan-SQL's column selector (paper 003, section 4): the retrieved schema is shown as M-Schema,
and the model, prompted with an example, names the columns needed to answer the question. The
reply is a JSON object ``{"table": ["column", ...]}``; names the schema does not hold are
ignored. The selector only narrows: it never adds a column outside the schema it was shown,
and when its reply is unusable or empty the linked schema is kept as it was.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from quorumsql.agents.generator import USER_PROMPT as GENERATOR_USER_PROMPT
from quorumsql.llm import Usage, invoke

SYSTEM_PROMPT = """You choose the database columns needed to answer a question.
You see a schema in M-Schema form and a question. Keep every column the SQL answer would select, filter, join, group or sort on; drop the rest.
Reply with one JSON object mapping each needed table to its needed columns, and nothing else.

Example schema:
# Table: employee
[
(emp_id:INTEGER, Primary Key, Examples: [1, 2]),
(name:TEXT, Examples: [Ana Silva, Li Wei]),
(office_id:INTEGER, Examples: [3, 7]),
(salary:REAL, Examples: [52000.0, 61000.0]),
(hired:DATE, Examples: [2019-04-01])
]
# Table: office
[
(office_id:INTEGER, Primary Key, Examples: [3, 7]),
(city:TEXT, Examples: [Lisbon, Porto]),
(floor:INTEGER, Examples: [2, 5])
]
Example question: Which employees in the Lisbon office earn more than 50000?
{"employee": ["name", "office_id", "salary"], "office": ["office_id", "city"]}"""

# The same layout as the generator's prompt: schema, evidence, question.
USER_PROMPT = GENERATOR_USER_PROMPT


class ColumnSelection(BaseModel):
    """Output of the column selector.

    Attributes:
        selection: ``{table: [columns]}`` kept, real names, a subset of the input (the input
            itself when the reply was unusable).
        kept_all: True when the reply could not be used and nothing was dropped.
        raw: the model's reply.
        usage: cost of the call.
    """

    selection: dict[str, list[str]] = Field(default_factory=dict)
    kept_all: bool = False
    raw: str = ""
    usage: Usage = Field(default_factory=Usage)


def build_messages(schema_text: str, question: str, evidence: str | None = None) -> list[BaseMessage]:
    """The selector prompt: instructions and example first, then schema, evidence, question."""
    return [
        SystemMessage(SYSTEM_PROMPT),
        HumanMessage(USER_PROMPT.format(
            schema=schema_text, evidence=(evidence or "").strip() or "None", question=question.strip()
        )),
    ]


def parse_selection(text: str, available: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The ``{table: [columns]}`` object in a reply, restricted to ``available`` (case-insensitive).

    Accepts a JSON or Python dict anywhere in the text (e.g. inside a code fence); a value may
    be a list of names or a single name. Unknown tables and columns are dropped.

    Returns:
        Real names in ``available``'s order; empty when nothing usable was found.
    """
    data = None
    for match in re.finditer(r"\{.*\}", text or "", re.S):
        for loader in (json.loads, ast.literal_eval):
            try:
                value = loader(match.group(0))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict):
                data = value
                break
        if data is not None:
            break
    if not data:
        return {}
    tables = {t.lower(): t for t in available}
    out: dict[str, list[str]] = {}
    for key, cols in data.items():
        table = tables.get(str(key).lower().strip())
        if table is None:
            continue
        names = [cols] if isinstance(cols, str) else list(cols) if isinstance(cols, (list, tuple)) else []
        wanted = {str(c).lower().strip().split(".")[-1] for c in names}
        kept = [c for c in available[table] if c.lower() in wanted]
        if kept:
            out[table] = kept
    return {t: out[t] for t in available if t in out}


def select_columns(
    llm: BaseChatModel,
    question: str,
    schema_text: str,
    available: Mapping[str, Sequence[str]],
    *,
    evidence: str | None = None,
    max_tokens: int = 256,
) -> ColumnSelection:
    """Ask ``llm`` which columns of the linked schema the question needs.

    Args:
        llm: chat model (one greedy call).
        question: the user's question.
        schema_text: M-Schema of the linked schema.
        available: ``{table: [columns]}`` shown in ``schema_text``.
        evidence: external knowledge, optional.
        max_tokens: completion budget.

    Returns:
        The kept columns (``available`` itself with ``kept_all`` when the reply is unusable).

    Raises:
        ModelError: the model endpoint failed.
    """
    text, usage = invoke(llm, build_messages(schema_text, question, evidence), temperature=0.0, max_tokens=max_tokens)
    chosen = parse_selection(text, available)
    if not chosen:
        return ColumnSelection(selection={t: list(c) for t, c in available.items()}, kept_all=True, raw=text, usage=usage)
    return ColumnSelection(selection=chosen, raw=text, usage=usage)
