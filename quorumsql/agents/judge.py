"""The LLM judge: SQLord's GPT-Judge QSE and SSE modes, and the synthesis consistency judge.

The benchmark uses :class:`Judge` (QSE / SSE verdicts); the synthesis pipeline uses
:func:`judge_consistency` (a graded 0..1 score). ``quorumsql.benchmarks.judge`` re-exports the
benchmark's names from here.

SQLord's GPT-Judge (paper 002, section 2.3):

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
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from quorumsql.agents.generator import DIALECT_NAMES
from quorumsql.agents.sql_text import normalize_sql
from quorumsql.errors import InputError
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



# ------------------------------------------------------------------ synthesis consistency judge
CONSISTENCY_SYSTEM = """You review question / SQL pairs written for training a Text-to-SQL model. Given a \
database schema, a {dialect_name} query with the first rows it returns, and a question (with evidence, when \
given), rate how exactly the SQL answers the question:
5 = it answers the question exactly: same tables, filters, grouping, ordering and returned columns.
4 = it answers the question; the only differences are harmless (column order, an extra id column).
3 = the question is vague, but one reasonable reading of it is what the SQL computes.
2 = the SQL misses or adds a filter, column, grouping, ordering or limit that the question implies.
1 = the SQL answers a different question, or the question asks for something the SQL does not return.
Reply with `SCORE: n` (n from 1 to 5) on the first line, then one short sentence saying why."""

CONSISTENCY_USER = """【Schema】
{schema}

【SQL】
{sql}

【Result preview】
{preview}

【Evidence】
{evidence}

