"""LLM judge: SQLord's GPT-Judge QSE and SSE modes (paper 002, section 2.3).

* **QSE** (Query-SQL Evaluation): does the predicted SQL answer the question? The judge sees
  the schema (and evidence) as context: ``QSE = LLMJudge(q, s_gen, d_q)``. Usable without gold.
* **SSE** (SQL-SQL Evaluation): is the predicted SQL equivalent to the gold SQL in structure and
  meaning (``sales > 99`` vs ``sales >= 100`` count as equal on integers)? Usable without a
  database: ``SSE = LLMJudge(s_gen, s_gold)``.

The third mode, EXE, is execution accuracy and lives in :mod:`quorumsql.benchmarks.evaluators`.
Judge scores are reported beside EX, never instead of it. Each verdict is 1 (consistent) or 0;
the judge replies with a short reason and a last line ``VERDICT: YES`` or ``VERDICT: NO``.
"""

from __future__ import annotations

import re

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from quorumsql.agents.sql_text import normalize_sql
from quorumsql.llm import Usage, invoke

QSE_SYSTEM = """You are a strict reviewer of SQL queries. Given a database schema, a question and a SQL \
query, decide whether the query answers the question exactly: the right tables, joins, filters, \
grouping, ordering and returned columns, with nothing missing and nothing extra.
Reply with one sentence of reasoning, then a last line that is exactly `VERDICT: YES` or `VERDICT: NO`."""

QSE_USER = """【Schema】
{schema}

【Evidence】
{evidence}

【Question】
{question}

【SQL】
{sql}"""

SSE_SYSTEM = """You are a strict reviewer of SQL queries. Decide whether two SQL queries are \
semantically equivalent: on any database content they return the same rows and columns. \
Differences in aliases, formatting, join order or equivalent conditions (e.g. `x > 99` and \
`x >= 100` on integers) do not matter; different columns, filters, grouping or ordering do.
Reply with one sentence of reasoning, then a last line that is exactly `VERDICT: YES` or `VERDICT: NO`."""

SSE_USER = """【Schema】
{schema}

【SQL A (reference)】
{gold}

【SQL B (candidate)】
{sql}"""

_VERDICT = re.compile(r"VERDICT\s*[:：]\s*\**\s*(YES|NO|TRUE|FALSE|CORRECT|INCORRECT)", re.I)
_LOOSE = re.compile(r"\b(YES|NO)\b", re.I)


class Verdict(BaseModel):
    """One judge decision.

    Attributes:
        score: 1 (consistent / equivalent), 0 (not), None (the reply had no verdict).
        reason: the judge's reply without the verdict line.
        usage: cost of the call.
    """

    score: int | None
    reason: str = ""
    usage: Usage = Field(default_factory=Usage)


def parse_verdict(text: str) -> int | None:
    """1 / 0 from a judge reply (last ``VERDICT: YES|NO``; else the last bare yes/no), or None."""
    found = _VERDICT.findall(text or "")
    if found:
        return int(found[-1].upper() in ("YES", "TRUE", "CORRECT"))
    loose = _LOOSE.findall(text or "")
    if loose:
        return int(loose[-1].upper() == "YES")
    return None


def _reason(text: str) -> str:
    return _VERDICT.sub("", text or "").strip()[:500]


class Judge:
    """SQLord's GPT-Judge with any chat model.

    Args:
        llm: the judge model (e.g. ``get_chat_model(settings, role="judge")``).
        max_tokens: completion budget per verdict.
    """

    def __init__(self, llm: BaseChatModel, *, max_tokens: int = 160) -> None:
        self.llm = llm
        self.max_tokens = max_tokens

    def qse(self, question: str, sql: str | None, schema_text: str, *, evidence: str | None = None) -> Verdict:
        """Query-SQL evaluation: does ``sql`` answer ``question`` over ``schema_text``?

        A missing SQL scores 0 without a model call.

        Raises:
            ModelError: the judge endpoint failed.
        """
        if not sql:
            return Verdict(score=0, reason="no SQL")
        messages = [
            SystemMessage(QSE_SYSTEM),
            HumanMessage(QSE_USER.format(
                schema=schema_text, evidence=(evidence or "").strip() or "None",
                question=question.strip(), sql=sql.strip(),
            )),
        ]
        text, usage = invoke(self.llm, messages, temperature=0.0, max_tokens=self.max_tokens)
        return Verdict(score=parse_verdict(text), reason=_reason(text), usage=usage)

    def sse(self, sql: str | None, gold_sql: str, *, schema_text: str = "", dialect: str | None = None) -> Verdict:
        """SQL-SQL evaluation: is ``sql`` equivalent to ``gold_sql``?

        A missing SQL scores 0 and an identical one (same
        :func:`~quorumsql.agents.sql_text.normalize_sql` form in ``dialect``) 1, without a
        model call.

        Raises:
            ModelError: the judge endpoint failed.
        """
        if not sql:
            return Verdict(score=0, reason="no SQL")
        if normalize_sql(sql, dialect) == normalize_sql(gold_sql, dialect):
            return Verdict(score=1, reason="identical to the reference")
        messages = [
            SystemMessage(SSE_SYSTEM),
            HumanMessage(SSE_USER.format(schema=schema_text or "(not given)", gold=gold_sql.strip(), sql=sql.strip())),
        ]
        text, usage = invoke(self.llm, messages, temperature=0.0, max_tokens=self.max_tokens)
        return Verdict(score=parse_verdict(text), reason=_reason(text), usage=usage)
