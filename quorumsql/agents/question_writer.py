"""Question writing (SQL -> question), and choosing among candidate questions.

SQLord's reverse data generation (paper 002, section 2.1) turns raw SQL into (question, SQL)
pairs; DataFlow's question generator (paper 000, section 4.2.3) writes several candidate
questions per query, each in a chosen style, with evidence where the query needs outside
knowledge, and keeps the candidate closest to the centroid of their embeddings: the reading the
candidates agree on, rather than one model's odd phrasing.

:func:`write_questions` makes one model call per candidate (its style goes in the prompt) and
asks for a fixed shape that a small model keeps to::

    QUESTION: <the question>
    EVIDENCE: <outside knowledge the question relies on, or none>

A reply without a ``QUESTION:`` line (and no single line ending in ``?``) gives no candidate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from quorumsql.agents.generator import DIALECT_NAMES
from quorumsql.agents.judge import format_preview
from quorumsql.errors import InputError
from quorumsql.llm import Usage, invoke

#: DataFlow's question styles (names after its question generator; descriptions in our words)
STYLE_GUIDE: dict[str, str] = {
    "formal": "a formal, precise question in complete sentences",
    "colloquial": "a casual question, the way someone would ask a colleague",
    "imperative": "a request phrased as a command (\"List ...\", \"Show ...\", \"Find ...\")",
    "interrogative": "a direct question starting with a question word (what, which, how many, ...)",
    "descriptive": "a question that first describes the situation or need, then asks",
    "concise": "the shortest clear question, with no extra words",
    "vague": "a loosely worded question that still has only one sensible answer",
    "metaphorical": "a question using a figure of speech for one idea, still clearly answerable",
    "conversational": "a question as the last turn of a short chat with a data assistant",
}
STYLES: tuple[str, ...] = tuple(STYLE_GUIDE)

WRITER_SYSTEM = """You write the natural-language question that a {dialect_name} query answers, for training \
a Text-to-SQL model.
Rules:
- The question must ask for exactly what the query returns: every filter, grouping, ordering and limit, \
and the returned columns, with nothing added.
- Use the words a user would use, not table or column names, and never write SQL.
- If the query relies on knowledge the question cannot state plainly (a code meaning, a formula, a \
threshold, a date format), write it as evidence; otherwise write `EVIDENCE: none`.
- Reply with exactly two lines:
QUESTION: <the question>
EVIDENCE: <one short sentence of outside knowledge, or none>"""

WRITER_USER = """【Schema】
{schema}

【Query】
{sql}

【Result preview】
{preview}