【Question】
{question}"""

#: completion budget of one consistency rating (the score line and a sentence); asked for after the
#: reasoning, the embedded 1.5B model reasoned past 160 tokens and never wrote the score
CONSISTENCY_MAX_TOKENS = 80
#: the rating scale the prompt asks for; a rating r maps to ``(r - 1) / 4``
RATING_MIN, RATING_MAX = 1, 5
_PREVIEW_ROWS = 5
_PREVIEW_CELL = 40

_SCORE = re.compile(r"SCORE\s*[:：=]\s*\**\s*(-?\d+(?:\.\d+)?)", re.I)
_STRICT_VERDICT = re.compile(r"VERDICT\s*[:：]\s*\**\s*(YES|NO)\b", re.I)


class Judgement(BaseModel):
    """The consistency judge's decision on one (question, SQL) pair.

    Attributes:
        score: 0..1; the model's 1..5 rating mapped by ``(rating - 1) / 4`` (0.0 when the reply
            had no usable rating, or nothing was judged).
        consistent: ``score >= threshold``.
        reason: the judge's reasoning without the score line, or why no rating was read.
        usage: cost of the call (zero when no call was made).
    """

    score: float
    consistent: bool
    reason: str = ""
    usage: Usage = Field(default_factory=Usage)


def parse_rating(text: str) -> float | None:
    """The 0..1 score in a consistency reply, or None when it holds no usable rating.

    Reads the first ``SCORE: n`` (the prompt asks for it on the first line; ``n`` from 1 to 5,
    decimals allowed) and maps it by ``(n - 1) / 4``; a rating outside 1..5 counts as no rating.
    A reply in the benchmark judge's shape (``VERDICT: YES`` / ``VERDICT: NO``) gives 1.0 / 0.0.
    """
    found = _SCORE.findall(text or "")
    if found:
        rating = float(found[0])
        if RATING_MIN <= rating <= RATING_MAX:
            return (rating - RATING_MIN) / (RATING_MAX - RATING_MIN)
        return None
    verdict = _STRICT_VERDICT.findall(text or "")
    if verdict:
        return 1.0 if verdict[-1].upper() == "YES" else 0.0
    return None


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW_CELL else text[: _PREVIEW_CELL - 3] + "..."


def format_preview(columns: Sequence[str] | None, preview: Sequence[Sequence[Any]] | None) -> str:
    """A short text table of a result: the column names, then at most 5 rows, cells cut at 40 characters."""
    if columns is None and preview is None:
        return "(not given)"
    lines = []
    if columns:
        lines.append(" | ".join(str(c) for c in columns))
    rows = list(preview or [])
    lines.extend(" | ".join(_cell(v) for v in row) for row in rows[:_PREVIEW_ROWS])
    if not rows:
        lines.append("(no rows)")
    elif len(rows) > _PREVIEW_ROWS:
        lines.append(f"... ({len(rows) - _PREVIEW_ROWS} more rows)")
    return "\n".join(lines)


def judge_consistency(
    llm: BaseChatModel,
    question: str,
    sql: str,
    schema_text: str,
    *,
    evidence: str = "",
    columns: Sequence[str] | None = None,
    preview: Sequence[Sequence[Any]] | None = None,
    dialect: str = "sqlite",
    threshold: float = 0.5,
) -> Judgement:
    """Rate how well ``sql`` answers ``question`` over ``schema_text``: the synthesis consistency filter.

    DataFlow's consistency filter (paper 000, section 4.1.2) checks question vs SQL vs schema;
    SQLord's QSE mode (paper 002, section 2.3) is the same check with a yes/no verdict. Here the
    judge rates the pair from 1 to 5 (prompt :data:`CONSISTENCY_SYSTEM`) so that a threshold can
    be set from reviewed data; the rating ``r`` becomes the score ``(r - 1) / 4``: 1 -> 0.0,
    3 -> 0.5, 5 -> 1.0. With the default threshold 0.5 a pair needs a rating of 3 or more.

    The score is only as good as the judge model: on 8 concert_singer dev questions, each judged
    with its gold SQL and with another question's gold SQL, the embedded 1.5B model rated 15 of
    the 16 pairs 5 (mean score 1.0 for matching pairs, 0.97 for mismatched ones). With that
    model the generators' agreement is the signal that separates pairs
    (:func:`quorumsql.agents.active_selection.uncertainty` ranks the contradictions first), and
    the reviewed CSV is what sets the threshold; give the ``judge`` role a stronger model.

    Args:
        llm: the judge model.
        question: the synthesized question.
        sql: the SQL it should match.
        schema_text: M-Schema rendering of the database.
        evidence: outside knowledge written with the question, if any.
        columns: the SQL's result column names, shown to the judge.
        preview: the first rows of the SQL's result (at most 5 are shown).
        dialect: sqlglot dialect of the database (named in the instructions).
        threshold: the score a consistent pair reaches, 0..1.

    Returns:
        A :class:`Judgement`. A blank question or SQL scores 0.0 without a model call; a reply
        without a usable ``SCORE: n`` line scores 0.0, ``consistent=False``, and the reason says so.

    Raises:
        InputError: ``threshold`` is outside 0..1.
        ModelError: the judge endpoint failed.
    """
    if not isinstance(threshold, (int, float)) or not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"judge threshold must be between 0 and 1, got {threshold!r}")
    if not (question or "").strip():
        return Judgement(score=0.0, consistent=False, reason="no question")
    if not (sql or "").strip():
        return Judgement(score=0.0, consistent=False, reason="no SQL")
    messages = [
        SystemMessage(CONSISTENCY_SYSTEM.format(dialect_name=DIALECT_NAMES.get(dialect, dialect))),
        HumanMessage(CONSISTENCY_USER.format(
            schema=schema_text, sql=sql.strip(), preview=format_preview(columns, preview),
            evidence=(evidence or "").strip() or "None", question=question.strip(),
        )),
    ]
    text, usage = invoke(llm, messages, temperature=0.0, max_tokens=CONSISTENCY_MAX_TOKENS)
    score = parse_rating(text)
    if score is None:
        snippet = " ".join((text or "").split())[:200]
        return Judgement(score=0.0, consistent=False, usage=usage,
                         reason=f"unparseable judge reply (no SCORE: 1-5 line): {snippet!r}")
    reason = _STRICT_VERDICT.sub("", _SCORE.sub("", text)).strip(" \t\n`*")[:500] or "(no reasoning given)"
    return Judgement(score=score, consistent=score >= float(threshold), reason=reason, usage=usage)
