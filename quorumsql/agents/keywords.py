"""Keyword extraction: the words of a question (and its evidence) that name schema elements or values.

The first step of XiYan-SQL's retrieval module (paper 003, section 4): the model, shown a few
examples, lists the keywords and entities of the question; each keyword is then looked up in the
column index and the value index. Small models sometimes answer with prose, a broken list or
nothing: the parser takes whatever list-like text it finds, and when nothing usable is left the
question's own n-grams stand in (so retrieval always has something to search for).
"""

from __future__ import annotations

import ast
import json
import re

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from quorumsql.llm import Usage, invoke

MAX_KEYWORDS = 12

SYSTEM_PROMPT = """You extract search keywords from a question about a database.
List the nouns, names, entities, numbers, dates and quoted values that may match a table, a column or a stored value.
Leave out question words and generic verbs. Reply with one JSON list of strings and nothing else.

Question: Which employees in the Lisbon office earn more than 50000?
["employees", "Lisbon", "office", "earn", "50000"]

Question: Show the titles of albums released by "Nina Simone" after 1965.
Evidence: released after 1965 refers to release_year > 1965
["titles", "albums", "released", "Nina Simone", "release_year", "1965"]

Question: How many orders were shipped to Germany by express delivery?
["orders", "shipped", "Germany", "express delivery"]"""

USER_PROMPT = "Question: {question}{evidence}"

# Bullets, numbering and quote characters around items of a plain-text list.
_ITEM_PREFIX = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


class Keywords(BaseModel):
    """Output of keyword extraction.

    Attributes:
        keywords: distinct keywords in the order found (at most :data:`MAX_KEYWORDS`).
        fallback: True when the model's reply held no usable list and the question's n-grams
            were used instead.
        raw: the model's reply ("" when the model was not called).
        usage: cost of the call.
    """

    keywords: list[str] = Field(default_factory=list)
    fallback: bool = False
    raw: str = ""
    usage: Usage = Field(default_factory=Usage)


def build_messages(question: str, evidence: str | None = None) -> list[BaseMessage]:
    """The keyword prompt: instructions and examples first (cached), then the question."""
    ev = f"\nEvidence: {evidence.strip()}" if evidence and evidence.strip() else ""
    return [SystemMessage(SYSTEM_PROMPT), HumanMessage(USER_PROMPT.format(question=question.strip(), evidence=ev))]


def parse_keywords(text: str) -> list[str]:
    """The keywords in a model reply: a JSON / Python list, else a bulleted or comma-separated list.

    Returns:
        Distinct non-empty keywords (case-insensitive), in order, at most :data:`MAX_KEYWORDS`;
        empty when the reply holds nothing list-like.
    """
    items: list[str] = []
    for match in re.finditer(r"\[[^\[\]]*\]", text or "", re.S):
        body = match.group(0)
        for loader in (json.loads, ast.literal_eval):
            try:
                value = loader(body)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, list):
                items = [str(v) for v in value if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
                break
        if items:
            break
        # a bracketed list with broken quoting: split on commas
        items = [p for p in body.strip("[]").split(",")]
        if items:
            break
    if not items and text and "[" in text:  # an unclosed list: what follows the bracket
        items = text.rsplit("[", 1)[1].split(",")
    if not items and text:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) > 1 and all(_ITEM_PREFIX.match(ln) for ln in lines):
            items = [_ITEM_PREFIX.sub("", ln) for ln in lines]
        elif len(lines) == 1 and "," in lines[0] and len(lines[0]) < 300:
            items = lines[0].split(",")
    seen: set[str] = set()
    keywords: list[str] = []
    for item in items:
        word = " ".join(item.strip().strip(_QUOTES).split())
        if not word or len(word) > 80 or word.lower() in seen:
            continue
        seen.add(word.lower())
        keywords.append(word)
        if len(keywords) == MAX_KEYWORDS:
            break
    return keywords


def extract_keywords(
    llm: BaseChatModel,
    question: str,
    *,
    evidence: str | None = None,
    fallback_ngrams: list[str] | None = None,
    max_tokens: int = 96,
) -> Keywords:
    """Ask ``llm`` for the keywords of ``question`` (and ``evidence``).

    Args:
        llm: chat model (called once, greedy).
        question: the user's question.
        evidence: external knowledge, optional.
        fallback_ngrams: used when the reply holds no list (e.g. the question's n-grams from
            :func:`quorumsql.metadata.retrieval.question_ngrams`); empty list when None.
        max_tokens: completion budget.

    Returns:
        The keywords, whether the fallback was used, the raw reply and the cost.

    Raises:
        ModelError: the model endpoint failed.
    """
    text, usage = invoke(llm, build_messages(question, evidence), temperature=0.0, max_tokens=max_tokens)
    found = parse_keywords(text)
    if found:
        return Keywords(keywords=found, raw=text, usage=usage)
    return Keywords(keywords=list(fallback_ngrams or [])[:MAX_KEYWORDS], fallback=True, raw=text, usage=usage)