【Style】
{style}: {guide}"""

_LABEL = re.compile(r"^\s*[-*]?\s*\**\s*(QUESTION|EVIDENCE)\s*\**\s*[:：]\s*\**\s*(.*?)\s*\**\s*$", re.I)
_NO_EVIDENCE = {"", "none", "n/a", "na", "no", "-", "null", "nil", "(none)", "no evidence", "not needed"}
_LOOKS_LIKE_SQL = re.compile(r"(?i)\bSELECT\b.*\bFROM\b")


class QuestionDraft(BaseModel):
    """One candidate question for a SQL query.

    Attributes:
        question: the question text.
        evidence: outside knowledge the question relies on ("" when none).
        style: the style it was asked for (one of :data:`STYLES`).
    """

    question: str
    evidence: str = ""
    style: str


def _strip_label(value: str) -> str:
    """``value`` without a repeated label (``EVIDENCE: EVIDENCE: none``) or markdown emphasis."""
    value = value.strip().strip("*").strip()
    while True:
        m = _LABEL.match(value)
        if not m:
            return value
        value = m.group(2).strip().strip("*").strip()


def parse_draft(text: str) -> tuple[str, str] | None:
    """``(question, evidence)`` from a writer reply, or None when it holds no question.

    Reads the ``QUESTION:`` and ``EVIDENCE:`` lines (markdown bold, list markers and a repeated
    label tolerated). A question may continue on the following unlabelled lines; evidence is its
    own line only (the embedded model tends to follow it with an explanation of the query).
    Without a ``QUESTION:`` line, a reply whose only non-empty line ends with ``?`` is taken as the
    question. A question that looks like SQL is refused. Evidence such as ``none`` / ``n/a``
    becomes "".
    """
    fields: dict[str, list[str]] = {}
    current: str | None = None
    for line in (text or "").splitlines():
        m = _LABEL.match(line)
        if m:
            label = m.group(1).lower()
            if label in fields:  # a second QUESTION: / EVIDENCE: starts another answer: keep the first
                current = None
                continue
            fields[label] = [_strip_label(m.group(2))]
            # evidence is one line: what follows it is the model explaining the query
            current = label if label == "question" else None
        elif current and line.strip() and not line.strip().startswith("```"):
            fields[current].append(line.strip())
        elif not line.strip():
            current = None
    question = " ".join(fields.get("question", [])).strip().strip("*").strip()
    if not question and "question" not in fields:
        lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
        if len(lines) == 1 and lines[0].endswith("?"):
            question = lines[0]
    if not question or _LOOKS_LIKE_SQL.search(question):
        return None
    evidence = " ".join(fields.get("evidence", [])).strip()
    if evidence.lower().strip(" .`*") in _NO_EVIDENCE:
        evidence = ""
    return question, evidence


def _styles_for(styles: Sequence[str] | None, n: int) -> list[str]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    chosen = list(styles) if styles is not None else list(STYLES)
    if not chosen:
        raise InputError("styles is empty; give at least one of " + ", ".join(STYLES))
    unknown = [s for s in chosen if s not in STYLE_GUIDE]
    if unknown:
        raise InputError(f"unknown question style(s) {unknown}; choose from {', '.join(STYLES)}")
    return [chosen[i % len(chosen)] for i in range(n)]


def write_questions(
    llm: BaseChatModel,
    sql: str,
    schema_text: str,
    *,
    styles: Sequence[str] | None = None,
    n: int = 3,
    dialect: str = "sqlite",
    columns: Sequence[str] | None = None,
    preview: Sequence[Sequence[Any]] | None = None,
    temperature: float = 0.7,
    seed: int | None = None,
) -> tuple[list[QuestionDraft], Usage]:
    """Write ``n`` candidate questions for ``sql``, each in a style, with evidence where needed.

    SQLord's reverse generation (paper 002, section 2.1) with DataFlow's styled candidates (paper
    000, section 4.2.3). Candidate ``i`` is written in ``styles[i % len(styles)]``; with
    ``styles=None`` that is the first ``n`` of :data:`STYLES` (formal, colloquial, imperative, ...).
    Pick one with :func:`closest_to_centroid`.

    Args:
        llm: chat model.
        sql: the query the questions must describe.
        schema_text: M-Schema rendering of the database.
        styles: style names from :data:`STYLES` to cycle through (None: all, in order).
        n: number of candidates (model calls), >= 1.
        dialect: sqlglot dialect of the database (named in the instructions).
        columns: the query's result column names, shown to the model.
        preview: the first rows of its result (at most 5 are shown).
        temperature: sampling temperature.
        seed: base sampling seed; call ``i`` sends ``seed + i`` (None: unseeded), so a run repeats.

    Returns:
        ``(drafts, usage)``: one draft per reply that held a question (replies without one are
        left out, so there may be fewer than ``n``), and the cost of all calls.

    Raises:
        InputError: ``sql`` is blank, ``n`` is not a positive integer, or a style is unknown.
        ModelError: the model endpoint failed.
    """
    if not (sql or "").strip():
        raise InputError("write_questions needs a SQL query, got an empty string")
    plan = _styles_for(styles, n)
    system = SystemMessage(WRITER_SYSTEM.format(dialect_name=DIALECT_NAMES.get(dialect, dialect)))
    shown = format_preview(columns, preview)
    drafts: list[QuestionDraft] = []
    usage = Usage()
    for i, style in enumerate(plan):
        user = HumanMessage(WRITER_USER.format(schema=schema_text, sql=sql.strip(), preview=shown,
                                               style=style, guide=STYLE_GUIDE[style]))
        options = {"seed": seed + i} if seed is not None else {}
        text, u = invoke(llm, [system, user], temperature=temperature, max_tokens=160, **options)
        usage = usage + u
        parsed = parse_draft(text)
        if parsed is not None:
            drafts.append(QuestionDraft(question=parsed[0], evidence=parsed[1], style=style))
    return drafts, usage


def closest_to_centroid(texts: Sequence[str], embedder: Any) -> int:
    """Index of the text whose embedding is closest (cosine) to the centroid of all of them.

    DataFlow's question generator (paper 000, section 4.2.3) keeps, among the candidates written
    for one query, the one nearest the centroid of their embeddings. Rows are L2-normalised
    before the mean is taken, so every candidate weighs the same; ties go to the lower index.

    Args:
        texts: the candidates (at least one).
        embedder: anything with ``embed(list[str]) -> np.ndarray`` of shape ``(len(texts), d)``,
            e.g. :func:`quorumsql.llm.embeddings.default_embedder`.

    Returns:
        An index into ``texts``.

    Raises:
        InputError: ``texts`` is empty, or the embedder returned the wrong shape.
    """
    texts = list(texts)
    if not texts:
        raise InputError("closest_to_centroid needs at least one text")
    if len(texts) == 1:
        return 0
    vectors = np.asarray(embedder.embed(texts), dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise InputError(f"embedder returned shape {vectors.shape} for {len(texts)} texts")
    vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    centroid = vectors.mean(axis=0)
    return int(np.argmax(vectors @ centroid))
